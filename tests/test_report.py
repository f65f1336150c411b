"""The HTML report and the ``report`` command, on backtest and paper journals."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from tradepilot.analytics.execution import analyze_journal
from tradepilot.analytics.market import load_market, market_from_run_config
from tradepilot.analytics.report import CHART_IDS, equity_curve, starting_cash, write_report
from tradepilot.app.build import RunSpec
from tradepilot.app.session import Session, SessionOptions, SpecPlan, run_backtest
from tradepilot.cli.report import execution_table, register
from tradepilot.model import fixed
from tradepilot.model.events import OrderFilled, SessionStarted
from tradepilot.persistence.journal import read_events

NS_PER_HOUR = 3_600_000_000_000


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.script_srcs: list[str] = []
        self.div_ids: set[str] = set()
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.script_srcs.append(a["src"] or "")
        if tag == "div" and a.get("id"):
            self.div_ids.add(a["id"] or "")
        if tag == "table":
            self.tables += 1


def check_self_contained(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(text)
    assert tags.script_srcs == []  # nothing loaded from outside: no CDN, no https:// src
    assert not re.search(r"<script[^>]*\bsrc\s*=", text)
    assert "plotly.js v" in text  # the library itself is inline
    assert text.count("Plotly.newPlot(") == len(CHART_IDS)
    assert set(CHART_IDS) <= tags.div_ids
    assert tags.tables >= 4
    return text


@pytest.fixture(scope="module")
def backtest_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bt") / "backtest.db"
    run_backtest(RunSpec(), path)
    return path


@pytest.fixture(scope="module")
def paper_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("paper")
    session = Session(
        SpecPlan(RunSpec(strategy="momentum")),
        SessionOptions("paper", speed=1e12, duration_ns=24 * NS_PER_HOUR, cycle_ns=NS_PER_HOUR),
        log_path=folder / "paper.jsonl",
        journal_path=folder / "paper.db",
    )
    session.run()
    return folder / "paper.db"


def test_backtest_report_is_self_contained(backtest_journal: Path, tmp_path: Path) -> None:
    out = write_report(backtest_journal, tmp_path / "bt.html")
    text = check_self_contained(out)
    assert "direct" in text and "ema_cross" in text


def test_backtest_report_with_market_data(backtest_journal: Path, tmp_path: Path) -> None:
    market = load_market("btcusdt-1m-sample")
    out = write_report(backtest_journal, tmp_path / "bt.html", market)
    text = check_self_contained(out)
    assert "prices + trades" in text


def test_paper_report_is_self_contained(paper_journal: Path, tmp_path: Path) -> None:
    events = read_events(paper_journal)
    assert isinstance(events[0], SessionStarted) and events[0].mode == "paper"
    assert any(isinstance(e, OrderFilled) for e in events)
    assert starting_cash(events) == 100_000.0
    out = write_report(paper_journal, tmp_path / "paper.html")
    check_self_contained(out)
    market = market_from_run_config(events[0].mode, events[0].config)
    assert market is not None and market.source == "btcusdt-1m-sample"
    check_self_contained(write_report(paper_journal, tmp_path / "paper_m.html", market))


def test_rebuilt_equity_matches_the_engine(tmp_path: Path) -> None:
    prepared, summary = run_backtest(RunSpec(), tmp_path / "bt.db")
    curve = equity_curve(read_events(tmp_path / "bt.db"))
    assert curve.equity[0] == 100_000.0
    assert curve.equity[-1] == pytest.approx(fixed.to_float(prepared.engine.portfolio.equity()))
    assert float(summary.end_equity) == pytest.approx(curve.equity[-1])


def test_journal_without_fills(tmp_path: Path) -> None:
    journal = tmp_path / "quiet.db"
    run_backtest(RunSpec(strategy="ema_cross", end="2021-05-14T00:30"), journal)
    out = write_report(journal, tmp_path / "quiet.html")
    check_self_contained(out)


def test_execution_table_from_engine_and_journal(backtest_journal: Path, tmp_path: Path) -> None:
    prepared, _ = run_backtest(RunSpec(), tmp_path / "again.db")
    from_engine = analyze_journal(tmp_path / "again.db")
    table = execution_table(prepared.engine)
    assert table.row_count == 1
    console = Console(record=True, width=250)
    console.print(table)
    console.print(execution_table(backtest_journal))
    text = console.export_text()
    assert text.count("│ direct") == 2
    assert f"{from_engine.total.parents:,}" in text


def test_report_command(backtest_journal: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(app, ["report", str(backtest_journal), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    check_self_contained(out)
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope.db")])
    assert missing.exit_code == 2
