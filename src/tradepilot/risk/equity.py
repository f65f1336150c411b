"""Equity bookkeeping shared by the loss rules and the circuit breaker.

Percentages are compared exactly in integers: ``pct_raw`` is the percentage as a
raw fixed-point int (``fixed.to_raw(20.0)`` for 20 %), and ``a >= pct % of b`` is
``a * 100 * SCALE >= b * pct_raw``.
"""

from __future__ import annotations

from typing import Any

from tradepilot.core.time import NS_PER_DAY
from tradepilot.model import fixed

HUNDRED = 100 * fixed.SCALE  # 100 % as a raw fixed-point int


def pct_raw(pct: float) -> int:
    """A percentage (float, 20.0 = 20 %) as a raw fixed-point int, exactly as written."""
    return fixed.to_raw(pct)


def pct_str(raw: int) -> str:
    return f"{fixed.to_str(raw)}%"


def share_pct(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole``, for messages (two decimals)."""
    if whole <= 0:
        return "n/a"
    return f"{part * 100 / whole:.2f}%"


def at_least_pct(part: int, whole: int, limit_raw: int) -> bool:
    """``part >= limit % of whole``, exactly."""
    return part * HUNDRED >= whole * limit_raw


def above_pct(part: int, whole: int, limit_raw: int) -> bool:
    """``part > limit % of whole``, exactly."""
    return part * HUNDRED > whole * limit_raw


def pct_of(whole: int, limit_raw: int) -> int:
    """``limit % of whole`` (floored), for messages."""
    return whole * limit_raw // HUNDRED


class EquityWatch:
    """Peak equity and the first equity of the current UTC day, folded from observations."""

    __slots__ = ("day", "day_start", "peak")

    def __init__(self) -> None:
        self.peak: int | None = None
        self.day: int | None = None  # UTC day number (ts // NS_PER_DAY)
        self.day_start: int | None = None

    def observe(self, ts: int, equity: int) -> None:
        day = ts // NS_PER_DAY
        if self.day is None or day > self.day:
            self.day = day
            self.day_start = equity
        if self.peak is None or equity > self.peak:
            self.peak = equity

    def rebase(self, equity: int) -> None:
        """Measure drawdown and the day's loss from ``equity`` from now on."""
        self.peak = equity
        if self.day is not None:
            self.day_start = equity

    def drawdown(self, equity: int) -> int:
        """Drop from the peak (0 if at or above it, or no peak yet)."""
        peak = self.peak
        return peak - equity if peak is not None and equity < peak else 0

    def daily_loss(self, equity: int) -> int:
        """Drop from the day's first equity (0 if none)."""
        start = self.day_start
        return start - equity if start is not None and equity < start else 0

    def drawdown_reached(self, equity: int, limit_raw: int) -> bool:
        peak = self.peak
        return peak is not None and peak > 0 and at_least_pct(peak - equity, peak, limit_raw)

    def daily_loss_reached(self, equity: int, limit_raw: int) -> bool:
        start = self.day_start
        return start is not None and start > 0 and at_least_pct(start - equity, start, limit_raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak": None if self.peak is None else fixed.to_str(self.peak),
            "day": self.day,
            "day_start": None if self.day_start is None else fixed.to_str(self.day_start),
        }

    def load(self, data: dict[str, Any]) -> None:
        peak, day, start = data.get("peak"), data.get("day"), data.get("day_start")
        self.peak = None if peak is None else fixed.to_raw(str(peak))
        self.day = None if day is None else int(day)
        self.day_start = None if start is None else fixed.to_raw(str(start))
