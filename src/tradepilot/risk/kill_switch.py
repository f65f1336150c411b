"""The kill switch: cancel every open order and flatten every position.

:func:`emergency_stop` uses only the normal order path: cancels go through the
order manager, and the flatten orders are reduce-only MARKET orders submitted
through ``order_manager.submit``, so they are journaled and risk-checked like any
other order. The risk engine lets reduce-only orders that shrink a position pass
even when trading is HALTED, and the exposure and loss limits never deny an order
that reduces a position, so the flatten is not blocked by the stop itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from tradepilot.core.clock import Clock
from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import OrderInitialized
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.model.order_factory import closing_order
from tradepilot.model.position import Position
from tradepilot.risk.engine import RiskEngine, TradingState


class OrderGateway(Protocol):
    """What the kill switch uses of the order manager."""

    risk: RiskEngine

    def next_id(self, strategy_id: str) -> str: ...

    def submit(self, init: OrderInitialized) -> Order: ...

    def cancel_all(self, instrument_id: str | None = None, reason: str = "") -> None: ...

    def all_open(self) -> list[Order]: ...


class Positions(Protocol):
    """What the kill switch reads of the portfolio."""

    positions: dict[str, Position]


@dataclass(slots=True)
class EmergencyStopResult:
    state: TradingState
    cancelled: list[str] = field(default_factory=list)  # client ids a cancel was sent for
    flatten_orders: list[Order] = field(default_factory=list)  # submitted to the venue
    denied: list[Order] = field(default_factory=list)  # flatten orders the risk engine denied
    skipped: dict[str, str] = field(default_factory=dict)  # instrument id -> why not flattened

    @property
    def complete(self) -> bool:
        """True if every position got a flatten order that went to the venue."""
        return not self.denied and not self.skipped


def emergency_stop(
    order_manager: OrderGateway,
    portfolio: Positions,
    instruments: Mapping[str, Instrument],
    clock: Clock,
    strategy_id: str = "risk",
    reason: str = "emergency stop",
    state: TradingState = TradingState.HALTED,
) -> EmergencyStopResult:
    """Stop trading, cancel every open order and flatten every position.

    ``state`` is what the risk engine is set to first: HALTED (the default) blocks
    every new order but the reduce-only flatten; REDUCING still lets strategies
    send orders that shrink a position. The flatten orders are ``reduce_only``
    MARKET orders for the whole position, one per instrument, with ids from
    ``order_manager.next_id(strategy_id)``.
    """
    if state is TradingState.ACTIVE:
        raise ValueError("an emergency stop must leave trading REDUCING or HALTED")
    order_manager.risk.set_state(state, reason)
    result = EmergencyStopResult(state)
    result.cancelled = [
        o.client_order_id
        for o in order_manager.all_open()
        if o.status is not OrderStatus.PENDING_CANCEL
    ]
    order_manager.cancel_all(None, reason)
    for iid in sorted(portfolio.positions):
        qty = portfolio.positions[iid].qty
        if qty == 0:
            continue
        if iid not in instruments:
            result.skipped[iid] = f"unknown instrument {iid}"
            continue
        init = closing_order(
            clock.now(),
            order_manager.next_id(strategy_id),
            iid,
            strategy_id,
            qty,
            f"{reason}: flatten {fixed.to_str(qty)}",
        )
        order = order_manager.submit(init)
        if order.status is OrderStatus.DENIED:
            result.denied.append(order)
        else:
            result.flatten_orders.append(order)
    return result
