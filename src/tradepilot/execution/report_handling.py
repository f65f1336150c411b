"""What the order manager does with a venue's reports: the venue is the source of truth.

Every report may be duplicated, late or out of order, so none of them can end the
session:

* fills are de-duplicated by the venue's trade id; a fill for an order the venue
  already closed is still booked (it executed first and the reports crossed); a fill
  beyond the quantity the engine knows adopts the venue's quantity, journaled as an
  ``OrderQuantityCorrected`` before the fill;
* a report the order's state cannot take is journaled as an ``OrderReportAnomaly``
  and the order's status is queried from the venue, which then decides: missed
  fills are applied and the status is corrected (each correction is an ordinary,
  journaled order event);
* an order the venue does not know is in flight until its in-flight window has
  passed; only then is it "lost before it arrived" (rejected);
* a query that fails is tried again one window later.

The same correction serves reconciliation (:mod:`tradepilot.execution.reconciliation`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderQuantityCorrected,
    OrderRejected,
    OrderReportAnomaly,
    OrderUpdated,
)
from tradepilot.model.order import Order
from tradepilot.venues.base import VenueOrderReport, VenueQueries
from tradepilot.venues.errors import failure_outcome

if TYPE_CHECKING:
    from tradepilot.execution.order_manager import OrderManager

S = OrderStatus
_NOT_AT_VENUE = (S.INITIALIZED, S.DENIED, S.REJECTED)


#: The venue's answers to status queries (and to reconciliation's).
StatusSource = VenueQueries


class VenueLink(VenueQueries, Protocol):
    """Something between the order manager and a venue: it takes requests and queries
    and passes the venue's reports on (``on_report``)."""

    def submit(self, order: Order) -> None: ...

    def cancel(self, client_order_id: str) -> None: ...

    def modify(
        self, client_order_id: str, quantity: int | None, price: int | None, trigger: int | None
    ) -> None: ...

    def on_report(self, event: Event) -> None: ...


