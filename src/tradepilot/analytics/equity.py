"""The one equity series of a run, and the drawdown and Sharpe measured on it.

The CLI summary, the paper report and the HTML report all measure a run on the series
built here, so they print the same drawdown and the same Sharpe:

* **sampling** - the equity is marked at the session's start and end and in between at
  every bar of the reference prices (bar data: one mark per bar, so an equity market's
  closed hours add no flat points), or on the regular grid of multiples of ``interval``
  (trade or L2 data: every minute; no prices: every hour). At each point
  the fills up to and including that time are counted and each position is marked at
  the last reference price at or before it (the instrument's last fill price before the
  series starts or without one).
* **annualisation** - Sharpe, Sortino and volatility use the simple returns between
  consecutive points and ``periods_per_year`` for that interval
  (:func:`~tradepilot.analytics.performance.periods_per_year_for`: 24/7 by default, or
  252 sessions of 6.5 hours for an equity market).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradepilot.analytics.execution import fee_in_quote
from tradepilot.analytics.market import PriceInput, PriceSeries, run_config, series_for
from tradepilot.analytics.performance import (
    ClosedTrade,
    PerformanceReport,
    performance_report,
    periods_per_year_for,
)
from tradepilot.model import fixed
from tradepilot.model.events import Event, OrderFilled, SessionStarted, SessionStopped

__all__ = [
    "EquityCurve",
    "Sampling",
    "closed_trades",
    "equity_curve",
    "run_performance",
    "sampling_interval",
    "starting_cash",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NS_PER_MINUTE = 60_000_000_000
NS_PER_HOUR = 60 * NS_PER_MINUTE
_S = float(fixed.SCALE)


@dataclass(frozen=True, slots=True, eq=False)
class EquityCurve:
    """Equity rebuilt from the fills of a run, on the regular grid of ``interval_ns``.

    ``equity = start_cash + cash flows of the fills + sum(position * mark)``, where a fill
    moves cash by ``-side * qty * px - fee`` and the position by ``side * qty``.
    ``drawdown`` is ``equity / running peak - 1`` when the starting cash is positive, else
    the money below the running peak (``equity - peak``, ``drawdown_is_fraction`` False).
    """

    ts: IntArray
    equity: FloatArray
    drawdown: FloatArray
    start_cash: float
    drawdown_is_fraction: bool
    interval_ns: int
    per_bar: bool = False  # marked at each bar of the prices rather than on a clock grid


@dataclass(frozen=True, slots=True)
class Sampling:
    """How an equity series was sampled and annualised, in words a reader can check."""

    interval_ns: int
    points: int
    periods_per_year: float
    per_bar: bool = False

    def describe(self) -> str:
        """E.g. ``each 1 min bar, 9,881 points; annualised x sqrt(525,600)``."""
        every = (
            f"each {_interval(self.interval_ns)} bar"
            if self.per_bar
            else "every " + (_interval(self.interval_ns))
        )
        return f"{every}, {self.points:,} points; annualised x sqrt({self.periods_per_year:,.0f})"


def _interval(ns: int) -> str:
    seconds = ns / 1e9
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def starting_cash(events: Iterable[Event]) -> float:
    """Starting cash in the base currency, from the first ``SessionStarted``.

    Reads the recorded starting balance (journal format 2), else the config's ``capital``
    (the run specification of backtest, paper and compare runs) or the single entry of
    its ``starting_balances``; 0 when none is there.
    """
    for ev in events:
        if not isinstance(ev, SessionStarted):
            continue
        recorded = ev.starting_balances.get(ev.base_currency)
        if recorded is not None:
            return fixed.to_float(fixed.to_raw(recorded))
        config = run_config(ev.config)
        value = config.get("capital")
        if value is None:
            balances = config.get("starting_balances")
            if isinstance(balances, dict) and len(balances) == 1:
                (value,) = balances.values()
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                return fixed.to_float(fixed.to_raw(value))
            except ValueError:
                return 0.0
        return 0.0
    return 0.0


def _median_step(series: Iterable[PriceSeries]) -> int:
    steps = [int(np.median(np.diff(s.ts))) for s in series if len(s) > 1]
    return min(steps) if steps else 0


def sampling_interval(series: Iterable[PriceSeries | None]) -> int:
    """The bar interval of the reference prices (median spacing), at least one minute.

    One hour when there are no prices to mark at.
    """
    steps = []
    for s in series:
        if s is not None and len(s) > 1:
            d = np.diff(s.ts)
            d = d[d > 0]
            if d.size:
                steps.append(int(np.median(d)))
    if not steps:
        return NS_PER_HOUR
    step = max(NS_PER_MINUTE, min(steps))
    return -(-step // 1_000_000_000) * 1_000_000_000  # whole seconds


def equity_curve(
    events: Sequence[Event],
    prices: PriceInput = None,
    start_cash: float | None = None,
    interval_ns: int | None = None,
    bounds: tuple[int, int] | None = None,
    instruments: Iterable[str] = (),
) -> EquityCurve:
    """The equity series of a run from its journaled events (see the module docstring).

    ``bounds``: the session's start and end when the events do not carry them;
    ``instruments``: those the run traded or could have (their prices set the sampling
    even when nothing filled).
    """
    cash0 = starting_cash(events) if start_cash is None else start_cash
    fills = [e for e in events if isinstance(e, OrderFilled)]
    if bounds is None:
        marks = [e.ts for e in events if isinstance(e, SessionStarted | SessionStopped)]
        t_start = min(marks + [f.ts for f in fills]) if marks or fills else 0
        t_end = max((e.ts for e in events), default=0)
    else:
        t_start, t_end = bounds
    watched = sorted({f.instrument_id for f in fills} | set(instruments))
    instruments = sorted({f.instrument_id for f in fills})
    marked = [s for s in (series_for(prices, iid) for iid in watched) if s is not None]
    step = interval_ns or sampling_interval(marked)
    per_bar = interval_ns is None and bool(marked) and _median_step(marked) >= NS_PER_MINUTE
    if per_bar:
        # bars: mark at each bar (an equity market's closed hours add no flat points)
        parts = [s.ts[s.window(t_start, t_end)] for s in marked]
    else:
        parts = [np.arange((t_start // step + 1) * step, t_end, step, dtype=np.int64)]
    grid = np.unique(np.concatenate([np.asarray([t_start, t_end], dtype=np.int64), *parts]))

    f_ts = np.asarray([f.ts for f in fills], dtype=np.int64)
    flows = np.asarray(
        [-f.side * (f.last_qty / _S) * (f.last_px / _S) - fee_in_quote(f) / _S for f in fills],
        dtype=np.float64,
    )
    idx = np.searchsorted(f_ts, grid, side="right") - 1
    cum_cash = np.cumsum(flows) if flows.size else np.zeros(0)
    equity = np.full(grid.shape, cash0, dtype=np.float64)
    has = idx >= 0
    equity[has] += cum_cash[idx[has]]
    for iid in instruments:
        mine = [f for f in fills if f.instrument_id == iid]
        m_ts = np.asarray([f.ts for f in mine], dtype=np.int64)
        qty = np.cumsum(np.asarray([f.side * f.last_qty / _S for f in mine], dtype=np.float64))
        last_px = np.asarray([f.last_px / _S for f in mine], dtype=np.float64)
        j = np.searchsorted(m_ts, grid, side="right") - 1
        ok = j >= 0
        pos = np.zeros(grid.shape, dtype=np.float64)
        pos[ok] = qty[j[ok]]
        mark = np.zeros(grid.shape, dtype=np.float64)
        mark[ok] = last_px[j[ok]]
        series = series_for(prices, iid)
        if series is not None and len(series):
            ref = series.at_many(grid)
            use = np.isfinite(ref)
            mark[use] = ref[use]
        equity += np.where(pos != 0.0, pos * mark, 0.0)
    peak = np.fmax.accumulate(equity) if equity.size else equity
    if cash0 > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(peak > 0, equity / peak - 1.0, 0.0)
        fraction = True
    else:
        drawdown = equity - peak
        fraction = False
    return EquityCurve(grid, equity, drawdown, cash0, fraction, step, per_bar)


def run_performance(
    curve: EquityCurve,
    trades: Sequence[ClosedTrade] = (),
    trading_days: int = 365,
    hours_per_day: float = 24.0,
) -> tuple[PerformanceReport, Sampling]:
    """Performance statistics of ``curve`` and how its returns were sampled."""
    ppy = periods_per_year_for(curve.interval_ns, trading_days, hours_per_day)
    report = performance_report(curve.ts, curve.equity, trades, ppy)
    return report, Sampling(curve.interval_ns, len(curve.ts), ppy, curve.per_bar)


def closed_trades(events: Iterable[Event]) -> list[ClosedTrade]:
    """Round trips (flat back to flat, per instrument) folded from the journaled fills.

    Average cost: the entry price is the quantity-weighted price of the fills that grew
    the position, the exit price that of the fills that shrank it; ``pnl`` is net of all
    the trip's fees. A fill that flips the position closes one trip and opens the next
    with the rest. MAE and MFE need a price path and are left NaN.
    """
    open_: dict[
        str, list[float]
    ] = {}  # iid -> [side, qty, entry_ts, in_q, in_n, out_q, out_n, fees]
    out: list[ClosedTrade] = []
    nan = float("nan")
    for f in events:
        if not isinstance(f, OrderFilled):
            continue
        qty, px, fee = f.last_qty / _S, f.last_px / _S, fee_in_quote(f) / _S
        while qty > 0:
            trip = open_.get(f.instrument_id)
            if trip is None:
                open_[f.instrument_id] = [f.side, qty, f.ts, qty, qty * px, 0.0, 0.0, fee]
                break
            side, held = trip[0], trip[1]
            if side == f.side:
                trip[1] += qty
                trip[3] += qty
                trip[4] += qty * px
                trip[7] += fee
                break
            closed = min(qty, held)
            share = closed / qty
            trip[1] -= closed
            trip[5] += closed
            trip[6] += closed * px
            trip[7] += fee * share
            fee -= fee * share
            qty -= closed
            if trip[1] <= 1e-12:
                entry, exit_ = trip[4] / trip[3], trip[6] / trip[5]
                pnl = side * (exit_ - entry) * trip[5] - trip[7]
                out.append(
                    ClosedTrade(
                        f.instrument_id,
                        int(side),
                        int(trip[2]),
                        f.ts,
                        trip[3],
                        entry,
                        exit_,
                        pnl,
                        trip[7],
                        nan,
                        nan,
                    )
                )
                del open_[f.instrument_id]
    return out
