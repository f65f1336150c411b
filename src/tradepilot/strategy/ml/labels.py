"""Labels: what a model is trained to predict, and when each label is known.

Every label comes with the index of the bar at which it is *resolved* (``end``):
the label of bar ``i`` uses prices up to bar ``end[i]``, so a training sample is
only honest for a test period that starts after ``end[i]`` - the walk-forward
splitter purges by it (:mod:`tradepilot.strategy.ml.walkforward`).

* :func:`forward_return_labels` - 1 when the log return from the close of bar
  ``i`` to the close of bar ``i + horizon`` beats the round-trip cost
  (``2 * fee``), else 0: "a long entered now and closed after the horizon made
  money after fees". The last ``horizon`` bars have no label (NaN).
* :func:`triple_barrier_labels` - the exits the pipeline uses: from the close of
  bar ``i``, 1 when the high reaches ``close * (1 + take_profit)`` first, 0 when
  the low reaches ``close * (1 - stop_loss)`` first (both in one bar counts as the
  stop: we cannot tell which came first, so assume the worse), and at the time
  limit 1 if the return beats the round-trip cost, else 0. Bars whose time limit
  lies beyond the data and that touched no barrier have no label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
KINDS = ("forward", "triple_barrier")


@dataclass(frozen=True)
class LabelConfig:
    """How labels are made: ``kind`` forward or triple_barrier, horizons in bars."""

    kind: str = "forward"
    horizon: int = 60  # bars (forward) / time limit (triple barrier)
    fee: float = 0.001  # per side, a fraction (10 bps)
    take_profit: float = 0.01
    stop_loss: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"label kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.horizon < 1:
            raise ValueError(f"label horizon must be at least 1 bar, got {self.horizon}")
        if not 0 <= self.fee < 0.1:
            raise ValueError(f"fee must be a fraction in [0, 0.1), got {self.fee}")
        if self.take_profit <= 0 or self.stop_loss <= 0:
            raise ValueError("take_profit and stop_loss must be positive fractions")


def forward_return_labels(close: F64, horizon: int, fee: float) -> tuple[F64, I64]:
    """(label 0/1 or NaN, index of the bar that resolves it)."""
    n = len(close)
    y: F64 = np.full(n, np.nan)
    end: I64 = np.minimum(np.arange(n, dtype=np.int64) + horizon, n - 1)
    if n > horizon:
        r = np.log(close[horizon:] / close[:-horizon])
        y[: n - horizon] = (r > 2.0 * fee).astype(np.float64)
    return y, end


def triple_barrier_labels(
    high: F64,
    low: F64,
    close: F64,
    horizon: int,
    take_profit: float,
    stop_loss: float,
    fee: float,
) -> tuple[F64, I64]:
    """(label 0/1 or NaN, index of the bar at which a barrier or the time limit resolved it)."""
    n = len(close)
    y: F64 = np.full(n, np.nan)
    end: I64 = np.full(n, n - 1, dtype=np.int64)
    cost = 2.0 * fee
    for i in range(n - 1):
        stop = min(i + horizon, n - 1)
        c0 = close[i]
        hi = high[i + 1 : stop + 1] >= c0 * (1.0 + take_profit)
        lo = low[i + 1 : stop + 1] <= c0 * (1.0 - stop_loss)
        hit = hi | lo
        if hit.any():
            j = int(np.argmax(hit))
            y[i] = 0.0 if lo[j] else 1.0
            end[i] = i + 1 + j
        elif i + horizon <= n - 1:
            y[i] = 1.0 if np.log(close[i + horizon] / c0) > cost else 0.0
            end[i] = i + horizon
    return y, end


def make_labels(config: LabelConfig, high: F64, low: F64, close: F64) -> tuple[F64, I64]:
    if config.kind == "forward":
        return forward_return_labels(close, config.horizon, config.fee)
    return triple_barrier_labels(
        high, low, close, config.horizon, config.take_profit, config.stop_loss, config.fee
    )
