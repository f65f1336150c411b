"""Features: no look-ahead (truncation and perturbation of the future), one implementation
for batch and incremental use, deterministic time of day, warm-up."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ml_helpers import btc_slice
from tradepilot.core.time import NS_PER_MINUTE
from tradepilot.model.data import Bar
from tradepilot.strategy.ml.dataset import BarArrays
from tradepilot.strategy.ml.features import FEATURE_NAMES, FeatureComputer, compute_features
from tradepilot.strategy.ml.source import EnsembleSignalGenerator


def _features(b: BarArrays) -> np.ndarray:
    return compute_features(b.ts, b.open, b.high, b.low, b.close, b.volume)


def test_truncating_the_data_at_random_points_changes_no_feature_value() -> None:
    bars = btc_slice(20_000, 23_000)
    full = _features(bars)
    rnd = random.Random(14)
    cuts = [*sorted(rnd.sample(range(1, len(bars)), 25)), 241, 242]
    for k in cuts:
        part = _features(bars.select(slice(0, k)))
        assert part.shape == (k, len(FEATURE_NAMES))
        np.testing.assert_array_equal(part, full[:k], err_msg=f"cut at {k}")


def test_scrambling_the_future_changes_no_past_feature_value() -> None:
    bars = btc_slice(5_000, 7_000)
    full = _features(bars)
    rng = np.random.default_rng(3)
    for k in (300, 1_000, 1_700):
        future = slice(k, len(bars))
        noisy = BarArrays(
            bars.ts,
            *(
                np.concatenate([a[:k], a[future] * rng.uniform(0.5, 1.5, len(bars) - k)])
                for a in (bars.open, bars.high, bars.low, bars.close, bars.volume)
            ),
        )
        changed = _features(noisy)
        np.testing.assert_array_equal(changed[:k], full[:k])
        assert not np.array_equal(changed[k:], full[k:])


def test_the_incremental_computer_in_a_session_gives_the_training_rows() -> None:
    """The generator fed Bar objects (as in backtest, paper and live) reproduces the batch rows."""
    bars = btc_slice(0, 600)
    batch = _features(bars)
    gen = EnsembleSignalGenerator("BTCUSDT.SIM")
    scale = 10**9  # fixed.SCALE
    for i in range(len(bars)):
        close_ts = int(bars.ts[i])
        raw = [
            round(float(v) * scale)
            for v in (bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i])
        ]
        gen.on_bar(Bar("BTCUSDT.SIM", close_ts, close_ts - NS_PER_MINUTE, *raw))
        row = gen.features.last
        if np.isnan(batch[i]).any():
            assert row is None
        else:
            assert row is not None
            np.testing.assert_allclose(row, batch[i], rtol=1e-9, atol=1e-12)


def test_warm_up_and_values_are_sane() -> None:
    bars = btc_slice(10_000, 11_000)
    f = _features(bars)
    warm = FeatureComputer().warmup
    assert np.isnan(f[: warm - 1]).all() and not np.isnan(f[warm - 1 :]).any()
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert ((f[warm:, col["rsi_14"]] >= 0) & (f[warm:, col["rsi_14"]] <= 1)).all()
    assert (f[warm:, col["vol_30"]] > 0).all()
    # one-hour momentum is the momentum rule's number: (close / close 60 bars ago - 1) * 100
    i = 800
    expected = (bars.close[i] / bars.close[i - 60] - 1.0) * 100.0
    assert f[i, col["mom_1h"]] == pytest.approx(expected)
    assert f[i, col["ret_60"]] == pytest.approx(math.log(bars.close[i] / bars.close[i - 60]))


def test_time_of_day_comes_from_the_bar_time() -> None:
    comp = FeatureComputer()
    t0 = 1_620_950_400_000_000_000  # 2021-05-14T00:00Z
    row = None
    for i in range(comp.warmup + 360):  # ends 6 h past a midnight boundary (+ warm-up)
        row = comp.update(t0 + (i + 1) * NS_PER_MINUTE, 100, 101, 99, 100 + (i % 7), 5 + i % 3)
    assert row is not None
    ts = t0 + (comp.warmup + 360) * NS_PER_MINUTE
    hours = (ts % 86_400_000_000_000) / 3_600_000_000_000
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert row[col["tod_sin"]] == pytest.approx(math.sin(hours / 24 * 2 * math.pi))
    assert row[col["tod_cos"]] == pytest.approx(math.cos(hours / 24 * 2 * math.pi))
