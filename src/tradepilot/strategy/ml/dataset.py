"""From a bar series to a training set: features, labels, sample times, a digest.

Samples are taken every ``step`` bars (the decision cycle: 5 one-minute bars for
a 5-minute cycle) where the features are warm and the label is known. Each
sample keeps ``t0`` (its bar index) and ``t1`` (the bar resolving its label) for
purging, and the bar's close time for reports and the out-of-sample backtest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradepilot.data.loaders import BarSeries
from tradepilot.model import fixed
from tradepilot.strategy.ml.features import compute_features
from tradepilot.strategy.ml.labels import LabelConfig, make_labels

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BarArrays:
    """A bar series as floats; ``ts`` is each bar's close time (ns)."""

    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    @classmethod
    def from_series(cls, series: BarSeries) -> BarArrays:
        s = float(fixed.SCALE)
        ts: I64 = np.asarray(series.ts_open, dtype=np.int64) + series.interval_ns
        return cls(
            ts,
            series.open / s,
            series.high / s,
            series.low / s,
            series.close / s,
            series.volume / s,
        )

    def __len__(self) -> int:
        return len(self.ts)

    def select(self, keep: npt.NDArray[np.bool_] | slice) -> BarArrays:
        """The bars at ``keep`` (a boolean mask or a slice)."""
        return BarArrays(
            self.ts[keep],
            self.open[keep],
            self.high[keep],
            self.low[keep],
            self.close[keep],
            self.volume[keep],
        )

    def digest(self) -> str:
        """sha256 of the bars (times and values), independent of the file they came from."""
        h = hashlib.sha256()
        for arr in (self.ts, self.open, self.high, self.low, self.close, self.volume):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


@dataclass(frozen=True)
class TrainingSet:
    x: F64
    y: F64
    t0: I64  # bar index of each sample
    t1: I64  # bar index resolving its label
    ts: I64  # close time of the sample's bar
    bars: BarArrays


def build(bars: BarArrays, labels: LabelConfig, step: int = 5) -> TrainingSet:
    """Samples every ``step`` bars with warm features and a known label."""
    if step < 1:
        raise ValueError("the sample step must be at least 1 bar")
    feats = compute_features(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
    y, end = make_labels(labels, bars.high, bars.low, bars.close)
    idx = np.arange(0, len(bars), step, dtype=np.int64)
    ok = ~np.isnan(feats[idx]).any(axis=1) & ~np.isnan(y[idx])
    idx = idx[ok]
    return TrainingSet(feats[idx], y[idx], idx, end[idx], bars.ts[idx], bars)
