"""Response and request bodies of the REST API (pydantic), for validation and the OpenAPI document.

Money, prices and quantities are decimal strings; times are ns since the epoch (UTC).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Order(BaseModel):
    client_order_id: str
    venue_order_id: str | None
    instrument_id: str
    strategy_id: str
    parent_id: str | None
    side: str
    order_type: str
    time_in_force: str
    quantity: str
    price: str | None
    trigger_price: str | None
    status: str
    is_open: bool
    filled_qty: str
    leaves_qty: str
    avg_px: str | None
    fees: str
    triggered: bool
    post_only: bool
    reduce_only: bool
    expire_ts: int | None
    tags: str
    ts_init: int
    ts_last: int


class Fill(BaseModel):
    seq: int
    ts: int
    client_order_id: str
    trade_id: str
    instrument_id: str
    strategy_id: str
    side: str
    quantity: str
    price: str
    notional: str
    fee: str
    fee_currency: str
    liquidity: str


class Position(BaseModel):
    instrument_id: str
    side: str
    quantity: str
    avg_px: str | None
    cost: str
    realized_pnl: str
    fees: str
    trade_count: int
    last_px: str
    opened_ts: int | None
    ts_last: int


class Balance(BaseModel):
    total: str
    locked: str
    free: str


class Page(BaseModel):
    """A page of results: ``next_offset`` is ``None`` on the last page."""

    items: list[dict[str, Any]]
    offset: int
    limit: int
    total: int
    next_offset: int | None


class EquityPoint(BaseModel):
    ts: int
    equity: float
    drawdown: float


class Equity(BaseModel):
    start_cash: float
    drawdown_is_fraction: bool
    points: list[EquityPoint]


class Status(BaseModel):
    source: str
    read_only: bool
    running: bool
    session: dict[str, Any] | None
    last_seq: int
    last_ts: int | None
    orders: int
    open_orders: int
    fills: int
    open_positions: int
    trading_state: dict[str, Any] | None
    realized_pnl: str
    fees: dict[str, str]


class OperatorRequest(BaseModel):
    reason: str = Field("", max_length=500)


class OperatorOutcome(BaseModel):
    command_id: int
    action: str
    status: Literal["pending", "applied", "refused"]
    result: str = ""
