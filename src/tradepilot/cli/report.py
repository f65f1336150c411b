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
    ParentExecution,
    analyze_execution,
    session_config,
)
from tradepilot.analytics.market import MarketSeries, PriceInput
from tradepilot.cli.output import console, err, fail, fmt
from tradepilot.cli.tables import Column, WideOpt, fit_table, print_table
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
    width: int | None = None,
    wide: bool = False,
) -> Table:
    """A rich table of execution quality, one row per ``by`` group plus a total.

    ``source``: an engine that has run, an :class:`ExecutionReport`, journal events, or
    the path of a journal. ``prices``/``trades``: optional market series (or one
    :class:`MarketSeries`); without them the arrival price of a direct order is its first
    fill and the market-relative columns are empty. ``width``: the columns that fit it,
    most telling first (see :func:`~tradepilot.cli.tables.fit_table`); None or ``wide``
    shows them all.
    """
    report = _report_of(source, prices, trades)
    horizons = report.horizons_ns or DEFAULT_MARKOUT_HORIZONS_NS
    last = horizons[-1]
    columns: list[Column[ExecutionSummary]] = [
        Column("parents", lambda s: f"{s.parents:,}", 1),
        Column("fills", lambda s: f"{s.fills:,}", 6),
        Column("filled", lambda s: f"{s.filled:,.6g}", 5),
        Column("fill %", lambda s: fmt(s.fill_rate * 100.0, 1), 1),
        Column("slip", lambda s: fmt(s.slippage_bps), 0),
        Column("vs VWAP", lambda s: fmt(s.slippage_vwap_bps), 2),
        Column("IS", lambda s: fmt(s.shortfall.total_bps), 0),
        Column("delay", lambda s: fmt(s.shortfall.delay_bps), 7),
        Column("trading", lambda s: fmt(s.shortfall.trading_bps), 7),
        Column("opport.", lambda s: fmt(s.shortfall.opportunity_bps), 7),
        Column("fees", lambda s: fmt(s.shortfall.fees_bps), 3),
        Column("IS quote", lambda s: fmt(s.shortfall.total), 5),
        Column("particip. %", lambda s: _participation(s.participation), 1),
        *(
            Column(f"mkt {Markout(h, 0.0, 0.0).label}", _markout_getter(h), 4 if h == last else 8)
            for h in horizons
        ),
        Column("time to fill", lambda s: _duration(s.median_time_to_last_fill_ns), 2),
    ]
    groups = report.by(by)
    rows: list[tuple[str, ExecutionSummary]] = [(s.key, s) for s in groups]
    if len(groups) > 1:
        rows.append(("[bold]all[/]", report.total))
    notes = ["slip, vs VWAP, IS, delay ... markouts: bps; IS and slippage > 0 cost"]
    if not report.has_prices:
        notes.append("no market data: arrival = first fill of direct orders")
    if any(_over_market(s.participation) for _, s in rows):
        notes.append(PARTICIPATION_NOTE)
    return fit_table(
        title,
        by,
        columns,
        rows,
        width,
        wide=wide,
        caption="; ".join(notes),
        sections_after=(len(groups) - 1,) if len(rows) > len(groups) else (),
    )


#: Caption of a table with a participation above 100 %.
PARTICIPATION_NOTE = "! participation > 100 %: fills exceed the market's traded volume"


def _over_market(participation: float) -> bool:
    return math.isfinite(participation) and participation > 1.0


def _participation(participation: float) -> str:
    """Participation in percent, flagged with ``!`` above 100 % (more than the market traded)."""
    text = fmt(participation * 100.0, 1)
    return f"[red]!{text}[/]" if _over_market(participation) else text


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
    wide: WideOpt = False,
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
    table = execution_table(
        events, market, title=f"execution: {journal}", width=console.width, wide=wide
    )
    print_table(console, table, wide)
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


def _status(r: CompareResult) -> str:
    if r.parent is None:
        return "[red]no parent[/]"
    return r.parent.status if r.parent.status == "DONE" else f"[yellow]{r.parent.status}[/]"


def _parent_cell(getter: Callable[[ParentExecution], str]) -> Callable[[CompareResult], str]:
    return lambda r: getter(r.parent) if r.parent is not None else "-"


def compare_table(
    results: Sequence[CompareResult], title: str, width: int | None = None, wide: bool = False
) -> Table:
    """One row per algorithm, computed from each run's journal.

    ``width``: the columns that fit it, the key numbers first (see
    :func:`~tradepilot.cli.tables.fit_table`); None or ``wide`` shows them all.
    """
    columns: list[Column[CompareResult]] = [
        Column("status", _status, 3, "left"),
        Column("filled", _parent_cell(lambda p: f"{p.filled:,.6g}"), 1),
        Column("fill %", _parent_cell(lambda p: fmt(p.fill_rate * 100.0, 1)), 4),
        Column("avg price", _parent_cell(lambda p: fmt(p.avg_px, 2)), 5),
        Column("slip", _parent_cell(lambda p: fmt(p.slippage_bps)), 0),
        Column("vs VWAP", _parent_cell(lambda p: fmt(p.slippage_vwap_bps)), 1),
        Column("IS", _parent_cell(lambda p: fmt(p.shortfall.total_bps)), 0),
        Column("fees", _parent_cell(lambda p: fmt(p.shortfall.fees_bps)), 4),
        Column("particip. %", _parent_cell(lambda p: _participation(p.participation)), 0),
        Column("fills", _parent_cell(lambda p: f"{p.n_fills:,}"), 2),
        Column("time to fill", _parent_cell(lambda p: _duration(p.time_to_last_fill_ns)), 1),
        Column("error", lambda r: r.error or "-", 6, "left"),
    ]
    if not any(r.error for r in results):
        columns.pop()
    notes = [
        "slip (vs arrival), vs VWAP, IS, fees: bps of the arrival price, > 0 costs; "
        "IS = delay + trading + opportunity + fees; time to fill = start to last fill"
    ]
    if any(r.parent is not None and _over_market(r.parent.participation) for r in results):
        notes.append(PARTICIPATION_NOTE)
    return fit_table(
        title,
        "algorithm",
        columns,
        [(r.algorithm, r) for r in results],
        width,
        wide=wide,
        caption="; ".join(notes),
    )


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
    wide: WideOpt = False,
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
    print_table(console, compare_table(results, title, console.width, wide), wide)


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``compare`` to ``app``."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
