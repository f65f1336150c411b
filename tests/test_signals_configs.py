"""The two reference configurations end to end on real data (short ranges), backtest and
paper making the same decisions, the CLI commands, and configuration errors."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from tradepilot.app.config import load_config, parse_config
from tradepilot.app.session import Session
from tradepilot.cli.signals import register

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "examples" / "configs"
CRYPTO = CONFIGS / "crypto_momentum.yaml"
EQUITY = CONFIGS / "equity_rebalancer.yaml"
SHARED = ROOT.parent / "shared" / "data" / "equities" / "lean_us_equity_minute_trade_bars.csv.gz"
NY = ZoneInfo("America/New_York")


def rows(path: Path) -> list[tuple[int, int, str, bytes]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT seq, ts, kind, payload FROM events ORDER BY seq"))


def cycle_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- crypto momentum ------------------------------------------------------------------------------
def test_crypto_momentum_runs_and_logs_the_gate_reason_of_every_hold(tmp_path: Path) -> None:
    session = Session.from_config(
        load_config(CRYPTO),
        start="2021-05-19T00:00",
        end="2021-05-19T12:00",
        log_path=tmp_path / "cycles.jsonl",
        journal_path=tmp_path / "run.db",
    )
    report = session.run()
    log = cycle_log(tmp_path / "cycles.jsonl")
    # every 5 minutes from 00:05 to 11:55 (the 12:00 cycle needs data after 12:00), and
    # the final state
    assert len(log) == 143 + 1
    holds = [r for r in log if r["signal"] == "HOLD"]
    assert holds and all(r["extra"]["reason"].startswith("HOLD: ") for r in holds)
    assert all(r["extra"].get("code") for r in holds)
    reasons = {r["extra"]["code"] for r in holds}
    assert {"WARMING_UP", "LOW_CONFIDENCE"} <= reasons
    first_real = next(r for r in log if r["confidence"] is not None)
    assert isinstance(first_real["momentum_pct"], float)
    counts = report["signals"]["crypto_momentum"]["signals"]
    assert counts["accepted"] >= 2 and counts["rejected"] == 0
    assert sum(report["holds"].values()) >= len(holds) - 1
    summary = report["summary"]
    assert summary["orders"] == counts["accepted"] and summary["denied_orders"] == 0
    kinds = {r[2] for r in rows(tmp_path / "run.db")}
    assert {"SignalReceived", "SignalHeld", "SignalAccepted", "OrderFilled"} <= kinds


def test_backtest_and_paper_make_the_same_decisions(tmp_path: Path) -> None:
    reports = {}
    for mode in ("backtest", "paper"):
        session = Session.from_config(
            load_config(CRYPTO),
            mode=mode,
            start="2021-05-19T06:00",
            duration_ns=8 * 3_600_000_000_000,
            end="2021-05-19T14:00" if mode == "backtest" else None,
            speed=1e12,
            log_path=tmp_path / f"{mode}.jsonl",
            journal_path=tmp_path / f"{mode}.db",
        )
        reports[mode] = session.run()
    back, paper = rows(tmp_path / "backtest.db"), rows(tmp_path / "paper.db")
    assert back[0][2] == paper[0][2] == "SessionStarted"
    assert back[1:] == paper[1:]  # everything but the session header (its mode differs)
    assert len(back) > 100
    assert cycle_log(tmp_path / "backtest.jsonl") == cycle_log(tmp_path / "paper.jsonl")
    assert reports["backtest"]["summary"] == reports["paper"]["summary"]


def test_two_strategies_share_the_account_by_allocation(tmp_path: Path) -> None:
    signals = tmp_path / "signals.csv"
    signals.write_text(
        "time,instrument,action,quantity,confidence\n"
        "2021-05-19T02:00:30Z,BTCUSDT,BUY,0.1,1\n"
        "2021-05-19T03:00:00Z,BTCUSDT,CLOSE,,1\n"
    )
    raw = {
        "name": "two",
        "market": "crypto",
        "account": {"currency": "USDT", "capital": "100000"},
        "data": [{"dataset": "btcusdt-1m-sample"}],
        "range": {"start": "2021-05-19T00:00", "end": "2021-05-19T04:00"},
        "strategies": [
            {"id": "mom", "kind": "momentum", "allocation": "60%", "instrument": "BTCUSDT",
             "sizing": {"method": "percent_equity", "percent": "50%"}},
            {"id": "file", "kind": "signals", "allocation": 0.4, "instrument": "BTCUSDT",
             "signals_file": str(signals),
             "gates": {"min_confidence": 0, "min_momentum_pct": 0}},
        ],
    }  # fmt: skip
    report = Session.from_config(parse_config(raw)).run()
    sig = report["signals"]
    assert sig["file"]["signals"]["accepted"] == 2
    assert sig["mom"]["signals"]["received"] == 36  # 5-minute cycles after the first hour


# -- equity rebalancer ----------------------------------------------------------------------------
def test_equity_rebalancer_sells_before_buys_in_market_hours(tmp_path: Path) -> None:
    session = Session.from_config(
        load_config(EQUITY),
        start="2013-10-07",
        end="2013-10-08",
        log_path=tmp_path / "cycles.jsonl",
        journal_path=tmp_path / "run.db",
    )
    report = session.run()
    log = cycle_log(tmp_path / "cycles.jsonl")
    times = [
        datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).astimezone(NY) for r in log
    ]
    in_hours = [t for t in times[:-1] if (9, 30) <= (t.hour, t.minute) < (16, 0)]
    assert len(in_hours) == len(times) - 1 == 78  # 09:30 .. 15:55, every 5 minutes
    reasons = [r["extra"]["reason"] for r in log]
    assert "holding: positions match targets" in reasons
    assert any(r.startswith("rebalance: sells first:") for r in reasons)
    # in the journal every rebalance's buys are sent after its sells have filled
    events = [(kind, json.loads(payload)) for _, _, kind, payload in rows(tmp_path / "run.db")]
    open_sells: set[str] = set()
    sells_seen = 0
    for kind, e in events:
        if kind == "OrderInitialized":
            if e["side"] < 0:
                open_sells.add(e["client_order_id"])
                sells_seen += 1
            else:
                assert not open_sells, "a buy was sent while sells were still open"
        elif kind in ("OrderFilled", "OrderCanceled", "OrderRejected", "OrderDenied"):
            open_sells.discard(e["client_order_id"])
    assert sells_seen >= 1
    summary = report["summary"]
    assert summary["denied_orders"] == 0 and summary["rejected_orders"] == 0
    assert report["signals"]["equity_rebalancer"]["rebalances"] >= 2
    # a cash account never goes short
    assert all(not p["quantity"].startswith("-") for p in report["positions"].values())


def test_the_equity_config_maps_its_limits_onto_the_risk_engine() -> None:
    session = Session.from_config(load_config(EQUITY), start="2013-10-07", end="2013-10-07T14:00")
    codes = {rule.code for rule in session.engine.risk.rules}
    assert {
        "MAX_POSITION_VALUE",
        "MAX_GROSS_EXPOSURE",
        "MIN_TRADE_VALUE",
        "MAX_TRADE_VALUE",
        "DAILY_LOSS_LIMIT",
        "MAX_SECTOR_EXPOSURE",
        "MAX_CORRELATED_EXPOSURE",
        "ORDER_RATE_DAY",
        "ORDER_RATE_SYMBOL_DAY",
    } <= codes


# -- the CLI --------------------------------------------------------------------------------------
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """tradepilot (test)"""

    register(app)
    return app


def test_run_config_from_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli(),
        [
            "run-config",
            str(CRYPTO),
            "--paper",
            "--speed",
            "1e12",
            "--duration",
            "3h",
            "--start",
            "2021-05-19T00:00",
            "--log",
            str(tmp_path / "c.jsonl"),
            "--journal",
            str(tmp_path / "c.db"),
            "--report",
            str(tmp_path / "c.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "HOLD: warming up" in result.output  # the paper session prints every cycle
    assert "hold: WARMING_UP" in result.output
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["mode"] == "paper" and report["cycles"] == 35 + 1


def test_bad_configs_and_signal_files_fail_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CRYPTO.read_text().replace("kelly_fraction:", "kelly_fractoin:"))
    result = CliRunner().invoke(cli(), ["run-config", str(bad)])
    assert result.exit_code == 2
    assert "unknown key 'kelly_fractoin'" in result.output
    signals = tmp_path / "s.csv"
    signals.write_text(
        "ts,instrument_id,action,confidence\n1,X,BUY,2x\n2,X,HOLD,1\n3,BTCUSDT.SIM,BUY,1\n"
    )
    result = CliRunner().invoke(cli(), ["signals", "check", str(signals)])
    assert result.exit_code == 1
    assert "line 2: confidence '2x' is not a number" in result.output
    assert "1 readable signal(s), 2 rejected line(s)" in result.output


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"data": []}, "data: give a list"),
        ({"market": "lse"}, "unknown market calendar"),
        ({"account": {"type": "FUTURES"}}, "account.type must be CASH or MARGIN"),
        ({"strategies": [{"id": "a", "kind": "momentum"}]}, "needs its instrument"),
        ({"strategies": [{"id": "a", "kind": "magic", "instrument": "X"}]}, "kind must be"),
        ({"strategies": [{"id": "a", "instrument": "BTCUSDT", "gates": {"min_confidence": 2}}]},
         "min_confidence must be in 0-1"),
        ({"strategies": [{"id": "a", "instrument": "BTCUSDT", "exits": {"max_hold": "soon"}}]},
         "not a duration"),
        ({"risk": {"max_position_pct": -5}}, None),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(patch: dict[str, Any], message: str | None) -> None:
    raw: dict[str, Any] = {
        "data": [{"dataset": "btcusdt-1m-sample"}],
        "account": {"currency": "USDT"},
        "strategies": [{"id": "a", "instrument": "BTCUSDT"}],
    }
    raw.update(patch)
    with pytest.raises(ValueError) as info:
        config = parse_config(raw)
        Session.from_config(config, end="2021-05-14T01:00")
    if message is not None:
        assert message in str(info.value)


def test_a_signal_file_replays_into_a_configured_run(tmp_path: Path) -> None:
    path = tmp_path / "extra.jsonl"
    path.write_text(
        '{"time": "2021-05-19T01:00:30Z", "instrument": "BTCUSDT", "action": "BUY",'
        ' "confidence": 0.95, "quantity": 0.01, "id": "ext-1"}\n'
    )
    session = Session.from_config(
        load_config(CRYPTO),
        start="2021-05-19T00:00",
        end="2021-05-19T02:00",
        signals_file=str(path),
    )
    report = session.run()
    pipeline = session.built.pipelines()["crypto_momentum"]
    assert "ext-1" in pipeline._seen
    assert report["signals"]["crypto_momentum"]["signals"]["received"] >= 1
    with pytest.raises(ValueError, match="--signals needs"):
        Session.from_config(load_config(EQUITY), end="2013-10-05", signals_file=str(path))


def test_percent_keys_and_fraction_keys_read_their_units() -> None:
    raw = {
        "data": [{"dataset": "btcusdt-1m-sample"}],
        "account": {"currency": "USDT"},
        "strategies": [
            {
                "id": "a",
                "instrument": "BTCUSDT",
                "gates": {"min_momentum_pct": "1.78%", "min_confidence": "60%"},
                "exits": {"stop_loss": "2%", "take_profit": 0.05, "max_hold": "24h"},
                "sizing": {"method": "kelly", "cvar_budget": "2%", "max_position": 0.5},
            }
        ],
    }
    spec = parse_config(raw).strategies[0]
    assert spec.pipeline.gates.min_momentum_pct == pytest.approx(1.78)  # percent stays percent
    assert spec.pipeline.gates.min_confidence == pytest.approx(0.6)
    assert spec.pipeline.exits.stop_loss == pytest.approx(0.02)
    assert spec.pipeline.exits.take_profit == pytest.approx(0.05)
    assert spec.pipeline.exits.max_hold_ns == 24 * 3_600_000_000_000
    assert spec.pipeline.sizing.cvar_budget == pytest.approx(0.02)
