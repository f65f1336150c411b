"""Reconciliation: make the engine's view of orders, fills and balances agree with the venue's.

Run at start-up (after state is restored) and on demand. The venue is asked for
what it knows - each order's state, its executions since the start of its trade
log, balances and positions - and every difference is corrected through the
normal event path, so each correction is journaled:

* a fill the venue has and the engine does not: applied (``OrderFilled``);
* an order whose outcome was unknown: resolved to what the venue says (accepted,
  filled, cancelled, expired, rejected), or rejected if the venue never saw it;
* an order the engine thinks open but the venue has closed: closed with the venue's
  final status ("vanished" orders);
* balances and positions that still differ afterwards are reported as mismatches.

A ``ReconciliationCompleted`` event summarises the pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    ReconciliationCompleted,
)
from tradepilot.venues.sim.venue import VenueOrderReport

if TYPE_CHECKING:
    from tradepilot.engine.kernel import Engine


class ReconcilableVenue(Protocol):
    def order_report(self, client_order_id: str) -> VenueOrderReport | None: ...

    def open_orders(self) -> list[VenueOrderReport]: ...

    def fills_since(self, index: int = 0) -> list[OrderFilled]: ...

    def balances(self) -> dict[str, int]: ...

    def position_quantities(self) -> dict[str, int]: ...


@dataclass
class ReconciliationReport:
    missed_fills: int = 0
    resolved_unknown: int = 0
    vanished: int = 0
    lost: int = 0
    foreign_orders: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def corrections(self) -> int:
        return self.missed_fills + self.resolved_unknown + self.vanished + self.lost

    def to_json(self) -> str:
        return json.dumps(
            {
                "missed_fills": self.missed_fills,
                "resolved_unknown": self.resolved_unknown,
                "vanished": self.vanished,
                "lost": self.lost,
                "foreign_orders": self.foreign_orders,
                "mismatches": self.mismatches,
            },
            sort_keys=True,
        )


def reconcile(engine: Engine, venue: ReconcilableVenue | None = None) -> ReconciliationReport:
    """Compare the engine with its venue and journal a correction for every difference."""
    venue = venue if venue is not None else engine.venue
    om = engine.orders
    now = engine.clock.now()
    report = ReconciliationReport()

    known_trades = {
        e.trade_id for o in om.orders.values() for e in o.events if isinstance(e, OrderFilled)
    }
    for fill in venue.fills_since(0):
        if fill.trade_id in known_trades or fill.client_order_id not in om.orders:
            continue
        order = om.orders[fill.client_order_id]
        if not order.can_apply(fill):
            report.mismatches.append(f"fill {fill.trade_id} cannot apply to {order!r}")
            continue
        om.on_event(fill)
        report.missed_fills += 1

    for order in list(om.all_open()):
        cid = order.client_order_id
        seen = venue.order_report(cid)
        unknown = order.status is OrderStatus.UNKNOWN
        correction: Event | None = None
        if seen is None:
            if not unknown:
                continue  # still on its way to the venue (latency): not lost, in flight
            correction = OrderRejected(now, cid, "not found at the venue: lost before it arrived")
            report.lost += 1
        elif seen.status == "OPEN":
            if unknown:
                correction = OrderAccepted(now, cid, seen.venue_order_id)
                report.resolved_unknown += 1
        elif seen.status == "FILLED":
            if order.status is not OrderStatus.FILLED:
                report.mismatches.append(f"{cid}: venue says FILLED, engine {order.status.value}")
        else:
            reason = f"reconciled: venue reports {seen.status.lower()}"
            if seen.reason:
                reason += f" ({seen.reason})"
            if seen.status == "CANCELED":
                correction = OrderCanceled(now, cid, reason)
            elif seen.status == "EXPIRED":
                correction = OrderExpired(now, cid)
            else:
                correction = OrderRejected(now, cid, reason)
            if unknown:
                report.resolved_unknown += 1
            else:
                report.vanished += 1
        if correction is not None:
            if not unknown and isinstance(correction, OrderAccepted):
                continue
            om.on_event(correction)

    engine_open = {o.client_order_id for o in om.all_open()}
    report.foreign_orders = sorted(
        r.client_order_id for r in venue.open_orders() if r.client_order_id not in engine_open
    )
    _compare(
        "balance",
        engine.portfolio.account.total,
        venue.balances(),
        report,
    )
    _compare(
        "position",
        {iid: p.qty for iid, p in engine.portfolio.positions.items() if p.qty},
        venue.position_quantities(),
        report,
    )
    engine.journal.append(ReconciliationCompleted(now, report.corrections, report.to_json()))
    return report


def _compare(
    label: str, mine: dict[str, int], theirs: dict[str, int], report: ReconciliationReport
) -> None:
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key, 0), theirs.get(key, 0)
        if a != b:
            report.mismatches.append(
                f"{label} {key}: engine {fixed.to_str(a)}, venue {fixed.to_str(b)}"
            )
