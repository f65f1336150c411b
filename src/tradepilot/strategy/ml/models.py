"""The four model kinds, their training, and calibrated probabilities.

A :class:`Member` is one fitted model of the ensemble in the form it is *used*
in: scikit-learn estimators (logistic regression in a scaling pipeline, a random
forest) and the native boosters of LightGBM and XGBoost. Training, the
walk-forward evaluation, the out-of-sample backtest and a loaded artifact all
predict through the same :meth:`Member.proba`, so what was measured is what runs.

Probabilities are calibrated by Platt scaling fitted on data the model did not
see: :func:`fit_member` trains on the first ``1 - calibration`` of its (time
ordered) training samples and fits ``p = sigmoid(a * logit(raw) + b)`` on the
rest. Training samples whose label is resolved at or after the first
calibration sample are purged, so the calibration set is out of sample too.
The base model is not refitted on the whole window afterwards: the calibration
describes exactly the model that ships.

Every model is small and single-threaded (``n_jobs=1``), seeded, and so
deterministic; the default sizes keep an artifact of four models at a few hundred
KB and a prediction of all four near a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
KINDS = ("logreg", "forest", "lightgbm", "xgboost")
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logreg": {"C": 0.1, "max_iter": 500},
    "forest": {"n_estimators": 30, "max_depth": 5, "min_samples_leaf": 50},
    "lightgbm": {
        "n_estimators": 60,
        "num_leaves": 8,
        "learning_rate": 0.05,
        "min_child_samples": 50,
    },
    "xgboost": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.05, "min_child_weight": 20},
}
_EPS = 1e-6


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member to train: a name, its kind, parameters and weight."""

    name: str
    kind: str
    weight: float = 1.0
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ValueError(f"member {self.name}: weight must be positive, got {self.weight}")

    def all_params(self) -> dict[str, Any]:
        return {**DEFAULT_PARAMS[self.kind], **dict(self.params)}


def default_members() -> tuple[MemberSpec, ...]:
    return tuple(MemberSpec(kind, kind) for kind in KINDS)


def _logit(p: F64) -> F64:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    out: F64 = np.log(q / (1.0 - q))
    return out


class Member:
    """A fitted model with its Platt calibration; :meth:`proba` is P(label = 1)."""

    __slots__ = ("a", "b", "estimator", "kind", "name", "weight")

    def __init__(
        self,
        name: str,
        kind: str,
        estimator: Any,
        a: float = 1.0,
        b: float = 0.0,
        weight: float = 1.0,
    ) -> None:
        self.name = name
        self.kind = kind
        self.estimator = estimator
        self.a = a
        self.b = b
        self.weight = weight

    def raw_proba(self, x: F64) -> F64:
        """Uncalibrated P(1) for the rows of ``x`` (2-D)."""
        est = self.estimator
        kind = self.kind
        if kind == "lightgbm":
            out: F64 = np.asarray(est.predict(x, num_threads=1), dtype=np.float64)
        elif kind == "xgboost":
            out = np.asarray(est.inplace_predict(x), dtype=np.float64)
        elif kind == "forest":
            # the forest's own average of its trees' probabilities, without the per-call
            # thread-pool set-up of predict_proba (milliseconds for one row)
            x32 = np.asarray(x, dtype=np.float32)
            total = np.zeros(len(x), dtype=np.float64)
            for tree in est.estimators_:
                total += tree.predict_proba(x32, check_input=False)[:, 1]
            out = total / len(est.estimators_)
        else:
            out = np.asarray(est.predict_proba(x)[:, 1], dtype=np.float64)
        return out

    def proba(self, x: F64) -> F64:
        z = self.a * _logit(self.raw_proba(x)) + self.b
        out: F64 = 1.0 / (1.0 + np.exp(-z))
        return out


def _fit_estimator(kind: str, params: dict[str, Any], x: F64, y: F64, seed: int) -> Any:
    yi = y.astype(np.int64)
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(random_state=seed, **params))
        model.fit(x, yi)
        return model
    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        forest = RandomForestClassifier(n_jobs=1, random_state=seed, **params)
        forest.fit(x, yi)
        return forest
    if kind == "lightgbm":
        import lightgbm

        lgbm = lightgbm.LGBMClassifier(n_jobs=1, random_state=seed, verbose=-1, **params)
        lgbm.fit(x, yi)
        return lgbm.booster_
    import xgboost

    xgbm = xgboost.XGBClassifier(n_jobs=1, random_state=seed, **params)
    xgbm.fit(x, yi)
    booster = xgbm.get_booster()
    booster.set_param({"nthread": 1})
    return booster


def platt(raw: F64, y: F64) -> tuple[float, float]:
    """Platt scaling ``(a, b)`` of raw probabilities against labels (identity if one class)."""
    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, max_iter=1000)
    lr.fit(_logit(raw).reshape(-1, 1), y.astype(np.int64))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def fit_member(
    spec: MemberSpec,
    x: F64,
    y: F64,
    t0: I64,
    t1: I64,
    calibration: float = 0.2,
    seed: int = 7,
) -> Member:
    """Fit on the first part of a time-ordered training set, calibrate on the rest.

    ``t0``/``t1`` are each sample's bar index and the index resolving its label; fit
    samples whose label reaches into the calibration part are purged.
    """
    n = len(y)
    if n < 20:
        raise ValueError(f"member {spec.name}: {n} training samples are too few")
    if len(np.unique(y)) < 2:
        raise ValueError(f"member {spec.name}: the training labels are all one class")
    k = int(n * (1.0 - calibration)) if calibration > 0 else n
    fit_mask = np.arange(n) < k
    if k < n:
        fit_mask &= t1 < t0[k]
    xf, yf = x[fit_mask], y[fit_mask]
    if len(np.unique(yf)) < 2:
        xf, yf = x[:k], y[:k]
    est = _fit_estimator(spec.kind, spec.all_params(), xf, yf, seed)
    member = Member(spec.name, spec.kind, est, weight=spec.weight)
    if k < n:
        member.a, member.b = platt(member.raw_proba(x[k:]), y[k:])
    return member
