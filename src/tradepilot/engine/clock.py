"""Clocks. The engine's logic reads time only from here (never from the OS directly).

* :class:`SimClock` - set by the kernel to each event's timestamp (backtest, replay).
* :class:`LiveClock` - the wall clock (live and live-data paper sessions).
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR


class Clock(Protocol):
    def now(self) -> int:
        """Current time in ns since the epoch (UTC)."""
        ...


class SimClock:
    """A clock that only moves when the kernel moves it, and never backwards."""

    __slots__ = ("ts",)

    def __init__(self, start_ns: int = 0) -> None:
        self.ts = start_ns

    def now(self) -> int:
        return self.ts

    def advance_to(self, ts: int) -> None:
        if ts < self.ts:
            raise ValueError(f"clock cannot go backwards ({ts} < {self.ts})")
        self.ts = ts


class LiveClock:
    __slots__ = ()

    def now(self) -> int:
        return time.time_ns()


def parse_duration(text: str) -> int:
    """'300s', '5m', '24h', '2d', '150ms' or a bare number of seconds -> nanoseconds."""
    text = text.strip().lower()
    units = (
        ("ms", 1_000_000),
        ("s", NS_PER_SECOND),
        ("m", NS_PER_MINUTE),
        ("h", NS_PER_HOUR),
        ("d", NS_PER_DAY),
    )
    number, mult = text, NS_PER_SECOND
    for suffix, unit in units:
        if text.endswith(suffix):
            number, mult = text[: -len(suffix)], unit
            break
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 300s, 5m, 24h)") from None
    if value < 0 or value != value:
        raise ValueError(f"duration must be non-negative: {text!r}")
    return round(value * mult)
