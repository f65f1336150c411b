"""``tradepilot run-config`` and ``tradepilot signals check``.

* ``run-config CONFIG`` runs a YAML run configuration (``examples/configs/``) as a
  backtest, or with ``--paper`` as a paper session paced by the clock, writing a
  cycle log (JSON lines), a journal and a report (``runs/NAME.*``, ``--session``),
  and prints a summary with the HOLD reasons counted. ``--resume`` continues an
  interrupted session, ``--flatten-on-stop`` closes positions on SIGINT/SIGTERM.
* ``signals check FILE`` reads a CSV or JSON-lines signal file and lists the lines
  that would be rejected, with the reason.

:func:`register` adds both to a Typer app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tradepilot.app.config import load_config
from tradepilot.app.session import CycleRecord, Session, config_plan
from tradepilot.cli.output import console, err, fail, fmt
from tradepilot.cli.run import JournalOpt, OverwriteOpt
from tradepilot.core.time import parse_duration
from tradepilot.data import catalog
from tradepilot.data.loaders import DataError
from tradepilot.persistence.files import check_name, journal_target
from tradepilot.persistence.journal import JournalError
from tradepilot.strategy.signals import check_records, load_signal_file

__all__ = ["register", "run_config", "signals_check"]


def print_cycle(rec: CycleRecord) -> None:
    reason = str(rec.extra.get("reason", ""))
    console.print(
        f"{rec.timestamp}  value {rec.portfolio_value:>16}  ret {rec.return_pct:+8.3f}%  "
        f"{rec.signal or '-':<9} conf {fmt(rec.confidence)}  mom {fmt(rec.momentum_pct, 3)}%  "
        f"trades {rec.trades}  {reason}",
        highlight=False,
        soft_wrap=True,
    )


def report_table(report: dict[str, Any]) -> Table:
    s = report["summary"]
    table = Table(
        title=f"{report['name']} ({report['mode']}, {report['stop_reason']})",
        show_header=False,
        title_justify="left",
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, str]] = [
        ("period", f"{report['market_start']} -> {report['market_end']}"),
        ("events", f"{s['events']:,}"),
        ("cycles", f"{report['cycles']:,}"),
        (
            "orders",
            f"{s['orders']:,} ({s['filled_orders']:,} filled, {s['canceled_orders']:,} "
            f"cancelled, {s['denied_orders']:,} denied, {s['rejected_orders']:,} rejected)",
        ),
        ("fills", f"{s['fills']:,}"),
        ("fees", str(s["fees"])),
        ("start equity", str(s["start_equity"])),
        ("end equity", str(s["end_equity"])),
        ("return", fmt(s["return_pct"], 3, " %")),
        ("max drawdown", fmt(s["max_drawdown_pct"], 3, " %")),
        ("Sharpe", fmt(s["sharpe"], 3)),
        ("round trips", f"{s['round_trips']:,}"),
        ("win rate", fmt(s["win_rate_pct"], 1, " %")),
    ]
    for sid, info in report["signals"].items():
        counts = info["signals"]
        rows.append(
            (
                f"signals: {sid}",
                ", ".join(f"{n:,} {k}" for k, n in counts.items() if n),
            )
        )
    for code, n in report["holds"].items():
        rows.append((f"hold: {code}", f"{n:,}"))
    for code, n in sorted(s["denials"].items()):
        rows.append((f"denied: {code}", f"{n:,}"))
    rows.append(("risk state", str(report["risk_state"])))
    for key, value in rows:
        table.add_row(key, value)
    return table


def run_config(
    config: Annotated[Path, typer.Argument(help="YAML run configuration.")],
    paper: Annotated[
        bool, typer.Option("--paper", help="Paper session paced by the clock (default: backtest).")
    ] = False,
    speed: Annotated[
        float | None, typer.Option(help="Paper: market seconds per wall second.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option(help="Market time to run, e.g. 24h (paper default: config).")
    ] = None,
    cycle: Annotated[str | None, typer.Option(help="Cycle length, e.g. 5m.")] = None,
    start: Annotated[str | None, typer.Option(help="Start (ISO date/time, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End, exclusive.")] = None,
    signals: Annotated[
        Path | None, typer.Option(help="Replay this CSV/JSON-lines signal file too.")
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            help="Session name: files runs/NAME.db, .jsonl, .report.json "
            "(default: the configuration's name and the mode)."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the interrupted session where it stopped.")
    ] = False,
    log: Annotated[Path | None, typer.Option(help="Cycle log (JSON lines).")] = None,
    journal: JournalOpt = None,
    overwrite: OverwriteOpt = False,
    no_journal: Annotated[bool, typer.Option(help="Do not write a journal.")] = False,
    report: Annotated[Path | None, typer.Option(help="JSON report.")] = None,
    flatten_on_stop: Annotated[
        bool, typer.Option(help="On SIGINT/SIGTERM close positions before stopping.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="Do not print each cycle.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run a YAML configuration (data, strategies, sizing, exits, risk) as a backtest or paper."""
    mode = "paper" if paper else "backtest"
    if resume and no_journal:
        fail("--resume continues a session from its journal: drop --no-journal")
    try:
        cfg = load_config(config)
        if resume and overwrite:
            fail("--resume continues a session, --overwrite starts a new one: give one")
        name = check_name(session or f"{cfg.name}-{mode}", "--session")
        stem = Path("runs") / name
        journal_path = None if no_journal else (journal_target(journal) or Path(f"{stem}.db"))
        plan, options = config_plan(
            cfg,
            mode=mode,
            speed=speed,
            duration_ns=parse_duration(duration) if duration else None,
            cycle_ns=parse_duration(cycle) if cycle else None,
            start=start,
            end=end,
            signals_file=str(signals) if signals else None,
            flatten_on_stop=flatten_on_stop,
        )
        runner = Session(
            plan,
            options,
            journal_path=journal_path,
            log_path=log or Path(f"{stem}.jsonl"),
            report_path=report or Path(f"{stem}.report.json"),
            on_cycle=None if (quiet or json_out or not paper) else print_cycle,
            resume=resume,
            overwrite=overwrite,
            session=name,
        )
    except (ValueError, DataError, JournalError, OSError) as exc:
        fail(str(exc))
        return
    opts = runner.options
    if opts.mode == "paper" and not json_out:
        err.print(
            f"paper session {stem.name!r}{' (resumed)' if resume else ''}: {cfg.name}, cycle "
            f"{(opts.cycle_ns or 0) // 1_000_000_000}s, {opts.speed:g}x; Ctrl-C stops"
            + (" and flattens" if opts.flatten_on_stop else "")
        )
    try:
        result = runner.run()
    except JournalError as exc:
        fail(str(exc))
        return
    if json_out:
        console.print_json(json.dumps(result, default=str))
        return
    console.print(report_table(result))
    console.print(
        f"cycle log: {runner.log_path}\nreport: {runner.report_path}"
        + (f"\njournal: {journal_path}" if journal_path is not None else "")
    )


signals_app = typer.Typer(help="Signal files: check before replaying.", no_args_is_help=True)


@signals_app.command("check")
def signals_check(
    path: Annotated[Path, typer.Argument(help="CSV or JSON-lines signal file.")],
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data", "-d", help="Data set(s) whose instruments the signals name (repeatable)."
        ),
    ] = None,
) -> None:
    """List the lines of a signal file that a replay would reject, with the reason."""
    try:
        instruments = {}
        for name in data or [catalog.DEFAULT_DATASET]:
            inst = catalog.find(name).instrument()
            instruments[inst.id] = inst
        records = check_records(load_signal_file(path), instruments)
    except (ValueError, DataError) as exc:
        fail(str(exc))
        return
    bad = [r for r in records if r.error is not None]
    for r in bad:
        console.print(f"[red]rejected[/] {r.error}", highlight=False)
    console.print(f"{len(records) - len(bad):,} readable signal(s), {len(bad):,} rejected line(s)")
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``run-config`` and ``signals check`` to ``app``."""
    app.command("run-config")(run_config)
    app.add_typer(signals_app, name="signals")
