"""The order manager: the one path from an order request to a venue.

``submit`` creates the order, journals it, runs the risk engine and only then
hands it to the venue; everything a venue says back comes through ``on_event``
(see :mod:`tradepilot.execution.report_handling`: reports may be duplicated, late
or reordered), is applied to the order's state machine, journaled and published
on the bus. Client order ids are deterministic (``<strategy>-<n>``), so the same
run always produces the same ids; a submit with an id already taken is denied.

A request that fails is journaled as ``VenueRequestFailed`` (the circuit breaker
counts them). A rate-limited request was not acted on: it is sent again after the
venue's delay. Any other failure (a timeout, a dropped connection) leaves the
outcome unknown: the order is held as UNKNOWN and its status is queried at once and
again once its in-flight window has passed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from tradepilot.core.bus import MessageBus
from tradepilot.core.clock import Clock
from tradepilot.execution.report_handling import ReportHandler, StatusSource
from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import (
    CancelAllOrders,
    CancelOrder,
    Event,
    ModifyOrder,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderInitialized,
    OrderModifyDenied,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderRequestDenied,
    OrderStatusUnknown,
    OrderSubmitted,
    VenueRequestFailed,
)
from tradepilot.model.ids import IdRegistry
from tradepilot.model.order import Order
from tradepilot.risk.engine import RiskEngine
from tradepilot.risk.modify import check_modify, modified_order
from tradepilot.venues.base import VenueCapabilities
from tradepilot.venues.errors import RateLimited, failure_outcome

Scheduler = Callable[[int, Callable[[], None]], None]

#: how long a request may take to reach the venue before "not there" means "lost"
DEFAULT_IN_FLIGHT_NS = 10_000_000_000
DUPLICATE_ID = "DUPLICATE_CLIENT_ORDER_ID"


class Venue(Protocol):
    """The commands the order manager sends (a venue, or a link in front of one)."""

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
        schedule: Scheduler | None = None,
        status_source: StatusSource | None = None,
        in_flight_ns: int = DEFAULT_IN_FLIGHT_NS,
        capabilities: VenueCapabilities | None = None,
        mark_price: Callable[[str], int | None] | None = None,
    ) -> None:
        """``mark_price`` values a market order's lock when it is sent (see
        :mod:`tradepilot.portfolio.locking`)."""
        self.clock = clock
        self.bus = bus
        self.risk = risk
        self.venue = venue
        self._record = record
        self._schedule = schedule
        self.in_flight_ns = in_flight_ns
        self.capabilities = capabilities or VenueCapabilities()
        self._mark_price = mark_price
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self.ids = IdRegistry()
        self._sent_at: dict[str, int] = {}
        self._unsent: set[str] = set()  # rate-limited submits waiting for their retry
        self._retrying: set[str] = set()  # rate-limited requests waiting for their retry
        self.denied_count = 0
        self.modify_denied_count = 0
        self.rejected_count = 0
        self.failures: Counter[str] = Counter()  # request failures by outcome
        self.reports = ReportHandler(self, status_source)

    # -- ids and queries ---------------------------------------------------------------
    def next_id(self, strategy_id: str) -> str:
        return self.ids.next_order_id(strategy_id)

    def restore(
        self, orders: Mapping[str, Order], ids: IdRegistry, trade_ids: Iterable[str] = ()
    ) -> None:
        """Take over orders, id counters and booked trade ids from a restored state (a
        restart). Open orders become open again here; ids continue after the highest
        restored; a fill the journal already booked is recognised as a duplicate."""
        for cid, order in orders.items():
            self.orders[cid] = order
            if not order.is_closed:
                self._open[cid] = order
        self.ids.restore_from(ids)
        self.reports.trade_ids.update(trade_ids)

    def open_orders(self, instrument_id: str | None = None) -> Iterator[Order]:
        for order in self._open.values():
            if instrument_id is None or order.instrument_id == instrument_id:
                yield order

    def all_open(self) -> list[Order]:
        return list(self._open.values())

    def sent_at(self, order: Order) -> int:
        """When the order's last request left for the venue (its last event after a restart)."""
        return self._sent_at.get(order.client_order_id, order.ts_last)

    # -- commands ------------------------------------------------------------------------
    def submit(self, init: OrderInitialized) -> Order:
        """Create, risk-check and send an order. A denial is an event, not an exception."""
        if init.client_order_id in self.orders:
            return self._deny_duplicate(init)
        order = Order(init)
        if self._mark_price is not None and init.price is None and init.trigger_price is None:
            order.lock_px = self._mark_price(init.instrument_id)
        self.orders[order.client_order_id] = order
        self._record(init)
        self.bus.publish(init)
        denial = self.risk.check(order)
        if denial is not None:
            self._deny(order, denial.code, denial.reason)
            return order
        unsupported = self.capabilities.refusal(order)
        if unsupported is not None:
            self._deny(order, "VENUE_UNSUPPORTED", unsupported)
            return order
        self.apply(order, OrderSubmitted(init.ts, order.client_order_id))
        self._send_submit(order)
        return order

    def deny(self, init: OrderInitialized, code: str, reason: str) -> Order:
        """Record an order that failed validation before it could be risk-checked."""
        if init.client_order_id in self.orders:
            return self._deny_duplicate(init)
        order = Order(init)
        self.orders[order.client_order_id] = order
        self._record(init)
        self.bus.publish(init)
        self._deny(order, code, reason)
        return order

    def _deny_duplicate(self, init: OrderInitialized) -> Order:
        """Refuse a submit whose id is taken; the order holding the id is left alone."""
        self.denied_count += 1
        cid = init.client_order_id
        reason = f"duplicate client order id {cid}: an order with this id already exists"
        denied = OrderRequestDenied(self.clock.now(), cid, init.strategy_id, DUPLICATE_ID, reason)
        self._record(denied)
        self.bus.publish(denied)
        order = Order(init)  # returned to the caller only, never tracked
        order.apply(OrderDenied(init.ts, cid, DUPLICATE_ID, reason))
        return order

    def _deny(self, order: Order, code: str, reason: str) -> None:
        self.denied_count += 1
        self.apply(order, OrderDenied(order.ts_init, order.client_order_id, code, reason))

    def cancel(self, client_order_id: str, reason: str = "") -> None:
        now = self.clock.now()
        order = self._open.get(client_order_id)
        self._record(CancelOrder(now, client_order_id, reason))
        if order is not None and client_order_id in self._unsent:
            self._unsent.discard(client_order_id)
            self.apply(order, OrderCanceled(now, client_order_id, "cancelled before it was sent"))
            return
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
        self.apply(order, OrderPendingCancel(now, client_order_id))
        self._send_cancel(order)

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
        if not self.capabilities.modify:
            why = "the venue does not support modifying an order"
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
        self.apply(order, OrderPendingUpdate(now, client_order_id))
        self._send_modify(order, quantity, price, trigger_price)

    def cancel_all(self, instrument_id: str | None = None, reason: str = "") -> None:
        self._record(CancelAllOrders(self.clock.now(), instrument_id, reason))
        for order in list(self.open_orders(instrument_id)):
            if order.status is not OrderStatus.PENDING_CANCEL:
                self.cancel(order.client_order_id, reason)

    # -- sending, failures and retries ---------------------------------------------------
    def _send_submit(self, order: Order) -> None:
        cid = order.client_order_id
        self._unsent.discard(cid)
        if self._send(order, "submit", lambda: self.venue.submit(order)):
            return
        if cid in self._retrying:
            self._unsent.add(cid)

    def _send_cancel(self, order: Order) -> None:
        self._send(order, "cancel", lambda: self.venue.cancel(order.client_order_id))

    def _send_modify(
        self, order: Order, quantity: int | None, price: int | None, trigger: int | None
    ) -> None:
        cid = order.client_order_id
        self._send(order, "modify", lambda: self.venue.modify(cid, quantity, price, trigger))

    def _send(self, order: Order, request: str, send: Callable[[], None]) -> bool:
        """Send one request; on failure journal it and retry or hold the order as UNKNOWN."""
        cid = order.client_order_id
        self._sent_at[cid] = self.clock.now()
        self._retrying.discard(cid)
        try:
            send()
        except Exception as exc:  # a venue adapter failed mid-request
            outcome = failure_outcome(exc)
            self.request_failed(cid, request, outcome, str(exc))
            if isinstance(exc, RateLimited) and self._schedule is not None:
                self._retry_later(order, request, send, exc.retry_after_ns)
            else:
                self._unknown(order, f"{request} outcome unknown ({outcome}): {exc}")
                # ask at once (the venue may already know), and again after the in-flight window
                self.reports.query(order)
                self.reports.check_later(cid)
            return False
        return True

    def request_failed(self, cid: str, request: str, outcome: str, reason: str) -> None:
        self.failures[outcome] += 1
        event = VenueRequestFailed(self.clock.now(), cid, request, outcome, reason)
        self._record(event)
        self.bus.publish(event)

    def _retry_later(
        self, order: Order, request: str, send: Callable[[], None], delay_ns: int
    ) -> None:
        assert self._schedule is not None
        cid = order.client_order_id
        waiting = {
            "submit": OrderStatus.SUBMITTED,
            "cancel": OrderStatus.PENDING_CANCEL,
            "modify": OrderStatus.PENDING_UPDATE,
        }[request]
        self._retrying.add(cid)

        def retry() -> None:
            if cid not in self._retrying or order.status is not waiting:
                return  # answered or given up meanwhile
            if request == "submit":
                self._send_submit(order)
            else:
                self._send(order, request, send)

        self._schedule(self.clock.now() + max(delay_ns, 1), retry)

    def _unknown(self, order: Order, reason: str) -> None:
        """Hold the order as UNKNOWN; nothing is sent for it until its status is known."""
        if order.status is not OrderStatus.UNKNOWN and not order.status.is_closed:
            self.apply(order, OrderStatusUnknown(self.clock.now(), order.client_order_id, reason))

    # -- events from the venue -----------------------------------------------------------
    def mark_unknown(self, client_order_id: str, reason: str) -> None:
        """Declare an open order's last request unresolved (used after a restart)."""
        order = self._open.get(client_order_id)
        if order is not None and order.status is not OrderStatus.UNKNOWN:
            self._unknown(order, reason)

    def on_event(self, event: Event) -> None:
        self.reports.on_report(event)

    def apply(self, order: Order, event: Event) -> None:
        """Apply, journal and publish one event; keeps the set of open orders current."""
        order.apply(event)
        self._record(event)
        self.bus.publish(event)
        cid = order.client_order_id
        status = order.status
        if status.is_open:
            self._open[cid] = order
        elif self._open.pop(cid, None) is not None:
            self._unsent.discard(cid)
            self._retrying.discard(cid)
            if status is OrderStatus.REJECTED:
                self.rejected_count += 1

    def record(self, event: Event) -> None:
        """Journal and publish an event that changes no order (an anomaly)."""
        self._record(event)
        self.bus.publish(event)
