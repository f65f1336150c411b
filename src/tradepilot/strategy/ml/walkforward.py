"""Walk-forward evaluation with purged and embargoed splits.

Samples are time ordered (``t0``: the bar a sample's features end at; ``t1``: the
bar that resolves its label). Fold ``k`` tests on a contiguous block of samples
and trains only on samples *before* it:

* ``expanding`` - every earlier sample; ``rolling`` - the last ``train`` samples;
* **purge** - a training sample whose label is resolved at or after the first test
  bar (``t1 >= t0[test start]``) is dropped: its label overlaps the test period;
* **embargo** - training samples whose features end within ``embargo`` bars before
  the test start are dropped too, so serially correlated features just before the
  test period cannot leak into it.

Nothing ever trains on data after the test block, so the one-sided embargo of
purged k-fold after the test block has no role here.

:func:`evaluate` fits every member per fold (:func:`~.models.fit_member`),
predicts the test block, and scores each member, the ensemble and the naive
baseline (the training base rate as a constant probability) - per fold and over
all out-of-sample predictions together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tradepilot.strategy.ml.models import Member, MemberSpec, fit_member

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
MODES = ("expanding", "rolling")


@dataclass(frozen=True)
class WalkForwardConfig:
    """Fold sizes in samples; ``embargo`` in bars."""

    folds: int = 5
    test: int = 0  # samples per test block; 0 = split the rest evenly into ``folds``
    train: int = 0  # samples in the first (and, rolling, every) training window; 0 = auto
    mode: str = "expanding"
    embargo: int = 60
    calibration: float = 0.2
    seed: int = 7

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"walk-forward mode must be expanding or rolling, got {self.mode!r}")
        if self.folds < 1:
            raise ValueError("walk-forward needs at least one fold")
        if self.test < 0 or self.train < 0 or self.embargo < 0:
            raise ValueError("test, train and embargo cannot be negative")
        if not 0 <= self.calibration < 0.5:
            raise ValueError("calibration must be a fraction in [0, 0.5)")


@dataclass(frozen=True)
class Fold:
    index: int
    train: I64  # sample positions
    test: I64


def splits(t0: I64, t1: I64, config: WalkForwardConfig) -> list[Fold]:
    """The purged, embargoed walk-forward folds over ``len(t0)`` time-ordered samples."""
    n = len(t0)
    train0 = config.train or n // (config.folds + 1)
    test = config.test or (n - train0) // config.folds
    if train0 < 20 or test < 1 or train0 + test > n:
        raise ValueError(
            f"{n} samples are too few for {config.folds} folds (train {train0}, test {test})"
        )
    folds: list[Fold] = []
    for k in range(config.folds):
        start = train0 + k * test
        stop = min(start + test, n) if k < config.folds - 1 else n
        if start >= n:
            break
        lo = 0 if config.mode == "expanding" else max(0, start - train0)
        idx = np.arange(lo, start, dtype=np.int64)
        first = t0[start]
        keep = (t1[idx] < first) & (t0[idx] < first - config.embargo)
        folds.append(Fold(k, idx[keep], np.arange(start, stop, dtype=np.int64)))
    return folds


# -- scores ------------------------------------------------------------------------------------
def scores(p: F64, y: F64) -> dict[str, float]:
    """Accuracy, precision, recall (of class 1 at p >= 0.5), Brier score and log loss."""
    pred = p >= 0.5
    truth = y >= 0.5
    tp = float(np.sum(pred & truth))
    q = np.clip(p, 1e-12, 1.0 - 1e-12)
    return {
        "n": float(len(y)),
        "accuracy": float(np.mean(pred == truth)) if len(y) else math.nan,
        "precision": tp / float(np.sum(pred)) if np.any(pred) else math.nan,
        "recall": tp / float(np.sum(truth)) if np.any(truth) else math.nan,
        "brier": float(np.mean((p - y) ** 2)) if len(y) else math.nan,
        "log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
        if len(y)
        else math.nan,
        "base_rate": float(np.mean(y)) if len(y) else math.nan,
    }


@dataclass
class FoldResult:
    index: int
    train_n: int
    test_n: int
    train_bars: tuple[int, int]  # first and last bar index trained on
    test_bars: tuple[int, int]
    members: list[Member]
    scores: dict[str, dict[str, float]]  # model name | "ensemble" | "baseline" -> scores


@dataclass
class WalkForwardResult:
    folds: list[FoldResult]
    overall: dict[str, dict[str, float]]
    oos_index: I64  # sample positions predicted out of sample
    oos_proba: dict[str, F64] = field(default_factory=dict)  # name -> p over oos_index
    test_blocks: list[I64] = field(default_factory=list)  # each fold's test sample positions

    def folds_index(self) -> list[Fold]:
        """The folds' train/test positions (test blocks in time order)."""
        return [
            Fold(f.index, np.zeros(0, np.int64), t)
            for f, t in zip(self.folds, self.test_blocks, strict=True)
        ]


def ensemble_proba(
    members: Sequence[Member], x: F64, weights: dict[str, float] | None = None
) -> F64:
    """The ensemble probability for every row of ``x`` (as :func:`.ensemble.combine`)."""
    probs = {m.name: m.proba(x) for m in members}
    w = weights or {m.name: m.weight for m in members}
    total = math.fsum(w.get(name, 1.0) for name in probs)
    out: F64 = sum((w.get(name, 1.0) * p for name, p in probs.items()), np.zeros(len(x))) / total
    return out


def evaluate(
    x: F64,
    y: F64,
    t0: I64,
    t1: I64,
    specs: Sequence[MemberSpec],
    config: WalkForwardConfig,
    shuffle_labels: bool = False,
) -> WalkForwardResult:
    """Fit and score every fold. ``shuffle_labels`` permutes each fold's training labels
    (a control: it must score no better than the baseline out of sample)."""
    rng = np.random.default_rng(config.seed)
    results: list[FoldResult] = []
    oos_idx: list[I64] = []
    oos: dict[str, list[F64]] = {}
    for fold in splits(t0, t1, config):
        tr, te = fold.train, fold.test
        y_tr = y[tr].copy()
        if shuffle_labels:
            rng.shuffle(y_tr)
        members = [
            fit_member(s, x[tr], y_tr, t0[tr], t1[tr], config.calibration, config.seed)
            for s in specs
        ]
        probs: dict[str, F64] = {m.name: m.proba(x[te]) for m in members}
        probs["ensemble"] = ensemble_proba(members, x[te])
        probs["baseline"] = np.full(len(te), float(np.mean(y_tr)))
        fold_scores = {name: scores(p, y[te]) for name, p in probs.items()}
        results.append(
            FoldResult(
                fold.index,
                len(tr),
                len(te),
                (int(t0[tr[0]]), int(t0[tr[-1]])),
                (int(t0[te[0]]), int(t0[te[-1]])),
                members,
                fold_scores,
            )
        )
        oos_idx.append(te)
        for name, p in probs.items():
            oos.setdefault(name, []).append(p)
    index = np.concatenate(oos_idx)
    proba = {name: np.concatenate(parts) for name, parts in oos.items()}
    overall = {name: scores(p, y[index]) for name, p in proba.items()}
    return WalkForwardResult(results, overall, index, proba, oos_idx)
