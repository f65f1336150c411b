"""The simulated venue's own record of an order (the engine's ``Order`` is never touched)."""

from __future__ import annotations

from dataclasses import dataclass

from tradepilot.model.enums import OrderType, TimeInForce
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order

_MARKET = OrderType.MARKET
_STOP_MARKET = OrderType.STOP_MARKET


class WorkingOrder:
    """A live order as the venue holds it: what is left, what it locks, its queue place."""

    __slots__ = (
        "cid",
        "expire_ts",
        "filled",
        "immediate",
        "instrument",
        "lock",
        "order_type",
        "price",
        "qty",
        "queue_ahead",
        "reduce_only",
        "side",
        "strategy_id",
        "taker",
        "trigger",
        "triggered",
        "ts_arrived",
    )

    def __init__(self, order: Order, instrument: Instrument, ts_arrived: int = 0) -> None:
        self.cid = order.client_order_id
        self.instrument = instrument
        self.strategy_id = order.strategy_id
        self.side = int(order.side)
        self.order_type = order.order_type
        self.qty = order.quantity
        self.filled = 0
        self.price = order.price
        self.trigger = order.trigger_price
        self.triggered = False
        self.expire_ts = order.expire_ts
        self.reduce_only = order.reduce_only
        self.immediate = order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        self.taker = False
        self.lock = 0
        self.queue_ahead = 0
        self.ts_arrived = ts_arrived

    @property
    def leaves(self) -> int:
        return self.qty - self.filled

    @property
    def is_market(self) -> bool:
        t = self.order_type
        return t is _MARKET or (t is _STOP_MARKET and self.triggered)


@dataclass(slots=True)
class PendingOrder:
    """An order on its way to the venue (delivered after the latency model's delay)."""

    order: Order
    fok: bool
    post_only: bool
