"""Tables and cycle lines fit the terminal: no cell cut to "…", no line past the width."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from tradepilot.app.build import RunSpec
from tradepilot.app.compare import CompareSpec, run_compare
from tradepilot.app.session import CycleRecord, run_backtest
from tradepilot.cli.report import compare_table, execution_table, register
from tradepilot.cli.run import cycle_line, summary_table
from tradepilot.cli.tables import Column, fit_table

WIDTHS = (80, 120)


def rendered(table: Table, width: int) -> str:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text()


def assert_fits(text: str, width: int) -> None:
    assert "…" not in text, text
    for line in text.splitlines():
        assert len(line) <= width, (len(line), line)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "bt.db"
    run_backtest(RunSpec(), path)
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> list:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("cmp")
    spec = CompareSpec(
        quantity="2", duration_ns=60 * 10**9, algorithms=("limit", "market", "twap"), out_dir=out
    )
    return run_compare(spec)


@pytest.mark.parametrize("width", WIDTHS)
def test_execution_table_fits(journal: Path, width: int) -> None:
    text = rendered(execution_table(journal, width=width), width)
    assert_fits(text, width)
    header = next(line for line in text.splitlines() if "algorithm" in line)
    for key in ("slip", "IS", "fill %"):  # the key numbers are always there
        assert key in header
    assert "--wide" in text  # what is left out is named


def test_execution_table_wide_shows_every_column(journal: Path) -> None:
    table = execution_table(journal, width=80, wide=True)
    assert len(table.columns) == 1 + 17
    assert len(execution_table(journal, width=80).columns) < len(table.columns)


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_table_fits(compared: list, width: int) -> None:  # type: ignore[type-arg]
    text = rendered(compare_table(compared, "buy 2 over 1m", width), width)
    assert_fits(text, width)
    for name in ("limit", "market", "twap"):
        assert f"│ {name}" in text
    assert "particip. %" in text and "slip" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_summary_table_fits(journal: Path, width: int) -> None:
    _, summary = run_backtest(RunSpec(), None)
    assert_fits(rendered(summary_table(summary, "ema_cross on btcusdt-1m-sample"), width), width)


@pytest.mark.parametrize("width", WIDTHS)
def test_report_command_fits(journal: Path, tmp_path: Path, width: int) -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        ["report", str(journal), "--out", str(tmp_path / "r.html")],
        env={"COLUMNS": str(width)},
    )
    assert result.exit_code == 0, result.output
    assert_fits(result.output, width)


def test_paper_cycle_line_fits() -> None:
    rec = CycleRecord(
        timestamp="2021-05-19T13:05:00Z",
        portfolio_value="101234.567891234",
        return_pct=1.2346,
        position="0.123450000",
        price="36871.12",
        signal="SELL",
        confidence=0.73,
        momentum_pct=-1.234,
        trades=1234,
        open_orders=0,
        extra={},
    )
    short, wide = cycle_line(rec, 80), cycle_line(rec, 200)
    assert len(short) <= 80
    assert short.startswith("2021-05-19T13:05:00Z  value 101,234.57  ret +1.235%  pos 0.12345")
    assert "px 36,871.12" in short
    assert wide.endswith("trades 1234")


def test_fit_table_keeps_the_most_telling_columns() -> None:
    cols = [
        Column[int]("minor", lambda n: "x" * 30, rank=5),
        Column[int]("key", lambda n: f"{n}", rank=0),
        Column[int]("second", lambda n: "y" * 30, rank=1),
    ]
    table = fit_table("t", "row", cols, [("a", 1), ("b", 22)], 60)
    assert [c.header for c in table.columns] == ["row", "key", "second"]
    assert "minor" in str(table.caption)
    everything = fit_table("t", "row", cols, [("a", 1)], 60, wide=True)
    assert [c.header for c in everything.columns] == ["row", "minor", "key", "second"]
