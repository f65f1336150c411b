"""Labels: worked examples of the forward-return and triple-barrier labels."""

from __future__ import annotations

import numpy as np
import pytest

from tradepilot.strategy.ml.labels import (
    LabelConfig,
    forward_return_labels,
    make_labels,
    triple_barrier_labels,
)


def test_forward_label_is_the_return_net_of_the_round_trip_fee() -> None:
    close = np.array([100.0, 100.1, 100.3, 99.0, 100.0, 100.0])
    y, end = forward_return_labels(close, horizon=2, fee=0.001)
    # 100 -> 100.3 is +0.3 % > 0.2 %: 1; 100.1 -> 99 loses: 0; 100.3 -> 100: 0; 99 -> 100: 1
    np.testing.assert_array_equal(y[:4], [1.0, 0.0, 0.0, 1.0])
    assert np.isnan(y[4:]).all()  # the horizon runs past the data
    np.testing.assert_array_equal(end, [2, 3, 4, 5, 5, 5])


@pytest.mark.parametrize(
    ("high", "low", "close", "label", "end"),
    [
        # take-profit (+1 %) reached at bar 2 before any stop
        ([100, 100.5, 101.2, 100], [100, 99.6, 100.5, 99], [100, 100.2, 101, 99.5], 1.0, 2),
        # stop-loss (-1 %) at bar 1
        ([100, 100.5, 101.5, 100], [100, 98.9, 100.5, 99], [100, 99.5, 101, 99.5], 0.0, 1),
        # both barriers inside one bar: we cannot tell the order, count the stop
        ([100, 101.5, 100, 100], [100, 98.5, 100, 100], [100, 100, 100, 100], 0.0, 1),
        # no barrier: time limit (3 bars), +0.5 % beats the 0.2 % round trip
        ([100, 100.4, 100.6, 100.6], [100, 99.5, 99.6, 100], [100, 100.2, 100.4, 100.5], 1.0, 3),
        # no barrier, +0.1 % does not beat the fees
        ([100, 100.4, 100.6, 100.6], [100, 99.5, 99.6, 100], [100, 100.2, 100.4, 100.1], 0.0, 3),
    ],
)
def test_triple_barrier_matches_the_exits(
    high: list[float], low: list[float], close: list[float], label: float, end: int
) -> None:
    y, e = triple_barrier_labels(
        np.array(high, float), np.array(low, float), np.array(close, float),
        horizon=3, take_profit=0.01, stop_loss=0.01, fee=0.001,
    )  # fmt: skip
    assert y[0] == label
    assert e[0] == end


def test_triple_barrier_leaves_unresolved_tails_unlabelled() -> None:
    close = np.full(6, 100.0)
    y, _ = triple_barrier_labels(close, close, close, 3, 0.01, 0.01, 0.001)
    assert not np.isnan(y[:3]).any() and np.isnan(y[3:]).all()


def test_label_config_is_checked() -> None:
    with pytest.raises(ValueError, match="label kind"):
        LabelConfig(kind="up")
    with pytest.raises(ValueError, match="horizon"):
        LabelConfig(horizon=0)
    close = np.linspace(100, 110, 50)
    y, _ = make_labels(LabelConfig(kind="triple_barrier", horizon=5), close, close, close)
    assert np.nanmean(y) == 1.0
