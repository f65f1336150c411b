"""Clocks. The engine's logic reads time only from here (never from the OS directly).

* :class:`SimClock` - set by the kernel to each event's timestamp (backtest, replay).
* :class:`LiveClock` - the wall clock (live and live-data paper sessions).
"""

from __future__ import annotations

import time
from typing import Protocol


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
