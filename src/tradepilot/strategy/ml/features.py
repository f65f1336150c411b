"""Features from bars: one incremental implementation for training and every mode.

:class:`FeatureComputer` is fed one bar at a time (``update``) and keeps only
running state (rolling windows, exponential averages), so a feature at bar ``i``
is a function of bars ``0..i`` alone - there is no way for it to see a later bar.
Training calls :func:`compute_features`, which is nothing but that same loop over
a whole series; a live or paper session feeds the same class bar by bar. A test
truncates the data at random points and checks every value is unchanged.

All prices are floats (statistics, not money). Bars are assumed evenly spaced (one
minute in the shipped model); horizons are counted in bars. A feature row is
``None`` until the longest window is full (:attr:`FeatureComputer.warmup`).

The features, in this order (:data:`FEATURE_NAMES`; a model's manifest records
them and loading refuses a different list or order):

* ``ret_1 .. ret_240`` - log return of the close over 1, 5, 15, 60 and 240 bars;
* ``vol_30``, ``vol_120`` - realised volatility: standard deviation of 1-bar log
  returns over 30 and 120 bars;
* ``rsi_14`` - Wilder's RSI over 14 bars, scaled to 0-1;
* ``macd``, ``macd_hist`` - EMA(12) - EMA(26) of the close and its distance from
  its EMA(9) signal line, both divided by the close;
* ``atr_14`` - Wilder's average true range over 14 bars, divided by the close;
* ``range_1`` - the bar's (high - low) / close;
* ``volume_z`` - z-score of log(1 + volume) against the last 60 bars;
* ``mom_1h`` - one-hour momentum in % (the momentum rule's number);
* ``tod_sin``, ``tod_cos`` - time of day of the bar's close (UTC), on the circle.
  It comes from the bar's timestamp, never from a wall clock, so backtests stay
  deterministic.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

FEATURE_SET = "bars-v1"
RETURN_HORIZONS = (1, 5, 15, 60, 240)
VOL_WINDOWS = (30, 120)
FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{h}" for h in RETURN_HORIZONS),
    *(f"vol_{w}" for w in VOL_WINDOWS),
    "rsi_14",
    "macd",
    "macd_hist",
    "atr_14",
    "range_1",
    "volume_z",
    "mom_1h",
    "tod_sin",
    "tod_cos",
)
NS_PER_DAY = 86_400 * 1_000_000_000
_RSI, _ATR, _VOLZ, _MOM = 14, 14, 60, 60


def _ema_alpha(n: int) -> float:
    return 2.0 / (n + 1.0)


class _Window:
    """Last ``n`` values with their sum and sum of squares (recomputed, not drifted)."""

    __slots__ = ("n", "values")

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: deque[float] = deque(maxlen=n)

    def add(self, x: float) -> None:
        self.values.append(x)

    @property
    def full(self) -> bool:
        return len(self.values) == self.n

    def std(self) -> float:
        vals = self.values
        k = len(vals)
        mean = math.fsum(vals) / k
        return math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (k - 1))

    def mean_std(self) -> tuple[float, float]:
        return math.fsum(self.values) / len(self.values), self.std()


class FeatureComputer:
    """Incremental features of one instrument's bars (see the module docstring)."""

    names = FEATURE_NAMES
    feature_set = FEATURE_SET

    def __init__(self) -> None:
        self.warmup = max(*RETURN_HORIZONS, *VOL_WINDOWS, _VOLZ + 1, 26 + 9) + 1
        self._closes: deque[float] = deque(maxlen=max(RETURN_HORIZONS) + 1)
        self._rets = {w: _Window(w) for w in VOL_WINDOWS}
        self._volume = _Window(_VOLZ)
        self._n = 0
        self._prev_close: float | None = None
        self._avg_gain: float | None = None
        self._avg_loss: float | None = None
        self._gain_sum = 0.0
        self._loss_sum = 0.0
        self._atr: float | None = None
        self._tr_sum = 0.0
        self._ema12: float | None = None
        self._ema26: float | None = None
        self._signal: float | None = None
        self._macd_n = 0
        self.last: F64 | None = None  # the latest row (None while warming up)
        self.last_ts = 0

    @property
    def count(self) -> int:
        return self._n

    def update(
        self,
        ts: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> F64 | None:
        """Add one bar (``ts`` = its close time, ns); the feature row or None while warming."""
        del open_  # part of the bar; not a feature in this set
        self._n += 1
        n = self._n
        prev = self._prev_close
        closes = self._closes
        closes.append(close)
        # realised volatility inputs
        if prev is not None and prev > 0 and close > 0:
            r1 = math.log(close / prev)
            for w in self._rets.values():
                w.add(r1)
        # RSI (Wilder)
        if prev is not None:
            change = close - prev
            gain, loss = max(change, 0.0), max(-change, 0.0)
            if self._avg_gain is None or self._avg_loss is None:
                self._gain_sum += gain
                self._loss_sum += loss
                if n - 1 == _RSI:
                    self._avg_gain = self._gain_sum / _RSI
                    self._avg_loss = self._loss_sum / _RSI
            else:
                self._avg_gain = (self._avg_gain * (_RSI - 1) + gain) / _RSI
                self._avg_loss = (self._avg_loss * (_RSI - 1) + loss) / _RSI
        # ATR (Wilder)
        tr = high - low if prev is None else max(high - low, abs(high - prev), abs(low - prev))
        if self._atr is None:
            self._tr_sum += tr
            if n == _ATR:
                self._atr = self._tr_sum / _ATR
        else:
            self._atr = (self._atr * (_ATR - 1) + tr) / _ATR
        # MACD
        if self._ema12 is None or self._ema26 is None:
            self._ema12 = self._ema26 = close
        else:
            self._ema12 += _ema_alpha(12) * (close - self._ema12)
            self._ema26 += _ema_alpha(26) * (close - self._ema26)
        macd = self._ema12 - self._ema26
        self._signal = (
            macd if self._signal is None else (self._signal + _ema_alpha(9) * (macd - self._signal))
        )
        # volume z-score against the previous bars (then this bar joins the window)
        lv = math.log1p(max(volume, 0.0))
        volume_z = 0.0
        vol_ready = self._volume.full
        if vol_ready:
            mean, sd = self._volume.mean_std()
            volume_z = (lv - mean) / sd if sd > 0 else 0.0
        self._volume.add(lv)
        self._prev_close = close
        self.last_ts = ts
        if n < self.warmup or close <= 0 or self._avg_gain is None or self._avg_loss is None:
            self.last = None
            return None
        assert self._atr is not None and vol_ready
        up, down = self._avg_gain, self._avg_loss
        rsi = 0.5 if up + down == 0 else up / (up + down)
        day = (ts % NS_PER_DAY) / NS_PER_DAY * 2.0 * math.pi
        row = [
            *(math.log(close / closes[-1 - h]) for h in RETURN_HORIZONS),
            *(self._rets[w].std() for w in VOL_WINDOWS),
            rsi,
            macd / close,
            (macd - self._signal) / close,
            self._atr / close,
            (high - low) / close,
            volume_z,
            (close / closes[-1 - _MOM] - 1.0) * 100.0,
            math.sin(day),
            math.cos(day),
        ]
        out: F64 = np.asarray(row, dtype=np.float64)
        self.last = out
        return out


def compute_features(
    ts: Sequence[int] | npt.NDArray[np.int64],
    open_: Sequence[float] | F64,
    high: Sequence[float] | F64,
    low: Sequence[float] | F64,
    close: Sequence[float] | F64,
    volume: Sequence[float] | F64,
) -> F64:
    """Feature rows for a whole series: the incremental loop, rows of NaN while warming up."""
    comp = FeatureComputer()
    n = len(close)
    out: F64 = np.full((n, len(FEATURE_NAMES)), np.nan, dtype=np.float64)
    t_list = [int(t) for t in ts]
    o_l, h_l, l_l = np.asarray(open_, float), np.asarray(high, float), np.asarray(low, float)
    c_l, v_l = np.asarray(close, float), np.asarray(volume, float)
    for i, (t, o, h, lo, c, v) in enumerate(
        zip(
            t_list,
            o_l.tolist(),
            h_l.tolist(),
            l_l.tolist(),
            c_l.tolist(),
            v_l.tolist(),
            strict=True,
        )
    ):
        row = comp.update(t, o, h, lo, c, v)
        if row is not None:
            out[i] = row
    return out
