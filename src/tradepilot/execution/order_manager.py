"""The order manager: the one path from an order request to a venue.

``submit`` creates the order, journals it, runs the risk engine and only then
hands it to the venue; everything a venue says back comes through ``on_event``,
is applied to the order's state machine, journaled and published on the bus.
Client order ids are deterministic (``<strategy>-<n>``), so the same run always
produces the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from tradepilot.core.bus import MessageBus
from tradepilot.core.clock import Clock
from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import (
    CancelAllOrders,
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCancelRejected,
    OrderDenied,
    OrderInitialized,
    OrderModifyDenied,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderStatusUnknown,
    OrderSubmitted,
)
from tradepilot.model.order import Order
from tradepilot.risk.engine import RiskEngine
from tradepilot.risk.modify import check_modify, modified_order


class Venue(Protocol):
    def submit(self, order: Order) -> None: ...

    def cancel(self, client_order_id: str) -> None: ...

    def modify(
        self, client_order_id: str, quantity: int | None, price: int | None, trigger: int | None
    ) -> None: ...


class OrderManager:
    def __init__(
        self,
        clock: Clock,
        bus: MessageBus,
        risk: RiskEngine,
        venue: Venue,
        record: Callable[[Event], None],
    ) -> None:
        self.clock = clock
        self.bus = bus
        self.risk = risk
        self.venue = venue
        self._record = record
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self._seq: dict[str, int] = {}
        self.denied_count = 0
        self.modify_denied_count = 0
        self.rejected_count = 0

    # -- ids and queries ---------------------------------------------------------------
    def next_id(self, strategy_id: str) -> str:
        n = self._seq.get(strategy_id, 0) + 1
        self._seq[strategy_id] = n
        return f"{strategy_id}-{n}"

    def open_orders(self, instrument_id: str | None = None) -> Iterator[Order]:
        for order in self._open.values():
            if instrument_id is None or order.instrument_id == instrument_id:
                yield order

    def all_open(self) -> list[Order]:
        return list(self._open.values())

    # -- commands ------------------------------------------------------------------------
    def submit(self, init: OrderInitialized) -> Order:
        """Create, risk-check and send an order. A denial is an event, not an exception."""
        order = Order(init)
        self.orders[order.client_order_id] = order
        self._record(init)
        self.bus.publish(init)
        denial = self.risk.check(order)
        if denial is not None:
            self._deny(order, denial.code, denial.reason)
            return order
        self._apply(order, OrderSubmitted(init.ts, order.client_order_id))
        self._open[order.client_order_id] = order
        try:
            self.venue.submit(order)
        except Exception as exc:  # a venue adapter timed out or failed mid-request
            self._unknown(order, f"submit outcome unknown: {exc}")
        return order

    def _unknown(self, order: Order, reason: str) -> None:
        """Hold the order as UNKNOWN; nothing is sent for it until reconciliation."""
        self._apply(order, OrderStatusUnknown(self.clock.now(), order.client_order_id, reason))

    def deny(self, init: OrderInitialized, code: str, reason: str) -> Order:
        """Record an order that failed validation before it could be risk-checked."""
        order = Order(init)
        self.orders[order.client_order_id] = order
        self._record(init)
        self.bus.publish(init)
        self._deny(order, code, reason)
        return order

    def _deny(self, order: Order, code: str, reason: str) -> None:
        self.denied_count += 1
        self._apply(order, OrderDenied(order.ts_init, order.client_order_id, code, reason))

    def cancel(self, client_order_id: str, reason: str = "") -> None:
        now = self.clock.now()
        order = self._open.get(client_order_id)
        self._record(CancelOrder(now, client_order_id, reason))
        if order is None or order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.UNKNOWN):
            why = (
                "order is not open"
                if order is None
                else "cancel already pending"
                if order.status is OrderStatus.PENDING_CANCEL
                else "order outcome unknown: waiting for reconciliation"
            )
            self.bus.publish(OrderCancelRejected(now, client_order_id, why))
            return
        self._apply(order, OrderPendingCancel(now, client_order_id))
        try:
            self.venue.cancel(client_order_id)
        except Exception as exc:
            self._unknown(order, f"cancel outcome unknown: {exc}")

    def modify(
        self,
        client_order_id: str,
        quantity: int | None = None,
        price: int | None = None,
        trigger_price: int | None = None,
    ) -> None:
        """Change a working order's terms, if the risk engine passes the new terms.

        A denied modify is an ``OrderModifyDenied`` with the rule's code and reason;
        the order stays working as it was.
        """
        now = self.clock.now()
        self._record(ModifyOrder(now, client_order_id, quantity, price, trigger_price))
        order = self._open.get(client_order_id)
        if order is None or order.status not in (
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
        ):
            why = "order is not open" if order is None else f"order is {order.status.value}"
            self.bus.publish(OrderModifyRejected(now, client_order_id, why))
            return
        denial = check_modify(self.risk, modified_order(order, now, quantity, price, trigger_price))
        if denial is not None:
            # the working order keeps its terms; the denial is journaled and published
            self.modify_denied_count += 1
            denied = OrderModifyDenied(
                now, client_order_id, denial.code, denial.reason, quantity, price, trigger_price
            )
            self._record(denied)
            self.bus.publish(denied)
            return
        self._apply(order, OrderPendingUpdate(now, client_order_id))
        try:
            self.venue.modify(client_order_id, quantity, price, trigger_price)
        except Exception as exc:
            self._unknown(order, f"modify outcome unknown: {exc}")

    def cancel_all(self, instrument_id: str | None = None, reason: str = "") -> None:
        self._record(CancelAllOrders(self.clock.now(), instrument_id, reason))
        for order in list(self.open_orders(instrument_id)):
            if order.status is not OrderStatus.PENDING_CANCEL:
                self.cancel(order.client_order_id, reason)

    # -- events from the venue -----------------------------------------------------------
    def mark_unknown(self, client_order_id: str, reason: str) -> None:
        """Declare an open order's last request unresolved (used after a restart)."""
        order = self._open.get(client_order_id)
        if order is not None and order.status is not OrderStatus.UNKNOWN:
            self._unknown(order, reason)

    def on_event(self, event: Event) -> None:
        cid: str = event.client_order_id  # type: ignore[attr-defined]
        order = self.orders.get(cid)
        if order is None:
            return
        self._apply(order, event)
        if order.status.is_closed:
            self._open.pop(cid, None)
            if order.status is OrderStatus.REJECTED:
                self.rejected_count += 1

    def _apply(self, order: Order, event: Event) -> None:
        order.apply(event)
        self._record(event)
        self.bus.publish(event)
