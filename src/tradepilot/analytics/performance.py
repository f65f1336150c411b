"""Trading-performance statistics: return ratios, drawdowns and round-trip trade statistics.

Pure functions over numpy arrays, no I/O. The return statistics follow the conventions of
empyrical-reloaded (the reference the tests check against to 1e-9):

* ``returns`` are periodic simple returns, ``r_t = E_t / E_{t-1} - 1``, as a 1-D float64 array.
* ``periods_per_year`` (``ppy``) is the annualisation factor: 252 for business-day bars,
  365 for daily bars of a 24/7 market, 8760 for hourly crypto bars; see
  :func:`periods_per_year_for`.
* NaN returns are skipped by means and standard deviations and count as a zero return when
  compounding; ``n`` (the number of periods) still includes them.
* Empty input gives NaN. Statistics needing a standard deviation (volatility, Sharpe,
  Sortino) give NaN for fewer than two returns.
* Ratios use IEEE division: a positive numerator over a zero denominator gives ``inf``
  (negative gives ``-inf``), zero over zero gives NaN. The Calmar ratio instead gives NaN
  when there is no drawdown.

Formulas are in ``docs/performance.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "ClosedTrade",
    "PerformanceReport",
    "TradeStats",
    "annualized_return",
    "annualized_volatility",
    "average_holding_time_ns",
    "average_loss",
    "average_win",
    "calmar_ratio",
    "downside_risk",
    "drawdown_series",
    "expectancy",
    "max_drawdown",
    "max_drawdown_duration",
    "max_drawdown_duration_ns",
    "median_holding_time_ns",
    "performance_report",
    "periods_per_year_for",
    "profit_factor",
    "returns_from_equity",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return",
    "trade_stats",
    "win_rate",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NS_PER_HOUR = 3_600_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR

_NAN = float("nan")
# Starting value of the wealth curve behind the drawdowns. empyrical anchors its curve
# at 100; using the same anchor keeps the results bit-identical to it.
_WEALTH_START = 100.0


# --------------------------------------------------------------------------- helpers


def _as_returns(returns: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(returns, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"returns must be a 1-D array, got shape {arr.shape}")
    return arr


def _check_ppy(periods_per_year: float) -> float:
    ppy = float(periods_per_year)
    if not (math.isfinite(ppy) and ppy > 0.0):
        raise ValueError(f"periods_per_year must be a positive finite number, got {ppy!r}")
    return ppy


def _as_curve(ts_ns: npt.ArrayLike, equity: npt.ArrayLike) -> tuple[IntArray, FloatArray]:
    ts = np.asarray(ts_ns, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if ts.ndim != 1 or eq.ndim != 1:
        raise ValueError("ts_ns and equity must be 1-D arrays")
    if ts.shape != eq.shape:
        raise ValueError(f"ts_ns and equity differ in length: {ts.size} != {eq.size}")
    if ts.size > 1 and bool(np.any(np.diff(ts) < 0)):
        raise ValueError("ts_ns must be non-decreasing")
    return ts, eq


def _nanmean(x: FloatArray) -> float:
    """Mean of the non-NaN values; NaN if there are none."""
    if bool(np.all(np.isnan(x))):
        return _NAN
    return float(np.nanmean(x))


def _nanstd(x: FloatArray) -> float:
    """Sample standard deviation (ddof=1) of the non-NaN values; NaN if fewer than two."""
    if int(np.count_nonzero(~np.isnan(x))) < 2:
        return _NAN
    return float(np.nanstd(x, ddof=1))


def _divide(num: float, den: float) -> float:
    """IEEE division: x/0 is +-inf, 0/0 and anything with NaN is NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(np.float64(num), np.float64(den)))


def _spells(under: npt.NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """First and last index (inclusive) of each run of True values."""
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1).astype(np.int64)
    ends = (np.flatnonzero(edges == -1) - 1).astype(np.int64)
    return starts, ends


# ------------------------------------------------------------------ return statistics


def total_return(returns: npt.ArrayLike) -> float:
    """Compounded total return: ``prod(1 + r_t) - 1``; NaN for empty input."""
    r = _as_returns(returns)
    if r.size == 0:
        return _NAN
    return float(np.nanprod(r + 1.0)) - 1.0


