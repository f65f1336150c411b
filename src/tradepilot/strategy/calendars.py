"""Cycle schedules on a trading calendar.

The calendars themselves live in :mod:`tradepilot.core.calendars` (re-exported here).

:func:`schedule_cycles` runs a callback every ``interval`` of *engine* time,
aligned to multiples of the interval since the epoch, only while the calendar
is open. When the data has a gap (a night, a weekend) the next cycle is the
first aligned instant of the next session, never a burst of missed cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tradepilot.core.calendars import (
    AlwaysOpen,
    ExchangeHours,
    TradingCalendar,
    calendar_for,
    nyse,
    nyse_early_closes,
    nyse_holidays,
)
from tradepilot.core.time import NS_PER_DAY

if TYPE_CHECKING:
    from tradepilot.execution.context import TradingContext

__all__ = [
    "AlwaysOpen",
    "ExchangeHours",
    "TradingCalendar",
    "calendar_for",
    "next_boundary",
    "next_cycle",
    "nyse",
    "nyse_early_closes",
    "nyse_holidays",
    "schedule_cycles",
]


# -- cycles ------------------------------------------------------------------------------------
def next_boundary(ts_ns: int, interval_ns: int) -> int:
    """The first multiple of ``interval_ns`` (since the epoch) at or after ``ts_ns``."""
    return -(-ts_ns // interval_ns) * interval_ns


def next_cycle(ts_ns: int, interval_ns: int, calendar: TradingCalendar) -> int:
    """The first aligned instant at or after ``ts_ns`` at which ``calendar`` is open."""
    due = next_boundary(ts_ns, interval_ns)
    for _ in range(10_000):
        if calendar.is_open(due):
            return due
        due = next_boundary(calendar.next_open(due + 1), interval_ns)
    raise ValueError(f"{calendar.name}: no open cycle found after {ts_ns}")


def schedule_cycles(
    context: TradingContext,
    interval_ns: int,
    calendar: TradingCalendar,
    fn: Callable[[int], None],
    offset_ns: int = 0,
    first_ns: int | None = None,
) -> None:
    """Call ``fn(cycle_ts)`` at every aligned cycle in open market hours, on engine time.

    ``offset_ns`` delays each call after its boundary (``fn`` still receives the
    boundary), e.g. to log a cycle after the strategies have acted on it.
    """
    if interval_ns <= 0:
        raise ValueError("the cycle interval must be positive")
    if interval_ns > NS_PER_DAY * 7:
        raise ValueError("the cycle interval must be at most a week")
    start = context.clock.now() if first_ns is None else first_ns
    due = next_cycle(start, interval_ns, calendar)

    def fire(boundary: int) -> None:
        fn(boundary)
        nxt = next_cycle(boundary + interval_ns, interval_ns, calendar)
        context.schedule(nxt + offset_ns, lambda: fire(nxt))

    context.schedule(due + offset_ns, lambda: fire(due))
