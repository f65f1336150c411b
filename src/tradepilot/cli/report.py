"""``tradepilot report`` and ``tradepilot compare``, and the execution table of the CLI.

* ``report JOURNAL`` writes the self-contained HTML report of any journaled run
  (:mod:`tradepilot.analytics.report`) and prints its execution table.
* ``compare`` runs one parent order through every execution algorithm on a real L2
  session, each in a fresh engine with its own journal, and prints one table computed
  from those journals (:mod:`tradepilot.analytics.execution`).

:func:`register` adds both commands to a Typer app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tradepilot.analytics.execution import (
    DEFAULT_MARKOUT_HORIZONS_NS,
    ExecutionReport,
    ExecutionSummary,
    GroupBy,
    Markout,
    analyze_execution,
    session_config,
)
from tradepilot.analytics.market import MarketSeries, PriceInput
from tradepilot.cli.output import console, err, fail, fmt
from tradepilot.model.events import Event

if TYPE_CHECKING:
    from tradepilot.app.compare import CompareResult
    from tradepilot.engine.kernel import Engine

__all__ = [
    "compare_table",
    "engine_events",
    "execution_table",
    "register",
]


# ------------------------------------------------------------------------ execution table


def engine_events(engine: Engine) -> list[Event]:
    """The order and parent-order events of an engine that has run, in time order.

    Taken from the engine's in-memory journal when it has one, else rebuilt from its
    orders (and from its execution-algorithm engine's parent orders, when attached).
    """
    from tradepilot.persistence.journal import MemoryJournal

    if isinstance(engine.journal, MemoryJournal):
        return engine.journal.events()
    events: list[Event] = []
    for order in engine.orders.orders.values():
        events.extend(order.events)
    events.extend(_parent_events(engine))
    events.sort(key=lambda e: e.ts)
    return events


def _parent_events(engine: Engine) -> list[Event]:
    """``ParentOrderStarted``/``Finished`` rebuilt from the engine's algorithm engines."""
    from tradepilot.model.events import ParentOrderFinished, ParentOrderStarted

    out: list[Event] = []
    for strategy in engine.strategies:
        views = getattr(strategy, "parents", None)
        if not callable(views) or not hasattr(strategy, "submit_parent"):
            continue
        for v in views():
            out.append(
                ParentOrderStarted(
                    ts=v.started_ts,
                    parent_id=v.parent_id,
                    instrument_id=v.instrument_id,
                    strategy_id=v.strategy_id,
                    side=int(v.side),
                    quantity=v.quantity,
                    algorithm=v.algorithm,
                    params="",
                    arrival_px=v.arrival_px,
                    urgency=v.urgency,
                )
            )
            if v.finished_ts is not None:
                out.append(
                    ParentOrderFinished(
                        ts=v.finished_ts,
                        parent_id=v.parent_id,
                        state=str(v.status),
                        filled_qty=v.filled_qty,
                        avg_px=v.avg_px,
                        reason=v.reason,
                    )
                )
    return out


def _duration(ns: float | int | None) -> str:
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


def _report_of(
    source: Engine | ExecutionReport | Iterable[Event] | str | Path,
    prices: PriceInput | MarketSeries,
    trades: PriceInput,
) -> ExecutionReport:
    if isinstance(source, ExecutionReport):
        return source
    if isinstance(prices, MarketSeries):
        market = prices
        prices = market.prices
        if trades is None:
            trades = market.trades
    if isinstance(source, str | Path):
        from tradepilot.persistence.journal import read_events

        events: list[Event] = read_events(source)
    elif hasattr(source, "orders") and hasattr(source, "journal"):
        events = engine_events(source)  # type: ignore[arg-type]
    else:
        events = list(source)
    return analyze_execution(events, prices, trades)


def execution_table(
    source: Engine | ExecutionReport | Iterable[Event] | str | Path,
    prices: PriceInput | MarketSeries = None,
    trades: PriceInput = None,
    *,
    by: GroupBy = "algorithm",
    title: str = "execution",
    compact: bool = False,
) -> Table:
    """A rich table of execution quality, one row per ``by`` group plus a total.

    ``source``: an engine that has run, an :class:`ExecutionReport`, journal events, or
    the path of a journal. ``prices``/``trades``: optional market series (or one
    :class:`MarketSeries`); without them the arrival price of a direct order is its first
    fill and the market-relative columns are empty. ``compact`` keeps the columns that
    fit a terminal next to the run summary.
    """
    report = _report_of(source, prices, trades)
    horizons = report.horizons_ns or DEFAULT_MARKOUT_HORIZONS_NS
    columns: list[tuple[str, Callable[[ExecutionSummary], str]]] = [
        ("parents", lambda s: f"{s.parents:,}"),
        ("fills", lambda s: f"{s.fills:,}"),
        ("filled", lambda s: f"{s.filled:,.6g}"),
        ("fill %", lambda s: fmt(s.fill_rate * 100.0, 1)),
        ("slip bps", lambda s: fmt(s.slippage_bps)),
        ("vs VWAP bps", lambda s: fmt(s.slippage_vwap_bps)),
        ("IS bps", lambda s: fmt(s.shortfall.total_bps)),
        ("delay", lambda s: fmt(s.shortfall.delay_bps)),
        ("trading", lambda s: fmt(s.shortfall.trading_bps)),
        ("opport.", lambda s: fmt(s.shortfall.opportunity_bps)),
        ("fees", lambda s: fmt(s.shortfall.fees_bps)),
        ("IS quote", lambda s: fmt(s.shortfall.total)),
        *((f"mkt {Markout(h, 0.0, 0.0).label}", _markout_getter(h)) for h in horizons),
        ("time to fill", lambda s: _duration(s.median_time_to_last_fill_ns)),
    ]
    if compact:
        keep = {"parents", "fill %", "slip bps", "vs VWAP bps", "IS bps", "fees", "time to fill"}
        keep.add(f"mkt {Markout(horizons[-1], 0.0, 0.0).label}")
        columns = [c for c in columns if c[0] in keep]
    table = Table(title=title, title_justify="left")
    table.add_column(by)
    for name, _ in columns:
        table.add_column(name, justify="right")
    groups = report.by(by)
    rows: list[ExecutionSummary] = list(groups)
    if len(groups) > 1:
        rows.append(report.total)
    for i, s in enumerate(rows):
        table.add_row(
            s.key if s.group != "all" else "[bold]all[/]",
            *(getter(s) for _, getter in columns),
            end_section=i == len(groups) - 1 and len(rows) > len(groups),
        )
    notes = ["bps; slippage and IS > 0 are costs, markouts > 0 favourable"]
    if not report.has_prices:
        notes.append("no market data: arrival = first fill of direct orders")
    table.caption = "; ".join(notes)
    return table


def _markout_getter(horizon: int) -> Callable[[ExecutionSummary], str]:
    return lambda s: fmt(s.markout_bps(horizon))


# -------------------------------------------------------------------------------- report


def report_command(
    journal: Annotated[str, typer.Argument(help="Journal of a run (SQLite file or URL).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file to write (default: JOURNAL with .html)."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            "-d",
            help="Market data: a data set name, a bar/trade file or a book/ session folder "
            "(default: the data the run used, when it can be found).",
        ),
    ] = None,
    no_market: Annotated[
        bool, typer.Option("--no-market", help="Use no market data, only the journal.")
    ] = False,
    session: Annotated[
        str | None, typer.Option(help="Journal session (PostgreSQL journals).")
    ] = None,
) -> None:
    """Write a self-contained HTML report (equity, fills, slippage, execution) of a run."""
    from tradepilot.analytics.market import load_market, market_from_run_config
    from tradepilot.analytics.report import render_report
    from tradepilot.persistence.journal import JournalError, read_events

    try:
        events = read_events(journal, session)
    except (JournalError, OSError, ValueError) as exc:
        fail(str(exc))
        return
    if not events:
        fail(f"journal {journal} holds no events")
    market: MarketSeries | None = None
    if data is not None:
        try:
            market = load_market(data)
        except (ValueError, OSError) as exc:
            fail(str(exc))
            return
    elif not no_market:
        config = session_config(events)
        market = market_from_run_config(*config) if config else None
    target = out if out is not None else _default_out(journal)
    document = render_report(
        events,
        market,
        title=f"tradepilot report: {Path(journal).name}",
        source=journal,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(document, encoding="utf-8")
    console.print(execution_table(events, market, title=f"execution: {journal}"))
    console.print(f"market data: {market.source if market else 'none'}")
    console.print(f"report: {target}")


def _default_out(journal: str) -> Path:
    path = Path(journal)
    if "://" in journal or not path.suffix:
        return Path("report.html")
    return path.with_suffix(".html")


# ------------------------------------------------------------------------------- compare


def _parse_overrides(items: list[str] | None) -> dict[str, dict[str, object]]:
    """``algo.key=value`` items -> ``{algo: {key: value}}`` (numbers stay text)."""
    out: dict[str, dict[str, object]] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        algo, dot, key = name.partition(".")
        if not sep or not dot or not algo or not key:
            raise ValueError(f"--param must look like algorithm.key=value, got {item!r}")
        parsed: object = value
        if value.lower() in ("true", "false"):
            parsed = value.lower() == "true"
        elif value.lower() == "none":
            parsed = None
        elif value.lstrip("-").isdigit():
            parsed = int(value)
        out.setdefault(algo, {})[key] = parsed
    return out


def compare_table(results: Sequence[CompareResult], title: str) -> Table:
    """One row per algorithm: computed from each run's journal."""
    table = Table(title=title, title_justify="left")
    table.add_column("algorithm")
    table.add_column("status")
    for name in (
        "filled",
        "avg price",
        "slip vs arrival bps",
        "vs VWAP bps",
        "IS bps",
        "fees bps",
        "particip. %",
        "fills",
        "time to fill",
    ):
        table.add_column(name, justify="right")
    for r in results:
        p = r.parent
        if p is None:
            table.add_row(r.algorithm, "[red]no parent[/]", *["-"] * 8, r.error or "-")
            continue
        status = p.status if p.status == "DONE" else f"[yellow]{p.status}[/]"
        table.add_row(
            r.algorithm,
            status,
            f"{p.filled:,.6g} ({fmt(p.fill_rate * 100.0, 1)}%)",
            fmt(p.avg_px, 2),
            fmt(p.slippage_bps),
            fmt(p.slippage_vwap_bps),
            fmt(p.shortfall.total_bps),
            fmt(p.shortfall.fees_bps),
            fmt(p.participation * 100.0, 2),
            f"{p.n_fills:,}",
            _duration(p.time_to_last_fill_ns),
        )
    table.caption = (
        "bps of the arrival price; slippage and IS > 0 are costs; "
        "IS = delay + trading + opportunity + fees; time to fill = start to last fill"
    )
    return table


def compare_command(
    session: Annotated[
        str | None,
        typer.Option(
            help="L2 session folder (or its name under shared/data/book); "
            "default: ../shared/data/book/binance_spot_btcusdt_20240808."
        ),
    ] = None,
    side: Annotated[str, typer.Option(help="buy | sell")] = "buy",
    quantity: Annotated[str, typer.Option(help="Parent quantity in base units.")] = "20",
    duration: Annotated[str, typer.Option(help="Time to work the parent, e.g. 5m.")] = "5m",
    algorithms: Annotated[
        str, typer.Option(help="Comma-separated algorithm names, or 'all'.")
    ] = "all",
    start_offset: Annotated[
        str, typer.Option(help="Parent start after the session's book snapshot.")
    ] = "5s",
    fee_bps: Annotated[
        str | None, typer.Option(help="Maker and taker fee, bps (default by market).")
    ] = None,
    latency_ms: Annotated[float, typer.Option(help="Order latency, ms.")] = 0.0,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Algorithm parameter algo.key=value (repeatable)."),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option(help="Folder of the journals (one per algorithm).")
    ] = Path("runs/compare"),
) -> None:
    """Run the same parent order through every algorithm on a real L2 session."""
    from tradepilot.app.compare import (
        CompareSpec,
        algorithm_names,
        resolve_session,
        run_compare,
    )
    from tradepilot.core.time import parse_duration

    try:
        if side.lower() not in ("buy", "sell"):
            raise ValueError(f"--side must be buy or sell, got {side!r}")
        names = (
            tuple(algorithm_names())
            if algorithms.strip().lower() == "all"
            else tuple(a.strip() for a in algorithms.split(",") if a.strip())
        )
        spec = CompareSpec(
            session=resolve_session(session),
            side=1 if side.lower() == "buy" else -1,
            quantity=quantity,
            duration_ns=parse_duration(duration),
            algorithms=names,
            start_offset_ns=parse_duration(start_offset),
            out_dir=out_dir,
            fee_bps=fee_bps,
            latency_ms=latency_ms,
            params=_parse_overrides(param),
        )

        def done(result: CompareResult) -> None:
            err.print(f"  {result.algorithm}: journal {result.journal}", highlight=False)

        err.print(
            f"compare: {side} {quantity} over {duration} on {spec.session.name}, "
            f"{len(names)} algorithm(s)"
        )
        results = run_compare(spec, done)
    except ValueError as exc:
        fail(str(exc))
        return
    title = f"{side} {quantity} over {duration} on {spec.session.name}"
    console.print(compare_table(results, title))


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to ``app``."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