def annualized_return(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """Compound annual growth rate: ``prod(1 + r_t) ** (1 / (n / ppy)) - 1``.

    NaN for empty input, and when the final wealth is negative and the exponent is not an
    integer.
    """
    r = _as_returns(returns)
    ppy = _check_ppy(periods_per_year)
    if r.size == 0:
        return _NAN
    num_years = r.size / ppy
    ending_value = np.float64(np.nanprod(r + 1.0))
    # Scalar ``**`` as in empyrical: the ``np.power`` ufunc can differ from it by one ulp,
    # which the ``- 1`` turns into a large relative error for a CAGR near zero.
    with np.errstate(all="ignore"):
        return float(ending_value ** (1.0 / num_years) - 1.0)


def annualized_volatility(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """Annualised volatility: ``std(r, ddof=1) * sqrt(ppy)``; NaN for fewer than two returns."""
    r = _as_returns(returns)
    ppy = _check_ppy(periods_per_year)
    if r.size < 2:
        return _NAN
    return _nanstd(r) * math.pow(ppy, 1.0 / 2.0)


def sharpe_ratio(returns: npt.ArrayLike, periods_per_year: float, risk_free: float = 0.0) -> float:
    """Annualised Sharpe ratio: ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy)``.

    ``risk_free`` is the risk-free return per period. NaN for fewer than two returns. When
    all excess returns are equal the standard deviation is taken as exactly 0, so the
    result is ``+-inf`` for a non-zero mean and NaN for a zero mean.
    """
    r = _as_returns(returns)
    ppy = _check_ppy(periods_per_year)
    if r.size < 2:
        return _NAN
    excess = r - risk_free if risk_free != 0 else r
    std = _nanstd(excess)
    # Identical values have a zero sample deviation, but the computed one may be a ~1e-18
    # residue of rounding in the mean; treat it as exactly zero.
    if math.isfinite(std) and np.nanmax(excess) == np.nanmin(excess):
        std = 0.0
    return _divide(_nanmean(excess), std) * math.sqrt(ppy)


def downside_risk(
    returns: npt.ArrayLike, periods_per_year: float, required_return: float = 0.0
) -> float:
    """Annualised downside deviation: ``sqrt(mean(min(r - required, 0) ** 2)) * sqrt(ppy)``.

    The mean runs over all periods (not only the losing ones). NaN for empty input.
    """
    r = _as_returns(returns)
    ppy = _check_ppy(periods_per_year)
    if r.size == 0:
        return _NAN
    shortfall = np.minimum(r - required_return, 0.0)
    return math.sqrt(_nanmean(np.square(shortfall))) * math.sqrt(ppy)


def sortino_ratio(
    returns: npt.ArrayLike, periods_per_year: float, required_return: float = 0.0
) -> float:
    """Annualised Sortino ratio: ``mean(r - required) * ppy / downside_risk(r, ppy, required)``.

    ``required_return`` is per period. NaN for fewer than two returns; ``inf`` when no
    period falls below ``required_return`` and the mean excess is positive.
    """
    r = _as_returns(returns)
    ppy = _check_ppy(periods_per_year)
    if r.size < 2:
        return _NAN
    mean_annual = _nanmean(r - required_return) * ppy
    return _divide(mean_annual, downside_risk(r, ppy, required_return))


def drawdown_series(returns: npt.ArrayLike) -> FloatArray:
    """Drawdown after each period: ``W_t / max(W_0..W_t) - 1`` with ``W_t = prod(1 + r_1..r_t)``.

    The running peak includes the starting wealth ``W_0 = 1``, so a loss in the first period
    is already a drawdown. One value (<= 0) per return; empty input gives an empty array.
    """
    r = _as_returns(returns)
    if r.size == 0:
        return np.empty(0, dtype=np.float64)
    wealth = np.empty(r.size + 1, dtype=np.float64)
    wealth[0] = _WEALTH_START
    np.cumprod(np.where(np.isnan(r), 0.0, r) + 1.0, out=wealth[1:])
    wealth[1:] *= _WEALTH_START
    peak = np.fmax.accumulate(wealth)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = (wealth - peak) / peak
    return drawdown[1:]


def max_drawdown(returns: npt.ArrayLike) -> float:
    """Maximum drawdown ``min_t drawdown_t`` as a negative fraction (0.0 if none); NaN if empty."""
    drawdown = drawdown_series(returns)
    if bool(np.all(np.isnan(drawdown))):
        return _NAN
    return float(np.nanmin(drawdown))


def calmar_ratio(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """Calmar ratio: ``annualized_return / |max_drawdown|``.

    NaN when there is no drawdown (``max_drawdown == 0``), for empty input, and when the
    ratio would be infinite.
    """
    ppy = _check_ppy(periods_per_year)
    max_dd = max_drawdown(returns)
    if not max_dd < 0.0:
        return _NAN
    ratio = annualized_return(returns, ppy) / abs(max_dd)
    return _NAN if math.isinf(ratio) else ratio


def max_drawdown_duration(returns: npt.ArrayLike) -> int:
    """Longest run of consecutive periods whose drawdown is below 0 (0 if never underwater)."""
    starts, ends = _spells(drawdown_series(returns) < 0.0)
    return int(np.max(ends - starts + 1)) if starts.size else 0


def _curve_durations(ts: IntArray, equity: FloatArray) -> tuple[int, int]:
    """Longest underwater spell of an equity curve, as (observations, nanoseconds)."""
    if equity.size == 0:
        return 0, 0
    under = equity < np.fmax.accumulate(equity)
    starts, ends = _spells(under)
    if starts.size == 0:
        return 0, 0
    # equity[start - 1] is the peak the spell is measured from (index 0 is never underwater).
    periods = int(np.max(ends - starts + 1))
    duration_ns = int(np.max(ts[ends] - ts[starts - 1]))
    return periods, duration_ns


def max_drawdown_duration_ns(ts_ns: npt.ArrayLike, equity: npt.ArrayLike) -> int:
    """Longest time spent below a previous equity peak, in nanoseconds.

    For each spell of observations below the running peak, the duration is
    ``ts[last observation below the peak] - ts[peak]``: the summed length of the periods
    that ended underwater, so on a regular grid it equals
    ``max_drawdown_duration(returns) * interval``. 0 if the curve never falls below a peak.
    """
    ts, eq = _as_curve(ts_ns, equity)
    return _curve_durations(ts, eq)[1]


def returns_from_equity(ts_ns: npt.ArrayLike, equity: npt.ArrayLike) -> FloatArray:
    """Simple returns of an equity curve: ``r_i = (E_i - E_{i-1}) / E_{i-1}``.

    ``r_i`` is the return of the period ending at ``ts_ns[i]``, so the result has one element
    fewer than the curve (empty for fewer than two points). ``ts_ns`` must be non-decreasing
    and as long as ``equity``.
    """
    _, eq = _as_curve(ts_ns, equity)
    if eq.size < 2:
        return np.empty(0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diff(eq) / eq[:-1]


def periods_per_year_for(
    interval_ns: int, trading_days: int = 365, hours_per_day: float = 24.0
) -> float:
    """Annualisation factor for bars of ``interval_ns``.

    Bars shorter than a trading session (``hours_per_day`` hours):
    ``trading_days * hours_per_day * 3600e9 / interval_ns``. A bar of a session or more
    counts in whole days, one session per day: ``trading_days * 86400e9 / max(interval_ns,
    86400e9)``. E.g. 1-hour bars 24/7 -> 8760; 1-minute bars on 252 days of 6.5 hours ->
    98280; daily bars on 252 days -> 252.
    """
    if interval_ns <= 0:
        raise ValueError(f"interval_ns must be positive, got {interval_ns}")
    if trading_days <= 0:
        raise ValueError(f"trading_days must be positive, got {trading_days}")
    if not 0.0 < hours_per_day <= 24.0:
        raise ValueError(f"hours_per_day must be in (0, 24], got {hours_per_day}")
    session_ns = hours_per_day * NS_PER_HOUR
    if interval_ns < session_ns:
        return trading_days * session_ns / interval_ns
    return trading_days * NS_PER_DAY / max(interval_ns, NS_PER_DAY)


# ------------------------------------------------------------------- trade statistics


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A closed round trip. ``pnl`` is net of ``fees``; all money in quote currency.

    ``mae``/``mfe`` are the worst/best unrealised PnL seen while the position was open.
    """

    instrument_id: str
    side: int  # +1 long, -1 short
    entry_ts: int  # ns
    exit_ts: int  # ns
    quantity: float  # > 0
    entry_price: float
    exit_price: float
    pnl: float
    fees: float
    mae: float
    mfe: float

    def __post_init__(self) -> None:
        if self.side not in (1, -1):
            raise ValueError(f"side must be +1 or -1, got {self.side}")
        if self.exit_ts < self.entry_ts:
            raise ValueError("exit_ts is before entry_ts")
        if not self.quantity > 0:
            raise ValueError(f"quantity must be positive, got {self.quantity}")

    @property
    def holding_time_ns(self) -> int:
        """``exit_ts - entry_ts``."""
        return self.exit_ts - self.entry_ts


def _pnls(trades: Sequence[ClosedTrade]) -> FloatArray:
    return np.fromiter((t.pnl for t in trades), dtype=np.float64, count=len(trades))


def _holding_times(trades: Sequence[ClosedTrade]) -> IntArray:
    return np.fromiter((t.holding_time_ns for t in trades), dtype=np.int64, count=len(trades))


def _mean(x: FloatArray | IntArray) -> float:
    return float(np.mean(x)) if x.size else _NAN


def win_rate(trades: Sequence[ClosedTrade]) -> float:
    """``#(pnl > 0) / #trades``; breakeven trades count as trades, not wins. NaN if none."""
    pnl = _pnls(trades)
    return int(np.count_nonzero(pnl > 0.0)) / pnl.size if pnl.size else _NAN


def profit_factor(trades: Sequence[ClosedTrade]) -> float:
    """``sum(pnl > 0) / |sum(pnl < 0)|``.

    ``inf`` with profits and no losses, 0.0 with losses and no profits, NaN with no trades or
    only breakeven trades.
    """
    pnl = _pnls(trades)
    if pnl.size == 0:
        return _NAN
    gross_profit = float(pnl[pnl > 0.0].sum())
    gross_loss = float(pnl[pnl < 0.0].sum())
    return _divide(gross_profit, abs(gross_loss))


def expectancy(trades: Sequence[ClosedTrade]) -> float:
    """Mean net PnL per trade: ``sum(pnl) / #trades``; NaN if no trades."""
    return _mean(_pnls(trades))


def average_win(trades: Sequence[ClosedTrade]) -> float:
    """Mean PnL of the winning trades (``pnl > 0``); NaN if there are none."""
    pnl = _pnls(trades)
    return _mean(pnl[pnl > 0.0])


def average_loss(trades: Sequence[ClosedTrade]) -> float:
    """Mean PnL of the losing trades (``pnl < 0``, so the result is negative); NaN if none."""
    pnl = _pnls(trades)
    return _mean(pnl[pnl < 0.0])


def average_holding_time_ns(trades: Sequence[ClosedTrade]) -> float:
    """Mean of ``exit_ts - entry_ts`` in nanoseconds; NaN if no trades."""
    return _mean(_holding_times(trades))


def median_holding_time_ns(trades: Sequence[ClosedTrade]) -> float:
    """Median of ``exit_ts - entry_ts`` in nanoseconds (midpoint for an even count); NaN if none."""
    held = _holding_times(trades)
    return float(np.median(held)) if held.size else _NAN


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Statistics over closed round trips; see the functions of the same names.

    ``gross_loss`` and ``average_loss``/``largest_loss`` are <= 0. ``payoff_ratio`` is
    ``average_win / |average_loss|``. Averages and extremes over an empty set are NaN.
    """

    n_trades: int
    n_winners: int
    n_losers: int
    n_breakeven: int
    win_rate: float
    profit_factor: float
    expectancy: float
    total_pnl: float
    gross_profit: float
    gross_loss: float
    total_fees: float
    average_win: float
    average_loss: float
    payoff_ratio: float
    largest_win: float
    largest_loss: float
    average_holding_time_ns: float
    median_holding_time_ns: float
    average_mae: float
    average_mfe: float


def trade_stats(trades: Sequence[ClosedTrade]) -> TradeStats:
    """Compute every trade statistic at once."""
    pnl = _pnls(trades)
    wins = pnl[pnl > 0.0]
    losses = pnl[pnl < 0.0]
    avg_win, avg_loss = _mean(wins), _mean(losses)
    fees = np.fromiter((t.fees for t in trades), dtype=np.float64, count=len(trades))
    mae = np.fromiter((t.mae for t in trades), dtype=np.float64, count=len(trades))
    mfe = np.fromiter((t.mfe for t in trades), dtype=np.float64, count=len(trades))
    return TradeStats(
        n_trades=int(pnl.size),
        n_winners=int(wins.size),
        n_losers=int(losses.size),
        n_breakeven=int(pnl.size - wins.size - losses.size),
        win_rate=win_rate(trades),
        profit_factor=profit_factor(trades),
        expectancy=expectancy(trades),
        total_pnl=float(pnl.sum()),
        gross_profit=float(wins.sum()),
        gross_loss=float(losses.sum()),
        total_fees=float(fees.sum()),
        average_win=avg_win,
        average_loss=avg_loss,
        payoff_ratio=_divide(avg_win, abs(avg_loss)),
        largest_win=float(wins.max()) if wins.size else _NAN,
        largest_loss=float(losses.min()) if losses.size else _NAN,
        average_holding_time_ns=average_holding_time_ns(trades),
        median_holding_time_ns=median_holding_time_ns(trades),
        average_mae=_mean(mae),
        average_mfe=_mean(mfe),
    )


# ----------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """Return, drawdown and trade statistics of one run.

    ``returns`` and ``drawdown`` have one element per period, aligned with ``ts_ns[1:]``.
    The drawdown durations are measured on the equity values themselves.
    """

    start_ts_ns: int
    end_ts_ns: int
    n_periods: int
    periods_per_year: float
    risk_free: float
    start_equity: float
    end_equity: float
    total_return: float
    annualized_return: float
    annualized_volatility: float
    sharpe_ratio: float
    sortino_ratio: float
    downside_risk: float
    max_drawdown: float
    calmar_ratio: float
    max_drawdown_duration_periods: int
    max_drawdown_duration_ns: int
    trades: TradeStats
    returns: FloatArray = field(repr=False, compare=False)
    drawdown: FloatArray = field(repr=False, compare=False)


def performance_report(
    ts_ns: npt.ArrayLike,
    equity: npt.ArrayLike,
    trades: Sequence[ClosedTrade],
    periods_per_year: float,
    risk_free: float = 0.0,
) -> PerformanceReport:
    """Build a :class:`PerformanceReport` from an equity curve and its closed trades.

    ``risk_free`` is per period; it is the Sharpe risk-free rate and the Sortino required
    return. Needs at least one equity point.
    """
    ts, eq = _as_curve(ts_ns, equity)
    if eq.size == 0:
        raise ValueError("the equity curve is empty")
    ppy = _check_ppy(periods_per_year)
    returns = returns_from_equity(ts, eq)
    periods, duration_ns = _curve_durations(ts, eq)
    return PerformanceReport(
        start_ts_ns=int(ts[0]),
        end_ts_ns=int(ts[-1]),
        n_periods=int(returns.size),
        periods_per_year=ppy,
        risk_free=float(risk_free),
        start_equity=float(eq[0]),
        end_equity=float(eq[-1]),
        total_return=total_return(returns),
        annualized_return=annualized_return(returns, ppy),
        annualized_volatility=annualized_volatility(returns, ppy),
        sharpe_ratio=sharpe_ratio(returns, ppy, risk_free),
        sortino_ratio=sortino_ratio(returns, ppy, risk_free),
        downside_risk=downside_risk(returns, ppy, risk_free),
        max_drawdown=max_drawdown(returns),
        calmar_ratio=calmar_ratio(returns, ppy),
        max_drawdown_duration_periods=periods,
        max_drawdown_duration_ns=duration_ns,
        trades=trade_stats(trades),
        returns=returns,
        drawdown=drawdown_series(returns),
    )
