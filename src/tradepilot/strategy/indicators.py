"""What the pipeline knows about each instrument's recent prices.

:class:`MarketState` is fed every bar (or trade) of one instrument and answers
the questions the gates, sizers and exits ask:

* ``momentum_pct(lookback)`` - ``(price_now / price_lookback_ago - 1) * 100``,
  scaled to % per hour; None until a whole lookback of prices has been seen
  (the same definition as :mod:`tradepilot.strategy.examples.momentum`);
* ``atr`` - Wilder's average true range over ``atr_period`` bars (price units);
* ``returns`` - when the state is built with a ``returns_horizon_ns``, the rolling
  sample of overlapping returns over that horizon within the history
  (:class:`RollingReturns`): updated in O(log n) per price, CVaR in O(k);
* ``horizon_returns(h)`` - the same returns for any horizon, as a numpy array
  (computed on demand and cached until the next price).

Prices are kept as floats: these are statistics, not money.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque

import numpy as np
import numpy.typing as npt

from tradepilot.core.time import NS_PER_HOUR
from tradepilot.model import fixed
from tradepilot.model.data import Bar

F64 = npt.NDArray[np.float64]
_EMPTY: F64 = np.zeros(0, dtype=np.float64)


def tail_count(n: int, alpha: float) -> int:
    """How many of ``n`` returns form the ``1 - alpha`` tail: ``max(1, ceil((1 - alpha) n))``."""
    return max(1, math.ceil(round((1.0 - alpha) * n, 9)))


class RollingReturns:
    """A rolling sample of returns, kept sorted, for CVaR and volatility in a hurry.

    ``add(ts, r)`` appends, ``drop_before(ts)`` forgets the older ones; both are
    O(log n) plus a memmove. :meth:`cvar` averages the ``k`` worst (O(k));
    :meth:`std` is computed on demand and cached until the sample changes.
    """

    __slots__ = ("_items", "_k", "_sorted", "_std")

    def __init__(self) -> None:
        self._items: deque[tuple[int, float]] = deque()
        self._sorted: list[float] = []
        self._std: float | None = None
        self._k: tuple[int, float, int] = (-1, 0.0, 1)  # (n, alpha) -> tail count

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, ts: int, r: float) -> None:
        self._items.append((ts, r))
        insort(self._sorted, r)
        self._std = None

    def pop_last(self) -> None:
        _, r = self._items.pop()
        self._remove(r)

    def drop_before(self, ts: int) -> None:
        items = self._items
        while items and items[0][0] < ts:
            self._remove(items.popleft()[1])

    def _remove(self, r: float) -> None:
        srt = self._sorted
        del srt[bisect_left(srt, r)]
        self._std = None

    def values(self) -> list[float]:
        """The returns in time order."""
        return [r for _, r in self._items]

    def cvar(self, alpha: float) -> float:
        """Mean loss (positive) of the worst ``1 - alpha`` of the sample; 0 if they are gains."""
        srt = self._sorted
        n = len(srt)
        if n == 0:
            raise ValueError("CVaR needs at least one return")
        last_n, last_alpha, k = self._k
        if n != last_n or alpha != last_alpha:
            k = tail_count(n, alpha)
            self._k = (n, alpha, k)
        loss = -sum(srt[:k]) / k
        return loss if loss > 0.0 else 0.0

    def std(self) -> float | None:
        """Sample standard deviation (None with fewer than two returns)."""
        if self._std is None and len(self._sorted) >= 2:
            self._std = float(np.std(np.fromiter(self._sorted, np.float64), ddof=1))
        return self._std


class MarketState:
    __slots__ = (
        "_cache",
        "_horizon",
        "_n_tr",
        "_prev_close",
        "_px",
        "_start",
        "_tr_sum",
        "_ts",
        "atr",
        "atr_period",
        "history_ns",
        "instrument_id",
        "last_px",
        "last_ts",
        "returns",
    )

    def __init__(
        self,
        instrument_id: str,
        history_ns: int = 24 * NS_PER_HOUR,
        atr_period: int = 14,
        returns_horizon_ns: int | None = None,
    ) -> None:
        if history_ns <= 0 or atr_period <= 0:
            raise ValueError("history and ATR period must be positive")
        if returns_horizon_ns is not None and not 0 < returns_horizon_ns <= history_ns:
            raise ValueError("the returns horizon must be positive and within the history")
        self._horizon = returns_horizon_ns
        self.returns: RollingReturns | None = (
            RollingReturns() if returns_horizon_ns is not None else None
        )
        self.instrument_id = instrument_id
        self.history_ns = history_ns
        self.atr_period = atr_period
        self._ts: list[int] = []
        self._px: list[float] = []
        self._start = 0
        self.atr: float | None = None
        self._prev_close: float | None = None
        self._tr_sum = 0.0
        self._n_tr = 0
        self.last_px: int | None = None  # raw
        self.last_ts = 0
        self._cache: dict[int, F64] = {}

    def __len__(self) -> int:
        return len(self._ts) - self._start

    # -- updates -----------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        s = fixed.SCALE
        high, low, close = bar.high / s, bar.low / s, bar.close / s
        prev = self._prev_close
        tr = high - low if prev is None else max(high - low, abs(high - prev), abs(low - prev))
        n = self.atr_period
        if self._n_tr < n:
            self._tr_sum += tr
            self._n_tr += 1
            if self._n_tr == n:
                self.atr = self._tr_sum / n
        else:
            atr = self.atr if self.atr is not None else tr
            self.atr = (atr * (n - 1) + tr) / n
        self._prev_close = close
        self._append(bar.ts, close, bar.close)

    def on_price(self, ts: int, price_raw: int) -> None:
        """A trade or mid price (no ATR from ticks)."""
        self._append(ts, price_raw / fixed.SCALE, price_raw)

    def _append(self, ts: int, px: float, raw: int) -> None:
        rets = self.returns
        if self._ts and ts <= self._ts[-1]:
            if ts < self._ts[-1]:
                return
            self._px[-1] = px  # a second price at the same time replaces the first
            if rets is not None and rets._items and rets._items[-1][0] == ts:
                rets.pop_last()
        else:
            self._ts.append(ts)
            self._px.append(px)
        self.last_px = raw
        self.last_ts = ts
        if self._cache:
            self._cache.clear()
        self._trim(ts)
        if rets is not None:
            horizon = self._horizon
            assert horizon is not None
            past = self.price_at(ts - horizon)
            if past is not None and past > 0:
                rets.add(ts, px / past - 1.0)
            rets.drop_before(ts - self.history_ns)

    def _trim(self, now: int) -> None:
        ts = self._ts
        horizon = now - self.history_ns
        # keep one price at or before the horizon, so a full-history lookback still works
        start = self._start
        while start + 1 < len(ts) and ts[start + 1] <= horizon:
            start += 1
        self._start = start
        if start > 4096 and start * 2 > len(ts):
            del self._ts[:start]
            del self._px[:start]
            self._start = 0

    # -- queries ------------------------------------------------------------------------------
    def price_at(self, ts: int) -> float | None:
        """The last price at or before ``ts`` among those kept."""
        i = bisect_right(self._ts, ts, lo=self._start) - 1
        return self._px[i] if i >= self._start else None

    def momentum_pct(self, lookback_ns: int = NS_PER_HOUR) -> float | None:
        """Change over ``lookback_ns`` in % per hour; None before a full lookback."""
        if not self._ts:
            return None
        past = self.price_at(self.last_ts - lookback_ns)
        if past is None or past <= 0:
            return None
        return (self._px[-1] / past - 1.0) * 100.0 * (NS_PER_HOUR / lookback_ns)

    def horizon_returns(self, horizon_ns: int) -> F64:
        """Overlapping returns ``p(t) / p(t - horizon) - 1`` over the kept history."""
        cached = self._cache.get(horizon_ns)
        if cached is not None:
            return cached
        ts = np.asarray(self._ts[self._start :], dtype=np.int64)
        if len(ts) < 2:
            return _EMPTY
        px = np.asarray(self._px[self._start :], dtype=np.float64)
        j = np.searchsorted(ts, ts - horizon_ns, side="right") - 1
        ok = j >= 0
        out: F64 = px[ok] / px[j[ok]] - 1.0
        self._cache[horizon_ns] = out
        return out

    def realized_vol(self, horizon_ns: int) -> float | None:
        """Sample standard deviation of the horizon returns (None with fewer than 2)."""
        r = self.horizon_returns(horizon_ns)
        return float(np.std(r, ddof=1)) if len(r) >= 2 else None
