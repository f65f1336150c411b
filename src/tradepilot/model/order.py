"""Orders and their lifecycle state machine.

An :class:`Order` is a projection of its events: it is created from an
:class:`~tradepilot.model.events.OrderInitialized` and changes only through
:meth:`Order.apply`. A transition that the lifecycle does not allow raises
:class:`InvalidStateTransition`; it is never applied silently.

::

    INITIALIZED -> SUBMITTED -> ACCEPTED -> PARTIALLY_FILLED -> FILLED
         |             |           |  \\-> PENDING_CANCEL -> CANCELED
         v             v           |   \\-> PENDING_UPDATE -> ACCEPTED
       DENIED       REJECTED       +-> CANCELED | EXPIRED

The venue is the source of truth: a fill it reports for an order already CANCELED
or EXPIRED (it executed before the cancel or expiry, and the reports crossed) is
booked, and an ``OrderQuantityCorrected`` adopts the venue's quantity when it filled
more than the engine knew of.
"""

from __future__ import annotations

from tradepilot.model import fixed
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderQuantityCorrected,
    OrderRejected,
    OrderStatusUnknown,
    OrderSubmitted,
    OrderTriggered,
    OrderUpdated,
)


class InvalidStateTransition(RuntimeError):
    """An event that the order's current status does not allow."""


S = OrderStatus
_FILLABLE = (
    S.SUBMITTED,
    S.ACCEPTED,
    S.PARTIALLY_FILLED,
    S.PENDING_CANCEL,
    S.PENDING_UPDATE,
    S.UNKNOWN,
)
# executed at the venue before it closed the order: the fill is booked, the status kept
_LATE_FILLABLE = (S.CANCELED, S.EXPIRED, S.FILLED)
# every status in which the venue may hold (or have held) the order
_AT_VENUE = (*_FILLABLE, *_LATE_FILLABLE)

# (status, event type) -> status after; fills are resolved separately (partial or full).
_TRANSITIONS: dict[tuple[OrderStatus, type[Event]], OrderStatus] = {
    (S.INITIALIZED, OrderDenied): S.DENIED,
    (S.INITIALIZED, OrderSubmitted): S.SUBMITTED,
    (S.SUBMITTED, OrderAccepted): S.ACCEPTED,
    (S.SUBMITTED, OrderRejected): S.REJECTED,
    (S.SUBMITTED, OrderCanceled): S.CANCELED,
    (S.SUBMITTED, OrderExpired): S.EXPIRED,
    (S.SUBMITTED, OrderPendingCancel): S.PENDING_CANCEL,
    (S.ACCEPTED, OrderPendingCancel): S.PENDING_CANCEL,
    (S.ACCEPTED, OrderPendingUpdate): S.PENDING_UPDATE,
    (S.ACCEPTED, OrderCanceled): S.CANCELED,
    (S.ACCEPTED, OrderExpired): S.EXPIRED,
    (S.ACCEPTED, OrderTriggered): S.ACCEPTED,
    (S.ACCEPTED, OrderUpdated): S.ACCEPTED,
    (S.PARTIALLY_FILLED, OrderPendingCancel): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, OrderPendingUpdate): S.PENDING_UPDATE,
    (S.PARTIALLY_FILLED, OrderCanceled): S.CANCELED,
    (S.PARTIALLY_FILLED, OrderExpired): S.EXPIRED,
    (S.PARTIALLY_FILLED, OrderTriggered): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, OrderUpdated): S.PARTIALLY_FILLED,
    (S.PENDING_CANCEL, OrderCanceled): S.CANCELED,
    (S.PENDING_CANCEL, OrderExpired): S.EXPIRED,
    (S.PENDING_CANCEL, OrderAccepted): S.PENDING_CANCEL,
    # the venue may answer the order itself before it sees the cancel or modify
    (S.PENDING_CANCEL, OrderRejected): S.REJECTED,
    (S.PENDING_CANCEL, OrderTriggered): S.PENDING_CANCEL,
    (S.PENDING_UPDATE, OrderCanceled): S.CANCELED,
    (S.PENDING_UPDATE, OrderExpired): S.EXPIRED,
    (S.PENDING_UPDATE, OrderPendingCancel): S.PENDING_CANCEL,
    (S.PENDING_UPDATE, OrderTriggered): S.PENDING_UPDATE,
    # an outcome nobody knows: held until reconciliation says what the venue did
    (S.SUBMITTED, OrderStatusUnknown): S.UNKNOWN,
    (S.ACCEPTED, OrderStatusUnknown): S.UNKNOWN,
    (S.PARTIALLY_FILLED, OrderStatusUnknown): S.UNKNOWN,
    (S.PENDING_CANCEL, OrderStatusUnknown): S.UNKNOWN,
    (S.PENDING_UPDATE, OrderStatusUnknown): S.UNKNOWN,
    (S.UNKNOWN, OrderAccepted): S.ACCEPTED,
    (S.UNKNOWN, OrderRejected): S.REJECTED,
    (S.UNKNOWN, OrderCanceled): S.CANCELED,
    (S.UNKNOWN, OrderExpired): S.EXPIRED,
}
# A rejected cancel or modify, or a completed modify, returns to the status before the request.
# A cancel or modify that reached the venue after the order closed there (filled, cancelled,
# expired, rejected) is answered with a reject: recorded, without changing the status.
_RESTORING = (OrderCancelRejected, OrderModifyRejected, OrderUpdated)
_LATE_REJECTS = (OrderCancelRejected, OrderModifyRejected)


