"""A self-contained HTML report of any journaled run (backtest, paper or compare).

:func:`write_report` reads a journal and writes one HTML file that opens offline: the
plotly library is embedded inline (no CDN, no external script). It shows

* the equity curve and its drawdown, rebuilt from the journal
  (:func:`~tradepilot.analytics.equity.equity_curve`, the series the CLI summary uses),
* the performance statistics of that series (return, drawdown, Sharpe, Sortino, with
  the sampling and annualisation they used),
* the fills on the price chart,
* the distribution of fill slippage against the parent's arrival price, per algorithm,
* the execution tables of :mod:`tradepilot.analytics.execution` (by algorithm, strategy,
  instrument, and per parent order).

Market data is optional. Without it the positions are marked at the journal's own fill
prices and the market-relative metrics (VWAP, participation, markouts) are left empty.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tradepilot.analytics.equity import (
    EquityCurve,
    Sampling,
    closed_trades,
    equity_curve,
    run_performance,
    starting_cash,
)
from tradepilot.analytics.execution import (
    ExecutionReport,
    ExecutionSummary,
    Markout,
    ParentExecution,
    analyze_execution,
)
from tradepilot.analytics.market import (
    MarketSeries,
    PriceInput,
    PriceSeries,
    series_for,
)
from tradepilot.analytics.performance import PerformanceReport
from tradepilot.model import fixed
from tradepilot.model.events import Event, OrderFilled, SessionStarted, SessionStopped

__all__ = [
    "CHART_IDS",
    "EquityCurve",
    "equity_curve",
    "render_report",
    "starting_cash",
    "write_report",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: ``id`` of the chart ``<div>`` elements of the report.
CHART_IDS = ("equity-chart", "price-chart", "slippage-chart")
MAX_CHART_POINTS = 5000
MAX_PARENT_ROWS = 500

_S = float(fixed.SCALE)


# ------------------------------------------------------------------------------ charts


def _dt(ts: IntArray | Sequence[int]) -> npt.NDArray[np.datetime64]:
    return np.asarray(ts, dtype=np.int64).astype("datetime64[ns]").astype("datetime64[ms]")


def _equity_figure(curve: EquityCurve) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.05,
        subplot_titles=("Equity" if curve.start_cash > 0 else "PnL", "Drawdown"),
    )
    shown = PriceSeries(curve.ts, curve.equity).thin(MAX_CHART_POINTS)
    keep = np.searchsorted(curve.ts, shown.ts)
    if curve.drawdown.size:  # thinning never hides the deepest point
        keep = np.union1d(keep, [int(np.argmin(curve.drawdown))])
        shown = PriceSeries(curve.ts[keep], curve.equity[keep])
    x = _dt(shown.ts)
    fig.add_trace(
        go.Scatter(x=x, y=shown.price, mode="lines", name="equity", line={"shape": "hv"}),
        row=1,
        col=1,
    )
    dd = curve.drawdown[keep] * (100.0 if curve.drawdown_is_fraction else 1.0)
    fig.add_trace(
        go.Scatter(
            x=x,
            y=dd,
            mode="lines",
            name="drawdown",
            fill="tozeroy",
            line={"shape": "hv", "color": "#d62728"},
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text="quote currency", row=1, col=1)
    fig.update_yaxes(title_text="%" if curve.drawdown_is_fraction else "quote", row=2, col=1)
    fig.update_layout(height=560, showlegend=False, margin={"t": 40, "b": 30})
    return fig


def _price_figure(events: Sequence[Event], report: ExecutionReport, prices: PriceInput) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    algo_of = {f.client_order_id: f.algorithm for f in report.fills}
    fills = [e for e in events if isinstance(e, OrderFilled)]
    instruments = sorted({f.instrument_id for f in fills})
    t0 = min((e.ts for e in events), default=0)
    t1 = max((e.ts for e in events), default=0)
    for iid in instruments:
        own = [f for f in fills if f.instrument_id == iid]
        series = series_for(prices, iid)
        if series is not None and len(series):
            w = series.window(t0, t1)
            shown = PriceSeries(series.ts[w], series.price[w]).thin(MAX_CHART_POINTS)
            x, y, label = _dt(shown.ts), shown.price, f"{iid} price"
        else:
            x = _dt([f.ts for f in own])
            y = np.asarray([f.last_px / _S for f in own], dtype=np.float64)
            label = f"{iid} fill prices"
        fig.add_trace(
            go.Scattergl(x=x, y=y, mode="lines", name=label, line={"color": "#7f7f7f", "width": 1})
        )
        for side, name, symbol, color in (
            (1, "buy", "triangle-up", "#2ca02c"),
            (-1, "sell", "triangle-down", "#d62728"),
        ):
            sel = [f for f in own if (f.side > 0) == (side > 0)]
            if not sel:
                continue
            fig.add_trace(
                go.Scattergl(
                    x=_dt([f.ts for f in sel]),
                    y=[f.last_px / _S for f in sel],
                    mode="markers",
                    name=f"{iid} {name} fills",
                    marker={"symbol": symbol, "color": color, "size": 8},
                    text=[
                        f"{f.client_order_id} ({algo_of.get(f.client_order_id, '-')}) "
                        f"{f.last_qty / _S:g} @ {f.last_px / _S:,.2f}"
                        for f in sel
                    ],
                    hovertemplate="%{text}<br>%{x}<extra></extra>",
                )
            )
    fig.update_layout(
        height=460,
        title="Fills on the price",
        yaxis_title="price",
        margin={"t": 50, "b": 30},
        legend={"orientation": "h"},
    )
    return fig


def _slippage_figure(report: ExecutionReport) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    algorithms = sorted({f.algorithm for f in report.fills})
    for algo in algorithms:
        values = [
            f.slippage_bps
            for f in report.fills
            if f.algorithm == algo and math.isfinite(f.slippage_bps)
        ]
        fig.add_trace(
            go.Box(
                y=values,
                name=algo,
                boxpoints="all" if len(values) <= 2000 else "outliers",
                jitter=0.4,
                pointpos=0,
                marker={"size": 4},
            )
        )
    fig.update_layout(
        height=420,
        title="Fill slippage vs the parent's arrival price (bps, positive = cost)",
        yaxis_title="bps",
        showlegend=False,
        margin={"t": 50, "b": 30},
    )
    return fig


# ------------------------------------------------------------------------------ tables


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value + 0.0:,.{digits}f}" if round(value, digits) else f"{0.0:,.{digits}f}"


def _dur(ns: float | int | None) -> str:
    if ns is None or not math.isfinite(float(ns)):
        return "-"
    seconds = float(ns) / 1e9
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _summary_rows(
    summaries: Sequence[ExecutionSummary], horizons: Sequence[int]
) -> list[list[str]]:
    rows = []
    for s in summaries:
        sf = s.shortfall
        rows.append(
            [
                s.key,
                str(s.parents),
                str(s.fills),
                f"{s.filled:g} / {s.quantity:g}",
                _f(s.fill_rate * 100.0, 1),
                _f(s.avg_px, 4),
                _f(s.slippage_bps),
                _f(s.slippage_vwap_bps),
                _f(sf.total_bps),
                _f(sf.delay_bps),
                _f(sf.trading_bps),
                _f(sf.opportunity_bps),
                _f(sf.fees_bps),
                _f(sf.total),
                _f(s.participation * 100.0, 2),
                _f(s.price_improvement_bps),
                *(_f(s.markout_bps(h)) for h in horizons),
                _dur(s.median_time_to_last_fill_ns),
            ]
        )
    return rows


def _summary_headers(horizons: Sequence[int]) -> list[str]:
    return [
        "group",
        "parents",
        "fills",
        "filled / qty",
        "fill %",
        "avg px",
        "slip vs arrival bps",
        "slip vs VWAP bps",
        "IS bps",
        "delay bps",
        "trading bps",
        "opportunity bps",
        "fees bps",
        "IS (quote)",
        "participation %",
        "px improvement bps",
        *(f"markout {Markout(h, 0.0, 0.0).label} bps" for h in horizons),
        "median time to fill",
    ]


def _parent_rows(parents: Sequence[ParentExecution], horizons: Sequence[int]) -> list[list[str]]:
    return [
        [
            p.parent_id,
            p.algorithm,
            p.strategy_id,
            p.instrument_id,
            "buy" if p.side > 0 else "sell",
            p.status,
            _iso(p.start_ts),
            f"{p.filled:g} / {p.quantity:g}",
            _f(p.arrival_px, 4)
            + ("" if p.arrival_source == "parent" else f" ({p.arrival_source})"),
            _f(p.avg_px, 4),
            _f(p.slippage_bps),
            _f(p.slippage_vwap_bps),
            _f(p.shortfall.total_bps),
            _f(p.shortfall.delay_bps),
            _f(p.shortfall.trading_bps),
            _f(p.shortfall.opportunity_bps),
            _f(p.shortfall.fees_bps),
            _f(p.participation * 100.0, 2),
            *(_f(p.markout_bps(h)) for h in horizons),
            _dur(p.time_to_first_fill_ns),
            _dur(p.time_to_last_fill_ns),
        ]
        for p in parents
    ]


def _parent_headers(horizons: Sequence[int]) -> list[str]:
    return [
        "parent",
        "algorithm",
        "strategy",
        "instrument",
        "side",
        "status",
        "start (UTC)",
        "filled / qty",
        "arrival",
        "avg px",
        "slip bps",
        "vs VWAP bps",
        "IS bps",
        "delay",
        "trading",
        "opportunity",
        "fees",
        "participation %",
        *(f"markout {Markout(h, 0.0, 0.0).label}" for h in horizons),
        "first fill",
        "last fill",
    ]


# ------------------------------------------------------------------------------ report

_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 24px;
       color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0 16px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.meta td { text-align: left; } .note { color: #666; font-size: 12px; }
.chart { width: 100%; }
"""


