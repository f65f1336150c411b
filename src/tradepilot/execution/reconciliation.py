"""Reconciliation: make the engine's view of orders, fills and balances agree with the venue's.

Run at start-up (after state is restored), every ``reconcile_interval`` of a
session, and on demand. The venue is asked for what it knows - each order's
state, its executions since the start of its trade log, balances and positions -
and every difference is corrected through the normal event path, so each
correction is journaled:

* a fill the venue has and the engine does not: applied (``OrderFilled``);
* an order whose outcome was unknown: resolved to what the venue says (accepted,
  filled, cancelled, expired, rejected), or rejected once its in-flight window has
  passed and the venue still has never seen it;
* an order the engine thinks open but the venue has closed: closed with the venue's
  final status ("vanished" orders);
* balances and positions that still differ afterwards are reported as mismatches.

A ``ReconciliationCompleted`` event summarises the pass (a periodic pass that found
nothing is not journaled).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from tradepilot.execution.order_manager import OrderManager
from tradepilot.execution.report_handling import StatusSource
from tradepilot.model import fixed
from tradepilot.model.events import Event, ReconciliationCompleted
from tradepilot.portfolio.portfolio import Portfolio

ReconcilableVenue = StatusSource


@dataclass
class ReconciliationReport:
    missed_fills: int = 0
    resolved_unknown: int = 0
    vanished: int = 0
    lost: int = 0
    updated: int = 0
    foreign_orders: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def corrections(self) -> int:
        return self.missed_fills + self.resolved_unknown + self.vanished + self.lost + self.updated

    def to_json(self) -> str:
        return json.dumps(
            {
                "missed_fills": self.missed_fills,
                "resolved_unknown": self.resolved_unknown,
                "vanished": self.vanished,
                "lost": self.lost,
                "updated": self.updated,
                "foreign_orders": self.foreign_orders,
                "mismatches": self.mismatches,
            },
            sort_keys=True,
        )


_COUNTERS = {
    "lost": "lost",
    "resolved": "resolved_unknown",
    "vanished": "vanished",
    "updated": "updated",
}


def reconcile_with_venue(
    om: OrderManager,
    venue: ReconcilableVenue,
    portfolio: Portfolio,
    journal: Callable[[Event], None],
    quiet: bool = False,
) -> ReconciliationReport:
    """Compare the order manager and portfolio with the venue; correct and journal.

    With ``quiet`` (periodic passes) the summary is journaled only when something
    was corrected or still differs.
    """
    handler = om.reports
    report = ReconciliationReport()
    for fill in venue.fills_since(0):
        order = om.orders.get(fill.client_order_id)
        if fill.trade_id in handler.trade_ids or order is None:
            continue
        if handler.on_fill(order, fill):
            report.missed_fills += 1
        else:
            report.mismatches.append(f"fill {fill.trade_id} cannot apply to {order!r}")

    for order in om.all_open():
        kind = handler.correct(order, venue.order_report(order.client_order_id))
        if kind is not None:
            setattr(report, _COUNTERS[kind], getattr(report, _COUNTERS[kind]) + 1)

    engine_open = {o.client_order_id for o in om.all_open()}
    report.foreign_orders = sorted(
        r.client_order_id for r in venue.open_orders() if r.client_order_id not in engine_open
    )
    _compare("balance", portfolio.account.total, venue.balances(), report)
    _compare(
        "position",
        {iid: p.qty for iid, p in portfolio.positions.items() if p.qty},
        venue.position_quantities(),
        report,
    )
    if not quiet or report.corrections or report.mismatches or report.foreign_orders:
        journal(ReconciliationCompleted(om.clock.now(), report.corrections, report.to_json()))
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
