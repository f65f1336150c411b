"""Reconciliation of a whole engine with its venue.

See :mod:`tradepilot.execution.reconciliation` for what is compared and corrected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradepilot.execution.reconciliation import (
    ReconcilableVenue,
    ReconciliationReport,
    reconcile_with_venue,
)

if TYPE_CHECKING:
    from tradepilot.engine.kernel import Engine

__all__ = ["ReconcilableVenue", "ReconciliationReport", "reconcile"]


def reconcile(engine: Engine, venue: ReconcilableVenue | None = None) -> ReconciliationReport:
    """Compare the engine with its venue and journal a correction for every difference."""
    return reconcile_with_venue(
        engine.orders,
        venue if venue is not None else engine.venue_queries,
        engine.portfolio,
        engine.journal.append,
    )
