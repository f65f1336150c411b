"""Tests for tradepilot.analytics.performance.

Return statistics are cross-checked against empyrical-reloaded on the same returns; the rest
is checked against hand-computed numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import empyrical as ep
import numpy as np
import pytest
from empyrical.stats import drawdown_series as ep_drawdown_series
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from tradepilot.analytics import performance as perf
from tradepilot.analytics.performance import ClosedTrade

SEC = 1_000_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
NAN = float("nan")


def close(a: float, b: float) -> bool:
    """``math.isclose`` at 1e-9 where NaN equals NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# ------------------------------------------------------------------ cross-check with empyrical

_rng = np.random.default_rng(20240611)

# Monthly returns of a balanced fund, three years.
# fmt: off
_MONTHLY_FUND = [
    0.0123, -0.0087, 0.0231, 0.0045, -0.0312, 0.0178, 0.0094, -0.0021, 0.0156, -0.0458,
    0.0367, 0.0112, -0.0064, 0.0089, 0.0201, -0.0143, 0.0055, 0.0137, -0.0276, 0.0318,
    0.0072, -0.0019, 0.0164, 0.0083, -0.0521, -0.0117, 0.0412, 0.0226, 0.0038, -0.0095,
    0.0149, 0.0061, -0.0034, 0.0187, 0.0109, 0.0026,
]
# fmt: on

FIXED_RETURNS: dict[str, list[float]] = {
    "empty": [],
    "single": [0.01],
    "two": [0.01, -0.02],
    "hand": [0.1, -0.05, 0.02, -0.1, 0.08],
    "zero_mean": [0.1, -0.05, 0.02, -0.1, 0.03],
    "constant": [0.001] * 20,
    "constant_negative": [-0.002] * 7,
    "zeros": [0.0] * 10,
    "all_positive": [0.01, 0.02, 0.005, 0.03],
    "all_negative": [-0.01, -0.02, -0.005, -0.03],
    "crash_and_recovery": [0.01] * 10 + [-0.2, -0.15] + [0.03] * 20,
    "total_loss": [0.05, -1.0, 0.5],
    "below_minus_one": [-1.5, 0.2],
    "with_nans": [0.01, NAN, -0.02, 0.03, NAN, -0.01],
    "one_value_and_nans": [NAN, 0.02, NAN],
    "all_nans": [NAN, NAN, NAN],
    "monthly_fund": _MONTHLY_FUND,
    # Two years of equity-like daily returns and a month of fat-tailed hourly crypto returns.
    "daily_equity": list(_rng.normal(0.0004, 0.011, 504)),
    "hourly_crypto": list(0.004 * _rng.standard_t(3, 720)),
}

PPYS = [1.0, 12.0, 52.0, 252.0, 365.0, 8760.0, 98280.0, 68.25]