def _pct(value: float) -> str:
    return _f(value * 100.0, 3) + " %" if math.isfinite(value) else "-"


def _performance(perf: PerformanceReport, sampling: Sampling, fraction: bool) -> str:
    t = perf.trades
    rows = [
        ["equity sampled", sampling.describe()],
        ["start / end equity", f"{_f(perf.start_equity)} / {_f(perf.end_equity)}"],
        ["total return", _pct(perf.total_return) if fraction else "-"],
        ["annualised return (CAGR)", _pct(perf.annualized_return) if fraction else "-"],
        ["annualised volatility", _pct(perf.annualized_volatility) if fraction else "-"],
        ["Sharpe (rf 0)", _f(perf.sharpe_ratio, 3) if fraction else "-"],
        ["Sortino (MAR 0)", _f(perf.sortino_ratio, 3) if fraction else "-"],
        ["max drawdown", _pct(perf.max_drawdown) if fraction else "-"],
        ["Calmar", _f(perf.calmar_ratio, 3) if fraction else "-"],
        ["longest drawdown", _dur(perf.max_drawdown_duration_ns)],
        ["round trips", f"{t.n_trades:,}"],
        ["win rate", _pct(t.win_rate)],
        ["profit factor", _f(t.profit_factor, 3)],
        ["expectancy (quote)", _f(t.expectancy)],
        ["average holding time", _dur(t.average_holding_time_ns)],
    ]
    return _table(["", ""], rows, "meta")


