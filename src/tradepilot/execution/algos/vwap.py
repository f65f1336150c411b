"""``vwap``: slices sized by a historical intraday volume profile.

:func:`volume_profile` turns bars into a :class:`VolumeProfile`: each bar's volume is
added to the bucket of its minute of the day (UTC), and the buckets are normalised to
shares summing to one. A slice window's weight is the profile's share over that
window (buckets partly covered count pro rata), so more is traded when the market
usually trades more. A window the profile gives no weight at all falls back to
equal weights (TWAP).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tradepilot.core.time import NS_PER_DAY, NS_PER_MINUTE
from tradepilot.execution.algos.scheduled import ScheduledAlgo, ScheduleParams
from tradepilot.model.data import Bar

MINUTES_PER_DAY = NS_PER_DAY // NS_PER_MINUTE


@dataclass(frozen=True)
class VolumeProfile:
    """Share of a day's volume per bucket of ``bucket_minutes`` (UTC, from midnight)."""

    shares: tuple[float, ...]
    bucket_minutes: int = 1

    def __post_init__(self) -> None:
        m = self.bucket_minutes
        if isinstance(m, bool) or not isinstance(m, int) or m <= 0 or MINUTES_PER_DAY % m:
            raise ValueError(f"bucket_minutes must divide a day (1440 minutes), got {m!r}")
        n = MINUTES_PER_DAY // m
        if len(self.shares) != n:
            raise ValueError(f"a profile of {m}-minute buckets needs {n} shares")
        if not all(isinstance(s, int | float) and math.isfinite(s) and s >= 0 for s in self.shares):
            raise ValueError("profile shares must be finite non-negative numbers")
        total = math.fsum(self.shares)
        if total <= 0:
            raise ValueError("a volume profile needs some volume")
        object.__setattr__(self, "shares", tuple(float(s) / total for s in self.shares))

    @property
    def bucket_ns(self) -> int:
        return self.bucket_minutes * NS_PER_MINUTE

    def weight(self, start_ns: int, end_ns: int) -> float:
        """The profile's share of volume over ``[start_ns, end_ns)``."""
        size = self.bucket_ns
        n = len(self.shares)
        total = 0.0
        t = start_ns
        while t < end_ns:
            k = t // size
            nxt = min((k + 1) * size, end_ns)
            total += self.shares[k % n] * (nxt - t) / size
            t = nxt
        return total


def volume_profile(bars: Iterable[Bar], bucket_minutes: int = 1) -> VolumeProfile:
    """Intraday volume profile of ``bars`` by minute of the day of their open time."""
    if isinstance(bucket_minutes, bool) or bucket_minutes <= 0 or MINUTES_PER_DAY % bucket_minutes:
        raise ValueError(f"bucket_minutes must divide a day (1440 minutes), got {bucket_minutes}")
    n = MINUTES_PER_DAY // bucket_minutes
    size = bucket_minutes * NS_PER_MINUTE
    volumes = [0] * n
    for bar in bars:
        volumes[(bar.ts_open // size) % n] += bar.volume
    if not any(volumes):
        raise ValueError("no volume in these bars to build a profile from")
    total = sum(volumes)
    return VolumeProfile(tuple(v / total for v in volumes), bucket_minutes)


@dataclass(frozen=True, kw_only=True)
class VwapParams(ScheduleParams):
    """``profile`` plus the slicing options of
    :class:`~tradepilot.execution.algos.scheduled.ScheduleParams`."""

    profile: VolumeProfile


class VwapAlgo(ScheduledAlgo[VwapParams]):
    name = "vwap"
    params_type = VwapParams

    def window_weights(self, windows: list[tuple[int, int]]) -> list[float]:
        return [self.params.profile.weight(a, b) for a, b in windows]