class ReportHandler:
    """Applies venue reports to the order manager's orders, whatever their order."""

    def __init__(self, om: OrderManager, source: StatusSource | None) -> None:
        self.om = om
        self.source = source
        self.trade_ids: set[str] = set()
        self.anomalies = 0
        self.duplicate_fills = 0
        self.queries = 0
        self._checks: set[str] = set()  # orders with a status check scheduled

    # -- reports ------------------------------------------------------------------------
    def on_report(self, event: Event) -> None:
        cid: str = event.client_order_id  # type: ignore[attr-defined]
        order = self.om.orders.get(cid)
        if order is None:
            self.anomaly(cid, event, "report for an order the engine does not know")
            return
        if isinstance(event, OrderFilled):
            self.on_fill(order, event)
            return
        if order.can_apply(event):
            self.om.apply(order, event)
            return
        self.anomaly(cid, event, f"not applicable to an order in status {order.status.value}")
        self.query(order)

    def on_fill(
        self, order: Order, fill: OrderFilled, seen: VenueOrderReport | None = None
    ) -> bool:
        """Book a fill once; returns whether it was new and booked."""
        if fill.trade_id in self.trade_ids:
            self.duplicate_fills += 1
            self.anomaly(order.client_order_id, fill, f"duplicate fill {fill.trade_id}")
            return False
        if order.status in _NOT_AT_VENUE or fill.last_qty <= 0:
            self.anomaly(
                order.client_order_id, fill, f"fill for an order in status {order.status.value}"
            )
            self.query(order)
            return False
        filled = order.filled_qty + fill.last_qty
        if filled > order.quantity:
            if seen is None:
                seen = self._ask(order)
            venue_qty = seen.quantity if seen is not None and seen.quantity else 0
            self.om.apply(
                order,
                OrderQuantityCorrected(
                    self.om.clock.now(),
                    order.client_order_id,
                    max(venue_qty, filled),
                    f"the venue filled {filled} of an order the engine held at "
                    f"{order.quantity}: its quantity is adopted",
                ),
            )
        self.trade_ids.add(fill.trade_id)
        self.om.apply(order, fill)
        return True

    def anomaly(self, cid: str, event: Event, reason: str) -> None:
        self.anomalies += 1
        self.om.record(OrderReportAnomaly(self.om.clock.now(), cid, type(event).__name__, reason))

    # -- status queries ----------------------------------------------------------------------
    def _ask(self, order: Order) -> VenueOrderReport | None:
        if self.source is None:
            return None
        try:
            return self.source.order_report(order.client_order_id)
        except Exception:
            return None

    def query(self, order: Order) -> str | None:
        """Ask the venue about one order and correct it; a failed query is tried later."""
        source = self.source
        if source is None:
            return None
        cid = order.client_order_id
        self.queries += 1
        try:
            seen = source.order_report(cid)
            fills = [f for f in source.fills_since(0) if f.client_order_id == cid]
        except Exception as exc:
            self.om.request_failed(cid, "query", failure_outcome(exc), str(exc))
            self.check_later(cid)
            return None
        for fill in fills:
            if fill.trade_id not in self.trade_ids:
                self.on_fill(order, fill, seen)
        return self.correct(order, seen)

    def check_later(self, cid: str) -> None:
        """Query the order once its in-flight window has passed, while it is unresolved."""
        om = self.om
        if om._schedule is None or cid in self._checks:
            return
        self._checks.add(cid)

        def check() -> None:
            self._checks.discard(cid)
            order = om.orders.get(cid)
            if order is not None and order.status in (
                S.UNKNOWN,
                S.SUBMITTED,
                S.PENDING_CANCEL,
                S.PENDING_UPDATE,
            ):
                self.query(order)
                if order.status is S.UNKNOWN:
                    self.check_later(cid)

        om._schedule(om.clock.now() + om.in_flight_ns + 1, check)

    def correct(self, order: Order, seen: VenueOrderReport | None) -> str | None:
        """Bring one order to the venue's view of it; returns the kind of correction made.

        ``lost``, ``resolved`` (an unknown outcome settled), ``vanished`` (closed at the
        venue while open here), ``updated``, or ``None`` when nothing changed.
        """
        kind, corrections = self._corrections(order, seen)
        applied = False
        for correction in corrections:
            if not order.can_apply(correction):
                break  # left for reconciliation to report as a mismatch
            self.om.apply(order, correction)
            applied = True
        return kind if applied else None

    def _corrections(
        self, order: Order, seen: VenueOrderReport | None
    ) -> tuple[str | None, list[Event]]:
        om = self.om
        now = om.clock.now()
        cid = order.client_order_id
        status = order.status
        waited = now - om.sent_at(order) >= om.in_flight_ns
        if seen is None:
            if status in (S.UNKNOWN, S.SUBMITTED, S.PENDING_CANCEL) and waited:
                lost = "not found at the venue after its in-flight window: lost before it arrived"
                return "lost", [OrderRejected(now, cid, lost)]
            return None, []
        if seen.status == "OPEN":
            update: list[Event] = [_updated(now, order, seen)] if _differs(order, seen) else []
            if status in (S.UNKNOWN, S.SUBMITTED):
                return "resolved", [OrderAccepted(now, cid, seen.venue_order_id), *update]
            if status is S.PENDING_CANCEL and waited:
                return "updated", [OrderCancelRejected(now, cid, "reconciled: still open")]
            if status is S.PENDING_UPDATE and waited:
                unchanged = OrderModifyRejected(now, cid, "reconciled: the order is unchanged")
                return "updated", update or [unchanged]
            if status in (S.ACCEPTED, S.PARTIALLY_FILLED) and update:
                return "updated", update
            return None, []
        if seen.status == "FILLED":
            if status is not S.FILLED and order.filled_qty == seen.filled_qty:
                done = "reconciled: the venue filled the order in full"
                kind = "resolved" if status is S.UNKNOWN else "vanished"
                return kind, [OrderQuantityCorrected(now, cid, seen.filled_qty, done)]
            return None, []
        if not order.is_open:
            return None, []
        reason = f"reconciled: venue reports {seen.status.lower()}"
        if seen.reason:
            reason += f" ({seen.reason})"
        closing: Event
        if seen.status == "CANCELED":
            closing = OrderCanceled(now, cid, reason)
        elif seen.status == "EXPIRED":
            closing = OrderExpired(now, cid)
        else:
            closing = OrderRejected(now, cid, reason)
        return ("resolved" if status is S.UNKNOWN else "vanished"), [closing]


def _differs(order: Order, seen: VenueOrderReport) -> bool:
    if seen.filled_qty + seen.leaves_qty != order.quantity:
        return True
    return seen.price is not None and seen.price != order.price


def _updated(now: int, order: Order, seen: VenueOrderReport) -> OrderUpdated:
    qty = seen.filled_qty + seen.leaves_qty
    price = seen.price if seen.price is not None else order.price
    return OrderUpdated(now, order.client_order_id, qty, price, order.trigger_price)
