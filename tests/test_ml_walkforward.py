"""Walk-forward: purged and embargoed splits, the shuffled-label control on real data, a
planted-signal control, the ensemble vote, and the members' calibration."""

from __future__ import annotations

import numpy as np
import pytest

from ml_helpers import btc_slice
from tradepilot.strategy.ml.dataset import build
from tradepilot.strategy.ml.ensemble import combine
from tradepilot.strategy.ml.labels import LabelConfig
from tradepilot.strategy.ml.models import MemberSpec, default_members, fit_member
from tradepilot.strategy.ml.walkforward import (
    WalkForwardConfig,
    ensemble_proba,
    evaluate,
    scores,
    splits,
)

SMALL = (
    MemberSpec("logreg", "logreg"),
    MemberSpec("forest", "forest", params={"n_estimators": 10}),
    MemberSpec("lightgbm", "lightgbm", params={"n_estimators": 20}),
    MemberSpec("xgboost", "xgboost", params={"n_estimators": 20}),
)


@pytest.mark.parametrize("mode", ["expanding", "rolling"])
def test_no_training_label_reaches_into_its_test_block(mode: str) -> None:
    n = 1_000
    t0 = np.arange(n, dtype=np.int64) * 5  # a sample every 5 bars
    t1 = t0 + 60  # labels resolved 60 bars later
    cfg = WalkForwardConfig(folds=4, mode=mode, embargo=30, train=200)
    folds = splits(t0, t1, cfg)
    assert len(folds) == 4
    for f in folds:
        first = t0[f.test[0]]
        assert (t1[f.train] < first).all()  # purged
        assert (t0[f.train] < first - 30).all()  # embargoed
        assert f.train.max() < f.test.min()  # the past only
        # exactly the samples that are neither purged nor embargoed are dropped
        lo = 0 if mode == "expanding" else f.test[0] - 200
        assert len(f.train) == f.test[0] - lo - 12  # 60 bars of labels = 12 samples
        if mode == "rolling":
            assert f.train[0] == f.test[0] - 200
    tests = np.concatenate([f.test for f in folds])
    np.testing.assert_array_equal(tests, np.arange(200, n))  # every later sample tested once


def test_too_little_data_is_a_clear_error() -> None:
    t = np.arange(30, dtype=np.int64)
    with pytest.raises(ValueError, match="too few"):
        splits(t, t, WalkForwardConfig(folds=5))


def test_shuffled_labels_score_no_better_than_chance_out_of_sample() -> None:
    ds = build(btc_slice(0, 24_000), LabelConfig(horizon=60, fee=0.001), step=5)
    cfg = WalkForwardConfig(folds=4, embargo=60)
    result = evaluate(ds.x, ds.y, ds.t0, ds.t1, SMALL, cfg, shuffle_labels=True)
    base = result.overall["baseline"]
    n = base["n"]
    assert n > 3_000
    # majority-class accuracy is what "chance" means for an unbalanced label
    majority = max(base["base_rate"], 1 - base["base_rate"])
    tolerance = 2.5 * np.sqrt(majority * (1 - majority) / n)
    for name in (*(s.name for s in SMALL), "ensemble"):
        s = result.overall[name]
        assert s["accuracy"] <= majority + tolerance, name
        assert s["brier"] >= base["brier"] - 0.002, name
        assert s["log_loss"] >= base["log_loss"] - 0.005, name


def test_a_planted_signal_is_found_out_of_sample() -> None:
    """The positive control: the machinery is able to learn when there is something to learn."""
    rng = np.random.default_rng(1)
    n = 3_000
    x = rng.normal(size=(n, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(float)
    t0 = np.arange(n, dtype=np.int64)
    result = evaluate(x, y, t0, t0 + 3, SMALL, WalkForwardConfig(folds=3, embargo=3))
    for name in (*(s.name for s in SMALL), "ensemble"):
        assert result.overall[name]["accuracy"] > 0.8, name
    assert result.overall["ensemble"]["brier"] < result.overall["baseline"]["brier"] - 0.1


def test_calibrated_probabilities_match_frequencies() -> None:
    rng = np.random.default_rng(2)
    n = 6_000
    x = rng.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0])))
    y = (rng.uniform(size=n) < p).astype(float)
    t = np.arange(n, dtype=np.int64)
    for spec in default_members():
        m = fit_member(spec, x[:4_000], y[:4_000], t[:4_000], t[:4_000] + 1)
        q = m.proba(x[4_000:])
        for lo, hi in ((0.1, 0.3), (0.4, 0.6), (0.7, 0.9)):
            sel = (q >= lo) & (q < hi)
            assert sel.sum() > 100
            assert abs(y[4_000:][sel].mean() - q[sel].mean()) < 0.07, spec.kind


@pytest.mark.parametrize(
    ("probs", "weights", "p_up", "agreement", "confidence"),
    [
        ({"a": 0.7, "b": 0.7, "c": 0.7, "d": 0.7}, {}, 0.7, 1.0, 0.7),
        ({"a": 0.8, "b": 0.8, "c": 0.8, "d": 0.4}, {}, 0.7, 0.75, 0.525),
        ({"a": 0.2, "b": 0.4}, {}, 0.3, 1.0, 0.7),  # a SELL: P(down) = 0.7
        ({"a": 0.9, "b": 0.3}, {"a": 3.0, "b": 1.0}, 0.75, 0.75, 0.5625),
    ],
)
def test_the_ensemble_vote(
    probs: dict[str, float],
    weights: dict[str, float],
    p_up: float,
    agreement: float,
    confidence: float,
) -> None:
    vote = combine(probs, weights)
    assert vote.p_up == pytest.approx(p_up)
    assert vote.agreement == pytest.approx(agreement)
    assert vote.confidence == pytest.approx(confidence)
    assert vote.buy == (p_up >= 0.5)


def test_batch_ensemble_probability_is_the_vote_of_each_row() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 3))
    y = (x[:, 0] > 0).astype(float)
    t = np.arange(500, dtype=np.int64)
    members = [fit_member(s, x, y, t, t) for s in SMALL]
    members[1].weight = 2.0
    batch = ensemble_proba(members, x[:20])
    for i in range(20):
        probs = {m.name: float(m.proba(x[i : i + 1])[0]) for m in members}
        weights = {m.name: m.weight for m in members}
        assert batch[i] == pytest.approx(combine(probs, weights).p_up)


def test_scores_worked_example() -> None:
    s = scores(np.array([0.9, 0.2, 0.6, 0.4]), np.array([1.0, 0.0, 0.0, 1.0]))
    assert s["accuracy"] == 0.5
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["brier"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.36) / 4)
