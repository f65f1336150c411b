"""``tradepilot backtest`` and ``tradepilot paper``: run a strategy on a data set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradepilot.analytics.market import market_from_series
from tradepilot.app.build import RunSpec
from tradepilot.app.session import CycleRecord, Session, SessionOptions, SpecPlan, run_backtest
from tradepilot.app.summary import RunSummary
from tradepilot.cli.output import console, err, fail, fmt
from tradepilot.cli.report import execution_table
from tradepilot.cli.tables import WideOpt, print_table
from tradepilot.core.time import iso, parse_duration
from tradepilot.data import catalog
from tradepilot.data.loaders import DataError
from tradepilot.persistence.files import JOURNAL_URL_ENV, check_name, journal_target, next_free
from tradepilot.persistence.journal import DEFAULT_SESSION, JournalError
from tradepilot.strategy import registry

DataOpt = Annotated[
    str, typer.Option("--data", "-d", help="Data set name (see `tradepilot data list`) or a file.")
]
StrategyOpt = Annotated[
    str, typer.Option("--strategy", "-s", help=f"One of: {', '.join(registry.names())}.")
]
JournalOpt = Annotated[
    str | None,
    typer.Option(
        help="Journal: a SQLite file or a postgresql+psycopg:// URL "
        f"(default: ${JOURNAL_URL_ENV}, else a file under runs/)."
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(help="Start anew over an existing journal and log (kept as NAME.bakN)."),
]
DEFAULT_BACKTEST_JOURNAL = Path("runs/backtest.db")
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Strategy parameter key=value (repeatable)."),
]


def _spec(
    data: str,
    strategy: str,
    param: list[str] | None,
    start: str | None,
    end: str | None,
    capital: str,
    fee_bps: str | None,
    latency_ms: float,
    jitter_ms: float,
    seed: int,
    slippage_ticks: int,
    limit_fill: str,
) -> RunSpec:
    if limit_fill not in ("touch", "through"):
        fail("--limit-fill must be 'touch' or 'through'")
    return RunSpec(
        dataset=data,
        strategy=strategy,
        params=registry.run_params(strategy, registry.parse_params(param or [])),
        start=start,
        end=end,
        capital=capital,
        fee_bps=fee_bps,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        seed=seed,
        slippage_ticks=slippage_ticks,
        limit_fill=limit_fill,
    )


def summary_table(s: RunSummary, title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("period", f"{iso(s.start)} -> {iso(s.end)}"),
        ("events", f"{s.events:,}"),
        (
            "orders",
            f"{s.orders:,} ({s.filled_orders:,} filled, {s.canceled_orders:,} cancelled, "
            f"{s.denied_orders:,} denied, {s.rejected_orders:,} rejected)",
        ),
        ("fills", f"{s.fills:,}"),
        ("fees", s.fees),
        ("traded notional", s.traded_notional),
        ("start equity", s.start_equity),
        ("end equity", s.end_equity),
        ("return", fmt(s.return_pct, 3, " %")),
        ("max drawdown", fmt(s.max_drawdown_pct, 3, " %")),
        ("Sharpe (rf 0)", fmt(s.sharpe, 3)),
        ("Sortino (MAR 0)", fmt(s.sortino, 3)),
        *zip(("equity sampled", "annualisation"), s.equity_sampling.split("; "), strict=False),
        ("round trips", f"{s.round_trips:,}"),
        ("win rate", fmt(s.win_rate_pct, 1, " %")),
        ("profit factor", fmt(s.profit_factor, 3)),
    ]
    for code, n in sorted(s.denials.items()):
        rows.append((f"denied: {code}", f"{n:,}"))
    if s.warnings:
        rows.append(("warnings", f"{len(s.warnings)} (printed above)"))
    for key, value in rows:
        table.add_row(key, value)
    return table


def backtest(
    data: DataOpt = catalog.DEFAULT_DATASET,
    strategy: StrategyOpt = "ema_cross",
    param: ParamOpt = None,
    start: Annotated[str | None, typer.Option(help="First bar (ISO date/time, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End of the range, exclusive.")] = None,
    capital: Annotated[str, typer.Option(help="Starting cash in the quote currency.")] = "100000",
    fee_bps: Annotated[str | None, typer.Option(help="Maker and taker fee, bps.")] = None,
    latency_ms: Annotated[float, typer.Option(help="Order latency, ms.")] = 0.0,
    jitter_ms: Annotated[float, typer.Option(help="Random extra latency, up to ms.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the latency model.")] = 0,
    slippage_ticks: Annotated[int, typer.Option(help="Market-order slippage, ticks.")] = 0,
    limit_fill: Annotated[str, typer.Option(help="touch | through")] = "touch",
    journal: JournalOpt = None,
    session: Annotated[
        str, typer.Option(help="Session name inside a database journal.")
    ] = DEFAULT_SESSION,
    overwrite: OverwriteOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    wide: WideOpt = False,
) -> None:
    """Run a strategy over historical data and print a summary."""
    try:
        check_name(session, "--session")
        target = journal_target(journal) or next_free(DEFAULT_BACKTEST_JOURNAL)
        spec = _spec(
            data,
            strategy,
            param,
            start,
            end,
            capital,
            fee_bps,
            latency_ms,
            jitter_ms,
            seed,
            slippage_ticks,
            limit_fill,
        )
        if json_out:
            _, summary = run_backtest(spec, target, overwrite=overwrite, session=session)
            console.print_json(json.dumps(summary.to_dict()))
            return
        with Progress(
            TextColumn("[bold]backtest[/] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} events"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        ) as progress:
            task = progress.add_task(f"{strategy} on {data}", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            prepared, summary = run_backtest(spec, target, on_progress, overwrite, session)
    except (ValueError, DataError, JournalError) as exc:
        fail(str(exc))
        return
    for warning in summary.warnings:
        err.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    console.print(summary_table(summary, prepared.name))
    table = execution_table(
        prepared.engine, market_from_series(prepared.series[0]), width=console.width, wide=wide
    )
    print_table(console, table, wide)
    console.print(f"journal: {target}")


def paper(
    data: DataOpt = catalog.DEFAULT_DATASET,
    strategy: StrategyOpt = "momentum",
    param: ParamOpt = None,
    speed: Annotated[float, typer.Option(help="Market seconds per wall second.")] = 600.0,
    duration: Annotated[str, typer.Option(help="Market time to run, e.g. 24h.")] = "24h",
    cycle: Annotated[str, typer.Option(help="Cycle (status/log) interval, e.g. 300s.")] = "300s",
    start: Annotated[str | None, typer.Option(help="Start of the replay (ISO, UTC).")] = None,
    capital: Annotated[str, typer.Option(help="Starting cash in the quote currency.")] = "100000",
    fee_bps: Annotated[str | None, typer.Option(help="Maker and taker fee, bps.")] = None,
    latency_ms: Annotated[float, typer.Option(help="Order latency, ms.")] = 0.0,
    session: Annotated[
        str, typer.Option(help="Session name: files runs/NAME.db, .jsonl, .report.json.")
    ] = "paper",
    resume: Annotated[
        bool, typer.Option(help="Continue the interrupted session NAME where it stopped.")
    ] = False,
    log: Annotated[Path | None, typer.Option(help="JSON-lines cycle log.")] = None,
    journal: JournalOpt = None,
    overwrite: OverwriteOpt = False,
    flatten_on_stop: Annotated[
        bool, typer.Option(help="On SIGINT/SIGTERM close positions before stopping.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="Do not print each cycle.")] = False,
) -> None:
    """Run a continuous paper session on replayed data with simulated fills."""
    try:
        check_name(session, "--session")
        if resume and overwrite:
            fail("--resume continues a session, --overwrite starts a new one: give one")
        log_path = log or Path("runs") / f"{session}.jsonl"
        journal_path = journal_target(journal) or Path("runs") / f"{session}.db"
        plan: SpecPlan | None = None
        options: SessionOptions | None = None
        if not resume:
            spec = _spec(
                data, strategy, param, start, None, capital, fee_bps, latency_ms, 0.0, 0, 0, "touch"
            )
            plan = SpecPlan(spec)
            options = SessionOptions(
                "paper", speed, parse_duration(duration), parse_duration(cycle), flatten_on_stop
            )
        runner = Session(
            plan,
            options,
            journal_path=journal_path,
            log_path=log_path,
            report_path=log_path.with_suffix(".report.json"),
            on_cycle=None if quiet else _print_cycle,
            resume=resume,
            overwrite=overwrite,
            session=session,
        )
    except (ValueError, DataError, JournalError) as exc:
        fail(str(exc))
        return
    opts = runner.options
    for warning in runner.built.warnings:
        err.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    err.print(
        f"paper session {session!r}{' (resumed)' if resume else ''}: {runner.built.name}, "
        f"cycle {(opts.cycle_ns or 0) // 1_000_000_000}s at "
        f"{opts.speed:g}x; Ctrl-C stops" + (" and flattens" if opts.flatten_on_stop else "")
    )
    try:
        report = runner.run()
    except JournalError as exc:
        fail(str(exc))
        return
    s = summarize_from_report(report)
    console.print(summary_table(s, f"paper session ({report['stop_reason']})"))
    console.print(f"cycle log: {log_path}\nreport: {runner.report_path}")


def summarize_from_report(report: dict[str, object]) -> RunSummary:
    data = dict(report["summary"])  # type: ignore[call-overload]
    for key in ("sharpe", "sortino", "win_rate_pct", "profit_factor"):
        if data.get(key) is None:
            data[key] = float("nan")
    return RunSummary(**data)


def cycle_line(rec: CycleRecord, width: int) -> str:
    """One paper cycle on one line of at most ``width`` characters.

    The fields a trader watches come first (time, value, return, position, price); the
    signal, confidence, momentum and trade count follow while they fit.
    """
    parts = [
        rec.timestamp,
        f"value {fmt(float(rec.portfolio_value))}",
        f"ret {rec.return_pct:+.3f}%",
        f"pos {_plain(rec.position)}",
        f"px {fmt(float(rec.price)) if rec.price else '-'}",
        f"signal {rec.signal or '-'}",
        f"conf {fmt(rec.confidence, 2)}",
        f"mom {fmt(rec.momentum_pct, 3)}%",
        f"trades {rec.trades}",
    ]
    line = parts[0]
    for part in parts[1:]:
        if len(line) + 2 + len(part) > width:
            break
        line += "  " + part
    return line


def _plain(quantity: str) -> str:
    """A decimal quantity without trailing zeros (``0.123450000`` -> ``0.12345``)."""
    return quantity.rstrip("0").rstrip(".") if "." in quantity else quantity


def _print_cycle(rec: CycleRecord) -> None:
    console.print(cycle_line(rec, console.width), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``backtest`` and ``paper`` to ``app``."""
    app.command()(backtest)
    app.command()(paper)
