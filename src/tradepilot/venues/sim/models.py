"""Configuration of the simulated venue: fill rules and the latency model."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class FillModel:
    """How the simulated venue turns market data into fills.

    * ``limit_fill``: ``"touch"`` fills a resting limit when a trade (or a bar's
      path) reaches its price; ``"through"`` only when the price goes beyond it.
    * ``market_slippage_ticks``: on trade ticks, a market order fills at the next
      trade's price moved this many ticks against the taker.
    * ``bar_slippage_ticks``: the same for market orders filled at a bar's open.
    * ``bar_volume_participation``: if set (0-1], the share of a bar's volume that
      this venue's orders may take in that bar; the rest of an order waits.
    * ``cap_limit_fills_to_trade_size``: on trade ticks, a resting limit fills at
      most the traded size (partial fills), instead of in full.
    * ``book_cross_share`` and ``book_cross_window_ns``: on an L2 book, a resting limit
      fills from the trades that reach it after the queue ahead. When the other side of
      the book moves onto its price, it may also take this share (0-1) of the crossing
      displayed liquidity, but never more than the market volume that traded at or
      through its price in the last ``book_cross_window_ns`` (less what our own resting
      fills already took of that volume). ``1`` and ``None`` restore the old, generous
      rule (the whole crossing depth, whatever traded).
    """

    limit_fill: Literal["touch", "through"] = "touch"
    market_slippage_ticks: int = 0
    bar_slippage_ticks: int = 0
    bar_volume_participation: float | None = None
    cap_limit_fills_to_trade_size: bool = True
    book_cross_share: float = 0.1
    book_cross_window_ns: int | None = 1_000_000_000

    def __post_init__(self) -> None:
        if self.limit_fill not in ("touch", "through"):
            raise ValueError("limit_fill must be 'touch' or 'through'")
        if self.market_slippage_ticks < 0 or self.bar_slippage_ticks < 0:
            raise ValueError("slippage ticks cannot be negative")
        part = self.bar_volume_participation
        if part is not None and not 0 < part <= 1:
            raise ValueError("bar_volume_participation must be in (0, 1]")
        if not 0 <= self.book_cross_share <= 1:  # also refuses NaN
            raise ValueError("book_cross_share must be in [0, 1]")
        window = self.book_cross_window_ns
        if window is not None and window <= 0:
            raise ValueError("book_cross_window_ns must be positive (or None: no cap)")


class LatencyModel:
    """Seeded order latency: ``fixed_ns`` plus a uniform jitter in ``[0, jitter_ns]``.

    The same seed gives the same sequence of delays, so backtests stay deterministic.
    """

    __slots__ = ("_rng", "fixed_ns", "jitter_ns", "seed")

    def __init__(self, fixed_ns: int = 0, jitter_ns: int = 0, seed: int = 0) -> None:
        if fixed_ns < 0 or jitter_ns < 0:
            raise ValueError("latency cannot be negative")
        self.fixed_ns = fixed_ns
        self.jitter_ns = jitter_ns
        self.seed = seed
        self._rng = random.Random(seed)

    def sample(self) -> int:
        if not self.jitter_ns:
            return self.fixed_ns
        return self.fixed_ns + self._rng.randint(0, self.jitter_ns)