def _check_against_empyrical(r: np.ndarray, ppy: float, rf: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empyrical warns on NaN/short input
        expected: dict[str, Callable[[], float]] = {
            "total_return": lambda: float(ep.cum_returns_final(r)),
            "annualized_return": lambda: float(ep.annual_return(r, annualization=ppy)),
            "annualized_volatility": lambda: float(ep.annual_volatility(r, annualization=ppy)),
            "sharpe_ratio": lambda: float(ep.sharpe_ratio(r, risk_free=rf, annualization=ppy)),
            "sortino_ratio": lambda: float(
                ep.sortino_ratio(r, required_return=rf, annualization=ppy)
            ),
            "downside_risk": lambda: float(
                ep.downside_risk(r, required_return=rf, annualization=ppy)
            ),
            "max_drawdown": lambda: float(ep.max_drawdown(r)),
            "calmar_ratio": lambda: float(ep.calmar_ratio(r, annualization=ppy)),
        }
        want = {name: fn() for name, fn in expected.items()}
        ep_dd = ep_drawdown_series(r) if r.size else np.empty(0)

    got = {
        "total_return": perf.total_return(r),
        "annualized_return": perf.annualized_return(r, ppy),
        "annualized_volatility": perf.annualized_volatility(r, ppy),
        "sharpe_ratio": perf.sharpe_ratio(r, ppy, rf),
        "sortino_ratio": perf.sortino_ratio(r, ppy, rf),
        "downside_risk": perf.downside_risk(r, ppy, rf),
        "max_drawdown": perf.max_drawdown(r),
        "calmar_ratio": perf.calmar_ratio(r, ppy),
    }
    for name, value in got.items():
        assert close(value, want[name]), f"{name}: {value!r} != empyrical {want[name]!r}"

    dd = perf.drawdown_series(r)
    assert dd.shape == ep_dd.shape
    assert all(close(float(a), float(b)) for a, b in zip(dd, ep_dd, strict=True))


@pytest.mark.parametrize("rf", [0.0, 0.0001, -0.0003])
@pytest.mark.parametrize("ppy", PPYS)
@pytest.mark.parametrize("name", sorted(FIXED_RETURNS))
def test_fixed_returns_match_empyrical(name: str, ppy: float, rf: float) -> None:
    _check_against_empyrical(np.array(FIXED_RETURNS[name], dtype=np.float64), ppy, rf)


_returns = st.lists(
    st.floats(min_value=-0.5, max_value=0.5, exclude_min=True, exclude_max=True),
    min_size=2,
    max_size=300,
)


@settings(max_examples=examples(300))
@given(
    returns=_returns,
    ppy=st.sampled_from(PPYS),
    rf=st.one_of(st.just(0.0), st.floats(min_value=-0.001, max_value=0.001)),
)
def test_random_returns_match_empyrical(returns: list[float], ppy: float, rf: float) -> None:
    _check_against_empyrical(np.array(returns, dtype=np.float64), ppy, rf)


@settings(max_examples=examples(100))
@given(
    returns=st.lists(
        st.one_of(st.floats(min_value=-0.5, max_value=0.5), st.just(NAN)),
        min_size=0,
        max_size=100,
    ),
    ppy=st.sampled_from(PPYS),
)
def test_returns_with_nans_match_empyrical(returns: list[float], ppy: float) -> None:
    _check_against_empyrical(np.array(returns, dtype=np.float64), ppy, 0.0)


@settings(max_examples=examples(50))
@given(
    equity=st.lists(st.floats(min_value=1.0, max_value=1e9), min_size=0, max_size=50),
)
def test_returns_from_equity_matches_empyrical(equity: list[float]) -> None:
    eq = np.array(equity, dtype=np.float64)
    ts = np.arange(eq.size, dtype=np.int64) * MIN
    got = perf.returns_from_equity(ts, eq)
    want = ep.simple_returns(eq) if eq.size else np.empty(0)
    assert got.shape == (max(eq.size - 1, 0),)
    np.testing.assert_array_equal(got, want)


def test_no_runtime_warnings_on_edge_cases() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for values in FIXED_RETURNS.values():
            r = np.array(values, dtype=np.float64)
            for ppy in (252.0, 365.0):
                perf.total_return(r)
                perf.annualized_return(r, ppy)
                perf.annualized_volatility(r, ppy)
                perf.sharpe_ratio(r, ppy, 0.001)
                perf.sortino_ratio(r, ppy)
                perf.downside_risk(r, ppy)
                perf.max_drawdown(r)
                perf.calmar_ratio(r, ppy)
                perf.max_drawdown_duration(r)
        perf.returns_from_equity([0, 1, 2], [100.0, 0.0, 50.0])


# ------------------------------------------------------------------------ worked example


def test_hand_computed_example() -> None:
    r = [0.1, -0.05, 0.02, -0.1, 0.08]
    ppy = 12  # monthly returns

    # wealth: 1.1, 1.1*0.95 = 1.045, *1.02 = 1.0659, *0.9 = 0.95931, *1.08 = 1.0360548
    assert close(perf.total_return(r), 0.0360548)
    # CAGR over 5/12 of a year: 1.0360548 ** (12 / 5) - 1 ~= 0.0887
    cagr = 1.0360548 ** (12 / 5) - 1
    assert close(perf.annualized_return(r, ppy), cagr)

    # mean = (0.1 - 0.05 + 0.02 - 0.1 + 0.08) / 5 = 0.01
    # deviations 0.09, -0.06, 0.01, -0.11, 0.07; squares sum to
    # 0.0081 + 0.0036 + 0.0001 + 0.0121 + 0.0049 = 0.0288; sample variance = 0.0288 / 4 = 0.0072
    assert close(perf.annualized_volatility(r, ppy), math.sqrt(0.0072 * 12))
    # Sharpe = 0.01 / sqrt(0.0072) * sqrt(12) = sqrt(0.0012 / 0.0072) = sqrt(1/6) ~= 0.408
    assert close(perf.sharpe_ratio(r, ppy), math.sqrt(1 / 6))
    # with rf = 0.002 per period: excess mean 0.008, same std
    assert close(perf.sharpe_ratio(r, ppy, 0.002), 0.008 / math.sqrt(0.0072) * math.sqrt(12))
    # with rf = 0.01 the excess mean is 0
    assert close(perf.sharpe_ratio(r, ppy, 0.01), 0.0)

    # downside: min(r, 0) = 0, -0.05, 0, -0.1, 0; mean of squares = (0.0025 + 0.01) / 5 = 0.0025
    # downside deviation = sqrt(0.0025) = 0.05, annualised 0.05 * sqrt(12)
    assert close(perf.downside_risk(r, ppy), 0.05 * math.sqrt(12))
    # Sortino = 0.01 * 12 / (0.05 * sqrt(12)) = 0.2 * sqrt(12) ~= 0.693
    assert close(perf.sortino_ratio(r, ppy), 0.2 * math.sqrt(12))

    # peak 1.1 after period 1; drawdowns relative to it:
    # 0, 0.95 - 1, 0.95*1.02 - 1, 0.95*1.02*0.9 - 1, 0.95*1.02*0.9*1.08 - 1
    expected_dd = [0.0, -0.05, -0.031, -0.1279, -0.058132]
    assert all(close(a, b) for a, b in zip(perf.drawdown_series(r), expected_dd, strict=True))
    assert close(perf.max_drawdown(r), -0.1279)
    assert close(perf.calmar_ratio(r, ppy), cagr / 0.1279)
    # underwater after periods 2, 3, 4 and 5
    assert perf.max_drawdown_duration(r) == 4


def test_first_period_loss_is_a_drawdown() -> None:
    # The running peak starts at the initial wealth 1.0.
    r = [-0.1, 0.05, 0.2]
    # wealth 0.9, 0.945, 1.134
    assert all(
        close(a, b) for a, b in zip(perf.drawdown_series(r), [-0.1, -0.055, 0.0], strict=True)
    )
    assert close(perf.max_drawdown(r), -0.1)
    assert perf.max_drawdown_duration(r) == 2


def test_degenerate_ratios() -> None:
    assert math.isnan(perf.total_return([]))
    assert math.isnan(perf.max_drawdown([]))
    assert perf.drawdown_series([]).shape == (0,)
    assert perf.max_drawdown_duration([]) == 0
    # fewer than two returns: no standard deviation
    assert math.isnan(perf.annualized_volatility([0.01], 252))
    assert math.isnan(perf.sharpe_ratio([0.01], 252))
    assert math.isnan(perf.sortino_ratio([0.01], 252))
    # constant returns: std is exactly 0, so the Sharpe ratio is +-inf (NaN for 0/0)
    assert perf.sharpe_ratio([0.001] * 5, 252) == math.inf
    assert perf.sharpe_ratio([-0.001] * 5, 252) == -math.inf
    assert math.isnan(perf.sharpe_ratio([0.0] * 5, 252))
    # no losing period: zero downside deviation
    assert perf.sortino_ratio([0.01, 0.02], 252) == math.inf
    # wealth below zero: a fractional power of a negative number is NaN, an integer one is not
    assert math.isnan(perf.annualized_return([-1.5, 0.2], 365))  # (-0.6) ** 182.5
    assert close(perf.annualized_return([-1.5, 0.2], 4), (-0.6) ** 2 - 1)
    # no drawdown: Calmar undefined
    assert math.isnan(perf.calmar_ratio([0.01, 0.02], 252))
    with pytest.raises(ValueError):
        perf.sharpe_ratio([0.01, 0.02], 0)
    with pytest.raises(ValueError):
        perf.total_return([[0.01, 0.02]])


def _longest_run_below_zero(drawdown: np.ndarray) -> int:
    run = best = 0
    for x in drawdown:
        run = run + 1 if x < 0.0 else 0
        best = max(best, run)
    return best


@settings(max_examples=examples(100))
@given(returns=_returns)
def test_max_drawdown_duration_matches_loop(returns: list[float]) -> None:
    dd = perf.drawdown_series(returns)
    assert perf.max_drawdown_duration(returns) == _longest_run_below_zero(dd)


# ------------------------------------------------------------------------- equity curves


def test_equity_curve_duration_regular_grid() -> None:
    ts = np.arange(6, dtype=np.int64) * MIN
    equity = 100.0 * np.array([1.0, 1.1, 1.045, 1.0659, 0.95931, 1.0360548])
    # peak at index 1, still below it at index 5: 4 periods, ts[5] - ts[1] = 4 minutes
    assert perf.max_drawdown_duration_ns(ts, equity) == 4 * MIN
    r = perf.returns_from_equity(ts, equity)
    assert perf.max_drawdown_duration(r) == 4


def test_equity_curve_duration_irregular_timestamps() -> None:
    ts = np.array([0, 10, 15, 140, 141, 150, 160, 170, 200], dtype=np.int64) * SEC
    equity = [100.0, 120.0, 90.0, 100.0, 130.0, 125.0, 125.0, 126.0, 140.0]
    # spell A: indices 2-3 below the peak at index 1 -> 2 periods, 140 s - 10 s = 130 s
    # spell B: indices 5-7 below the peak at index 4 -> 3 periods, 170 s - 141 s = 29 s
    assert perf.max_drawdown_duration_ns(ts, equity) == 130 * SEC
    report = perf.performance_report(ts, equity, [], periods_per_year=365.0)
    assert report.max_drawdown_duration_ns == 130 * SEC
    assert report.max_drawdown_duration_periods == 3


def test_equity_curve_exact_recovery_ends_the_spell() -> None:
    ts = np.array([0, 1, 2, 3, 4], dtype=np.int64) * HOUR
    equity = [100.0, 110.0, 100.0, 110.0, 105.0]
    # index 2 below 110, index 3 back at 110 exactly, index 4 below again
    assert perf.max_drawdown_duration_ns(ts, equity) == HOUR
    assert perf.max_drawdown_duration_ns(ts, [100.0, 101.0, 102.0, 102.0, 103.0]) == 0
    assert perf.max_drawdown_duration_ns([], []) == 0


def test_equity_curve_validation() -> None:
    with pytest.raises(ValueError):
        perf.returns_from_equity([0, 1], [100.0])
    with pytest.raises(ValueError):
        perf.returns_from_equity([1, 0], [100.0, 101.0])
    with pytest.raises(ValueError):
        perf.performance_report([], [], [], periods_per_year=252)
    assert perf.returns_from_equity([5], [100.0]).shape == (0,)


# ------------------------------------------------------------------------- trade statistics


def _trade(pnl: float, held_s: int, side: int = 1, fees: float = 1.0) -> ClosedTrade:
    return ClosedTrade(
        instrument_id="BTC-USDT",
        side=side,
        entry_ts=1_700_000_000 * SEC,
        exit_ts=1_700_000_000 * SEC + held_s * SEC,
        quantity=0.5,
        entry_price=100.0,
        exit_price=100.0 + side * (pnl + fees) / 0.5,
        pnl=pnl,
        fees=fees,
        mae=-abs(pnl) / 2,
        mfe=abs(pnl) * 1.5,
    )


TRADES = [
    _trade(100.0, 60),
    _trade(-50.0, 120, side=-1),
    _trade(30.0, 30),
    _trade(-20.0, 300, side=-1),
    _trade(0.0, 90),
]


def test_trade_functions_hand_computed() -> None:
    # 2 winners (100, 30) out of 5 trades
    assert perf.win_rate(TRADES) == 2 / 5
    # gross profit 100 + 30 = 130, gross loss -50 - 20 = -70
    assert close(perf.profit_factor(TRADES), 130 / 70)
    # (100 - 50 + 30 - 20 + 0) / 5 = 12
    assert close(perf.expectancy(TRADES), 12.0)
    assert close(perf.average_win(TRADES), (100 + 30) / 2)
    assert close(perf.average_loss(TRADES), (-50 - 20) / 2)
    # holding times 60, 120, 30, 300, 90 s: mean 600 / 5 = 120 s, median of sorted
    # 30, 60, 90, 120, 300 = 90 s
    assert perf.average_holding_time_ns(TRADES) == 120 * SEC
    assert perf.median_holding_time_ns(TRADES) == 90 * SEC
    # even count: 30, 60, 120, 300 -> (60 + 120) / 2 = 90 s; mean (60+120+30+300)/4 = 127.5 s
    assert perf.median_holding_time_ns(TRADES[:4]) == 90 * SEC
    assert perf.average_holding_time_ns(TRADES[:4]) == 127.5 * SEC


def test_trade_stats_hand_computed() -> None:
    s = perf.trade_stats(TRADES)
    assert (s.n_trades, s.n_winners, s.n_losers, s.n_breakeven) == (5, 2, 2, 1)
    assert s.win_rate == 0.4
    assert close(s.profit_factor, 130 / 70)
    assert close(s.expectancy, 12.0)
    assert close(s.total_pnl, 60.0)
    assert (s.gross_profit, s.gross_loss) == (130.0, -70.0)
    assert s.total_fees == 5.0
    assert (s.average_win, s.average_loss) == (65.0, -35.0)
    assert close(s.payoff_ratio, 65 / 35)
    assert (s.largest_win, s.largest_loss) == (100.0, -50.0)
    assert s.average_holding_time_ns == 120 * SEC
    assert s.median_holding_time_ns == 90 * SEC
    # mae = -|pnl| / 2: -(100 + 50 + 30 + 20 + 0) / 2 / 5 = -20; mfe = 1.5 * 200 / 5 = 60
    assert close(s.average_mae, -20.0)
    assert close(s.average_mfe, 60.0)


def test_trade_stats_no_trades() -> None:
    s = perf.trade_stats([])
    assert (s.n_trades, s.n_winners, s.n_losers, s.n_breakeven) == (0, 0, 0, 0)
    assert (s.total_pnl, s.gross_profit, s.gross_loss, s.total_fees) == (0.0, 0.0, 0.0, 0.0)
    for value in (
        s.win_rate,
        s.profit_factor,
        s.expectancy,
        s.average_win,
        s.average_loss,
        s.payoff_ratio,
        s.largest_win,
        s.largest_loss,
        s.average_holding_time_ns,
        s.median_holding_time_ns,
        s.average_mae,
        s.average_mfe,
    ):
        assert math.isnan(value)


def test_trade_stats_all_winners() -> None:
    trades = [_trade(10.0, 60), _trade(20.0, 120)]
    s = perf.trade_stats(trades)
    assert s.win_rate == 1.0
    assert s.profit_factor == math.inf
    assert s.expectancy == 15.0
    assert s.average_win == 15.0
    assert math.isnan(s.average_loss)
    assert math.isnan(s.largest_loss)
    assert math.isnan(s.payoff_ratio)
    assert s.n_losers == 0


def test_trade_stats_all_losers_and_breakeven() -> None:
    losers = [_trade(-10.0, 60), _trade(-30.0, 60)]
    assert perf.win_rate(losers) == 0.0
    assert perf.profit_factor(losers) == 0.0
    assert math.isnan(perf.average_win(losers))
    flat = [_trade(0.0, 60)]
    assert perf.win_rate(flat) == 0.0
    assert math.isnan(perf.profit_factor(flat))
    assert perf.expectancy(flat) == 0.0


def test_closed_trade_validation() -> None:
    with pytest.raises(ValueError):
        _trade(1.0, 60, side=0)
    with pytest.raises(ValueError):
        ClosedTrade("X", 1, 10, 5, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        ClosedTrade("X", 1, 0, 5, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    assert _trade(1.0, 60).holding_time_ns == 60 * SEC


# ---------------------------------------------------------------------------------- report


def test_performance_report_matches_parts() -> None:
    returns = np.array(FIXED_RETURNS["daily_equity"])
    equity = 10_000.0 * np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    ts = 1_700_000_000 * SEC + np.arange(equity.size, dtype=np.int64) * DAY
    ppy = perf.periods_per_year_for(DAY, trading_days=252, hours_per_day=6.5)
    assert ppy == 252.0
    report = perf.performance_report(ts, equity, TRADES, ppy, risk_free=0.0001)

    r = perf.returns_from_equity(ts, equity)
    assert report.n_periods == returns.size == r.size
    assert (report.start_ts_ns, report.end_ts_ns) == (int(ts[0]), int(ts[-1]))
    assert (report.start_equity, report.end_equity) == (float(equity[0]), float(equity[-1]))
    assert close(report.total_return, float(ep.cum_returns_final(r)))
    assert close(report.total_return, equity[-1] / equity[0] - 1)
    assert close(report.annualized_return, float(ep.annual_return(r, annualization=252)))
    assert close(report.annualized_volatility, float(ep.annual_volatility(r, annualization=252)))
    assert close(
        report.sharpe_ratio, float(ep.sharpe_ratio(r, risk_free=0.0001, annualization=252))
    )
    assert close(
        report.sortino_ratio,
        float(ep.sortino_ratio(r, required_return=0.0001, annualization=252)),
    )
    assert close(report.max_drawdown, float(ep.max_drawdown(r)))
    assert close(report.calmar_ratio, float(ep.calmar_ratio(r, annualization=252)))
    assert report.max_drawdown_duration_periods == perf.max_drawdown_duration(r)
    assert report.max_drawdown_duration_ns == report.max_drawdown_duration_periods * DAY
    assert report.trades == perf.trade_stats(TRADES)
    np.testing.assert_array_equal(report.returns, r)
    np.testing.assert_array_equal(report.drawdown, perf.drawdown_series(r))


def test_performance_report_single_point() -> None:
    report = perf.performance_report([0], [1000.0], [], periods_per_year=252)
    assert report.n_periods == 0
    assert math.isnan(report.total_return)
    assert math.isnan(report.sharpe_ratio)
    assert report.max_drawdown_duration_ns == 0
    assert report.trades.n_trades == 0


# ------------------------------------------------------------------------ annualisation


@pytest.mark.parametrize(
    ("interval_ns", "trading_days", "hours_per_day", "expected"),
    [
        (DAY, 365, 24.0, 365.0),
        (HOUR, 365, 24.0, 8760.0),
        (MIN, 365, 24.0, 525_600.0),
        (MIN, 252, 6.5, 252 * 6.5 * 60),  # 98280 one-minute bars a year
        (HOUR, 252, 6.5, 252 * 6.5),
        (DAY, 252, 6.5, 252.0),  # one daily bar per session
        (8 * HOUR, 252, 6.5, 252.0),  # longer than the session, shorter than a day
        (2 * DAY, 252, 24.0, 126.0),
        (7 * DAY, 365, 24.0, 365 / 7),
    ],
)
def test_periods_per_year_for(
    interval_ns: int, trading_days: int, hours_per_day: float, expected: float
) -> None:
    assert close(perf.periods_per_year_for(interval_ns, trading_days, hours_per_day), expected)


def test_periods_per_year_for_validation() -> None:
    for args in [(0, 365, 24.0), (HOUR, 0, 24.0), (HOUR, 252, 0.0), (HOUR, 252, 25.0)]:
        with pytest.raises(ValueError):
            perf.periods_per_year_for(*args)