def _meta(events: Sequence[Event], report: ExecutionReport, source: str) -> str:
    started = next((e for e in events if isinstance(e, SessionStarted)), None)
    stopped = next((e for e in reversed(events) if isinstance(e, SessionStopped)), None)
    n_fills = sum(1 for e in events if isinstance(e, OrderFilled))
    rows = [
        ["journal", source],
        ["mode", started.mode if started else "-"],
        ["config", started.config if started else "-"],
        [
            "period (UTC)",
            f"{_iso(events[0].ts)} -> {_iso(events[-1].ts)}" if events else "-",
        ],
        ["stop reason", stopped.reason if stopped else "-"],
        ["events", f"{len(events):,}"],
        ["parent orders", f"{len(report.parents):,}"],
        ["fills", f"{n_fills:,}"],
        [
            "market data",
            "prices" * report.has_prices + (" + trades" if report.has_trades else "")
            or "none (marks and arrival prices from the journal's fills)",
        ],
    ]
    return _table(["", ""], rows, "meta")


def render_report(
    events: Sequence[Event],
    prices: PriceInput | MarketSeries = None,
    trades: PriceInput = None,
    *,
    title: str = "tradepilot run report",
    source: str = "",
) -> str:
    """The report of ``events`` as one self-contained HTML document."""
    if isinstance(prices, MarketSeries):
        market = prices
        prices = market.prices
        if trades is None:
            trades = market.trades
    events = list(events)
    report = analyze_execution(events, prices, trades)
    curve = equity_curve(events, prices if prices is not None else trades)
    perf, sampling = run_performance(curve, closed_trades(events))
    horizons = report.horizons_ns
    ref = prices if prices is not None else trades
    figures = [
        (CHART_IDS[0], _equity_figure(curve)),
        (CHART_IDS[1], _price_figure(events, report, ref)),
        (CHART_IDS[2], _slippage_figure(report)),
    ]
    divs = [
        fig.to_html(
            full_html=False,
            include_plotlyjs=(i == 0),
            div_id=div_id,
            config={"displaylogo": False},
        )
        for i, (div_id, fig) in enumerate(figures)
    ]
    total = [report.total] if report.parents else []
    parents = sorted(report.parents, key=lambda p: -p.filled_notional)[:MAX_PARENT_ROWS]
    parents.sort(key=lambda p: (p.start_ts, p.parent_id))
    note = (
        f'<p class="note">The {MAX_PARENT_ROWS} largest of {len(report.parents):,} parent '
        "orders by filled notional.</p>"
        if len(report.parents) > MAX_PARENT_ROWS
        else ""
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        _meta(events, report, source),
        "<h2>Equity and drawdown</h2>",
        f'<div class="chart">{divs[0]}</div>',
        "<h2>Performance</h2>",
        '<p class="note">Measured on the equity series of the chart above (the series the '
        "CLI summary uses); returns between its points, annualised as stated. Round trips "
        "run from flat back to flat at average cost, net of fees. See "
        "docs/performance.md.</p>",
        _performance(perf, sampling, curve.drawdown_is_fraction),
        "<h2>Fills</h2>",
        f'<div class="chart">{divs[1]}</div>',
        "<h2>Slippage per algorithm</h2>",
        f'<div class="chart">{divs[2]}</div>',
        "<h2>Execution quality</h2>",
        '<p class="note">bps: positive slippage and shortfall are costs; positive markouts and '
        "price improvement are favourable. IS = delay + trading + opportunity + fees, in bps "
        "of the arrival notional. See docs/analytics.md.</p>",
        "<h3>By algorithm</h3>",
        _table(
            _summary_headers(horizons),
            _summary_rows([*report.by_algorithm, *total], horizons),
            "exec",
        ),
        "<h3>By strategy</h3>",
        _table(_summary_headers(horizons), _summary_rows(report.by_strategy, horizons), "exec"),
        "<h3>By instrument</h3>",
        _table(_summary_headers(horizons), _summary_rows(report.by_instrument, horizons), "exec"),
        "<h3>Parent orders</h3>",
        note,
        _table(_parent_headers(horizons), _parent_rows(parents, horizons), "exec parents"),
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(
    journal_path: str | Path,
    out_html: str | Path,
    prices: PriceInput | MarketSeries = None,
    trades: PriceInput = None,
    *,
    session: str | None = None,
    title: str | None = None,
) -> Path:
    """Write the HTML report of the journal at ``journal_path`` to ``out_html``.

    ``prices``/``trades``: optional market series (see :func:`analyze_execution`), or a
    :class:`~tradepilot.analytics.market.MarketSeries` holding both. Returns the path written.
    """
    from tradepilot.persistence.journal import read_events

    events = read_events(journal_path, session)
    document = render_report(
        events,
        prices,
        trades,
        title=title or f"tradepilot report: {Path(str(journal_path)).name}",
        source=str(journal_path),
    )
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document, encoding="utf-8")
    return out