class Order:
    """A mutable projection of one order's events. Prices and quantities are raw ints."""

    __slots__ = (
        "_status_before_pending",
        "client_order_id",
        "events",
        "expire_ts",
        "fees",
        "filled_notional",
        "filled_qty",
        "instrument_id",
        "lock_px",
        "order_type",
        "parent_id",
        "post_only",
        "price",
        "quantity",
        "reduce_only",
        "side",
        "status",
        "strategy_id",
        "tags",
        "time_in_force",
        "trigger_price",
        "triggered",
        "ts_init",
        "ts_last",
        "venue_order_id",
    )

    def __init__(self, init: OrderInitialized) -> None:
        self.client_order_id = init.client_order_id
        self.instrument_id = init.instrument_id
        self.strategy_id = init.strategy_id
        self.side = OrderSide(init.side)
        self.order_type = OrderType(init.order_type)
        self.quantity = init.quantity
        self.price = init.price
        self.trigger_price = init.trigger_price
        self.time_in_force = TimeInForce(init.time_in_force)
        self.expire_ts = init.expire_ts
        self.post_only = init.post_only
        self.reduce_only = init.reduce_only
        self.parent_id = init.parent_id
        self.tags = init.tags
        self.status = OrderStatus.INITIALIZED
        self.venue_order_id: str | None = None
        self.filled_qty = 0
        self.filled_notional = 0
        self.fees = 0
        self.triggered = False
        self.ts_init = init.ts
        self.ts_last = init.ts
        self.events: list[Event] = [init]
        self._status_before_pending = OrderStatus.INITIALIZED
        #: a market order: the price its lock was valued at when it was sent (not journaled)
        self.lock_px: int | None = None

    @classmethod
    def restore(
        cls,
        init: OrderInitialized,
        *,
        status: OrderStatus,
        quantity: int,
        price: int | None,
        trigger_price: int | None,
        filled_qty: int,
        filled_notional: int,
        fees: int,
        venue_order_id: str | None,
        triggered: bool,
        ts_last: int,
        status_before_pending: OrderStatus,
    ) -> Order:
        """An order as a snapshot recorded it: its creation plus its state since.

        The restored order keeps only its ``OrderInitialized`` in ``events``; the rest
        of its history stays in the journal.
        """
        order = cls(init)
        order.status = status
        order.quantity = quantity
        order.price = price
        order.trigger_price = trigger_price
        order.filled_qty = filled_qty
        order.filled_notional = filled_notional
        order.fees = fees
        order.venue_order_id = venue_order_id
        order.triggered = triggered
        order.ts_last = ts_last
        order._status_before_pending = status_before_pending
        return order

    @property
    def status_before_pending(self) -> OrderStatus:
        """The status a pending cancel or modify returns to if the venue refuses it."""
        return self._status_before_pending

    # -- queries -----------------------------------------------------------------
    @property
    def leaves_qty(self) -> int:
        return self.quantity - self.filled_qty

    @property
    def avg_px(self) -> int | None:
        """Volume-weighted average fill price (raw), or None before any fill."""
        if not self.filled_qty:
            return None
        return fixed.div(self.filled_notional, self.filled_qty)

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def is_closed(self) -> bool:
        return self.status.is_closed

    @property
    def is_buy(self) -> bool:
        return self.side is OrderSide.BUY

    def __repr__(self) -> str:
        px = fixed.to_str(self.price) if self.price is not None else "-"
        return (
            f"Order({self.client_order_id} {self.side.name} {fixed.to_str(self.quantity)} "
            f"{self.instrument_id} {self.order_type.value} @ {px} {self.status.value} "
            f"filled={fixed.to_str(self.filled_qty)})"
        )

    # -- state machine -------------------------------------------------------------
    def can_apply(self, event: Event) -> bool:
        kind = type(event)
        if kind is OrderFilled:
            assert isinstance(event, OrderFilled)
            return self._fill_problem(event) is None
        if kind is OrderQuantityCorrected:
            assert isinstance(event, OrderQuantityCorrected)
            return self.status in _AT_VENUE and event.quantity >= self.filled_qty
        if kind in _RESTORING:
            if isinstance(event, OrderUpdated) and event.quantity < self.filled_qty:
                return False
            return (
                self.status in (S.PENDING_CANCEL, S.PENDING_UPDATE)
                or (kind is OrderUpdated and self.status in (S.ACCEPTED, S.PARTIALLY_FILLED))
                or (kind in _LATE_REJECTS and self.status.is_closed)
            )
        return (self.status, kind) in _TRANSITIONS

    def apply(self, event: Event) -> None:
        """Apply one event, or raise :class:`InvalidStateTransition` and change nothing."""
        kind = type(event)
        status = self.status
        if kind is OrderFilled:
            assert isinstance(event, OrderFilled)
            self._apply_fill(event)
        elif kind is OrderQuantityCorrected:
            assert isinstance(event, OrderQuantityCorrected)
            if not self.can_apply(event):
                raise InvalidStateTransition(self._illegal(event))
            self.quantity = event.quantity
            if self.filled_qty == event.quantity and status is not S.FILLED:
                self.status = S.FILLED  # the venue says it filled in full
        elif kind in _RESTORING:
            if isinstance(event, OrderUpdated) and event.quantity < self.filled_qty:
                raise InvalidStateTransition(
                    f"{self.client_order_id}: new quantity below the filled quantity"
                )
            if status is S.PENDING_CANCEL and kind is not OrderCancelRejected:
                pass  # a modify answered while a cancel is pending: the cancel is still pending
            elif status in (S.PENDING_CANCEL, S.PENDING_UPDATE):
                self.status = self._status_before_pending
            elif not (
                (kind is OrderUpdated and status in (S.ACCEPTED, S.PARTIALLY_FILLED))
                or (kind in _LATE_REJECTS and status.is_closed)
            ):
                raise InvalidStateTransition(self._illegal(event))
            if isinstance(event, OrderUpdated):
                self.quantity = event.quantity
                self.price = event.price
                self.trigger_price = event.trigger_price
        else:
            new = _TRANSITIONS.get((status, kind))
            if new is None:
                raise InvalidStateTransition(self._illegal(event))
            if kind is OrderPendingCancel or kind is OrderPendingUpdate:
                if status not in (S.PENDING_CANCEL, S.PENDING_UPDATE):
                    self._status_before_pending = status
            elif kind is OrderAccepted:
                assert isinstance(event, OrderAccepted)
                self.venue_order_id = event.venue_order_id
                if new is S.ACCEPTED and self.filled_qty:
                    new = S.PARTIALLY_FILLED  # resolved after reconciliation applied fills
            elif kind is OrderTriggered:
                self.triggered = True
            self.status = new
        self.ts_last = event.ts
        self.events.append(event)

    def _fill_problem(self, fill: OrderFilled) -> str | None:
        if self.status not in _FILLABLE and self.status not in _LATE_FILLABLE:
            return self._illegal(fill)
        if fill.last_qty <= 0:
            return f"{self.client_order_id}: fill quantity must be positive"
        filled = self.filled_qty + fill.last_qty
        if filled > self.quantity:
            return (
                f"{self.client_order_id}: overfill ({fixed.to_str(filled)} > "
                f"{fixed.to_str(self.quantity)})"
            )
        return None

    def _apply_fill(self, fill: OrderFilled) -> None:
        problem = self._fill_problem(fill)
        if problem is not None:
            raise InvalidStateTransition(problem)
        filled = self.filled_qty + fill.last_qty
        self.filled_qty = filled
        self.filled_notional += fixed.mul(fill.last_px, fill.last_qty)
        self.fees += fill.fee
        if self.status in _LATE_FILLABLE:
            if filled == self.quantity:
                self.status = S.FILLED
        elif filled == self.quantity:
            self.status = S.FILLED
        elif self.status in (S.SUBMITTED, S.ACCEPTED):
            self.status = S.PARTIALLY_FILLED
        elif self.status in (S.PENDING_CANCEL, S.PENDING_UPDATE):
            # still pending; remember that it is now partially filled
            self._status_before_pending = S.PARTIALLY_FILLED

    def _illegal(self, event: Event) -> str:
        return (
            f"order {self.client_order_id}: {type(event).__name__} is not allowed "
            f"in status {self.status.value}"
        )
