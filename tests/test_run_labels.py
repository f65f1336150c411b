"""Runs say what happened: a strategy deaf to its data is warned about, a paper session
ended by its duration says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradepilot.app.build import RunSpec, data_warnings
from tradepilot.app.session import Session, SessionOptions, SpecPlan, run_backtest
from tradepilot.data import catalog
from tradepilot.strategy import registry

TRADES = Path(__file__).resolve().parents[2] / "shared" / "data" / "trades"
HOUR = 3_600_000_000_000


def test_a_bar_strategy_on_tick_data_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEPILOT_HOME", str(tmp_path))
    catalog.import_file(TRADES / "lean_spy_tick_trades_20131007.csv.gz", "spyticks", "trades")
    _, summary = run_backtest(RunSpec(dataset="spyticks", strategy="ema_cross"), None)
    assert summary.orders == 0
    (warning,) = summary.warnings
    assert "on_bar" in warning and "trade ticks" in warning and "no orders" in warning
    assert list(summary.to_dict()["warnings"]) == [warning]


def test_no_warning_when_the_strategy_hears_its_data() -> None:
    ds = catalog.find(catalog.DEFAULT_DATASET)
    strategy = registry.build("momentum", "BTCUSDT.SIM", {})
    assert data_warnings(strategy, ds) == ()
    _, summary = run_backtest(RunSpec(end="2021-05-14T06:00"), None)
    assert summary.warnings == ()


def test_a_paper_session_ended_by_its_duration_says_so(tmp_path: Path) -> None:
    session = Session(
        SpecPlan(RunSpec(strategy="momentum")),
        SessionOptions("paper", speed=1e12, duration_ns=2 * HOUR, cycle_ns=HOUR),
        log_path=tmp_path / "p.jsonl",
        journal_path=tmp_path / "p.db",
    )
    assert session.run()["stop_reason"] == "duration 2h reached"


def test_a_paper_session_that_runs_out_of_data_says_so(tmp_path: Path) -> None:
    session = Session(
        SpecPlan(RunSpec(strategy="momentum", start="2021-05-20T18:00")),
        SessionOptions("paper", speed=1e12, duration_ns=24 * HOUR, cycle_ns=HOUR),
        log_path=tmp_path / "p.jsonl",
        journal_path=tmp_path / "p.db",
    )
    assert session.run()["stop_reason"] == "end of data"
