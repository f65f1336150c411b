"""End-to-end runs of the engine on real data: reference results, determinism, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradepilot.app.build import RunSpec
from tradepilot.app.session import run_backtest
from tradepilot.data.catalog import bundled
from tradepilot.data.loaders import load_bars
from tradepilot.engine.kernel import Engine
from tradepilot.model import fixed
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal, digest, read_events
from tradepilot.strategy.examples.ema_cross import EmaCross, EmaCrossParams

SHARED = Path(__file__).resolve().parents[2] / "shared"
ROOT = Path(__file__).resolve().parents[1]


def test_w1_on_real_candles_matches_the_reference() -> None:
    """W1 on the real Binance 2021 candles: 1,634 orders and fills, 98,999.29 USDT."""
    inst = Instrument.create(
        "BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001", maker_fee_bps="10", taker_fee_bps="10"
    )
    path = SHARED / "data" / "candles" / "binance_spot_btcusdt_1m_20210420_20210520.csv.gz"
    bars = load_bars(path, inst.id)
    assert len(bars) == 42_915
    engine = Engine.simulated([inst], [EmaCross(EmaCrossParams(inst.id, 10, 30))])
    engine.run(bars)
    assert len(engine.orders.orders) == 1_634
    assert engine.portfolio.fill_count == 1_634
    assert abs(fixed.to_float(engine.portfolio.equity()) - 98_999.29) <= 0.01


def test_same_input_gives_a_byte_identical_journal(tmp_path: Path) -> None:
    spec = RunSpec(
        strategy="momentum", params={"threshold_pct": "0.5"}, latency_ms=250, jitter_ms=500, seed=7
    )
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _, first = run_backtest(spec, a)
    _, second = run_backtest(spec, b)
    assert first.orders > 0
    assert digest(a) == digest(b)
    assert a.read_bytes() == b.read_bytes()
    assert first == second


def test_a_different_seed_changes_the_journal(tmp_path: Path) -> None:
    base = RunSpec(
        strategy="momentum", params={"threshold_pct": "0.5"}, latency_ms=250, jitter_ms=5000
    )
    run_backtest(base, tmp_path / "a.db")
    run_backtest(RunSpec(**{**base.__dict__, "seed": 1}), tmp_path / "b.db")
    assert digest(tmp_path / "a.db") != digest(tmp_path / "b.db")


def test_journal_holds_every_order_event_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    prepared, summary = run_backtest(RunSpec(), path)
    events = read_events(path)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "SessionStarted" and kinds[-1] == "SessionStopped"
    assert kinds.count("OrderInitialized") == summary.orders
    assert kinds.count("OrderFilled") == summary.fills
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    # the journal alone rebuilds every order exactly
    for cid, order in prepared.engine.orders.orders.items():
        mine = [e for e in events if getattr(e, "client_order_id", None) == cid]
        assert mine == [e for e in order.events]


def test_journal_replay_rebuilds_orders_and_positions() -> None:
    from tradepilot.model.events import OrderFilled, OrderInitialized
    from tradepilot.model.order import Order
    from tradepilot.model.position import Position

    ds = bundled()[0]
    inst = ds.instrument()
    journal = MemoryJournal()
    engine = Engine.simulated([inst], [EmaCross(EmaCrossParams(inst.id))], journal=journal)
    engine.run(ds.load_bars(inst.id))
    orders: dict[str, Order] = {}
    position = Position(inst.id)
    for event in journal.events():
        if isinstance(event, OrderInitialized):
            orders[event.client_order_id] = Order(event)
        elif hasattr(event, "client_order_id") and event.client_order_id in orders:
            orders[event.client_order_id].apply(event)
            if isinstance(event, OrderFilled):
                position.apply_fill(event.side, event.last_qty, event.last_px, event.fee, event.ts)
    live = engine.portfolio.positions[inst.id]
    assert (position.qty, position.cost, position.realized_pnl, position.fees) == (
        live.qty,
        live.cost,
        live.realized_pnl,
        live.fees,
    )
    assert {c: o.status for c, o in orders.items()} == {
        c: o.status for c, o in engine.orders.orders.items()
    }


def _cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRADEPILOT_HOME": str(cwd / "home"), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "tradepilot.cli", *args],
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def test_cli_backtest_on_bundled_data_trades(tmp_path: Path) -> None:
    out = _cli("backtest", "--json", "--journal", "j.db", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["fills"] > 0 and summary["orders"] > 0
    assert (tmp_path / "j.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope"], "unknown strategy"),
        (["--param", "fast=abc"], "not a valid int"),
        (["--param", "bogus=1"], "unknown parameter"),
        (["--data", "no-such-data"], "no data set"),
        (["--start", "2030-01-01"], "no data in the requested date range"),
        (["--start", "yesterday"], "not a date"),
        (["--capital", "-5"], "capital must be positive"),
    ],
)
def test_cli_rejects_bad_input_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = _cli("backtest", "--journal", "j.db", *args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr.replace("\n", " ")


def test_cli_data_list_and_import(tmp_path: Path) -> None:
    src = tmp_path / "ohlcv.csv"
    src.write_text("1620950400000,100,101,99,100.5,3\n1620950460000,100.5,102,100,101,4\n")
    out = _cli("data", "import", str(src), "--name", "mine", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listing = _cli("data", "list", cwd=tmp_path)
    assert "btcusdt-1m-sample" in listing.stdout and "mine" in listing.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("1620950400000,100,101,99,100.5,3\n1620950300000,100.5,102,100,101,4\n")
    out = _cli("data", "import", str(bad), "--name", "bad", cwd=tmp_path)
    assert out.returncode == 2 and "time order" in out.stderr


def test_paper_session_logs_cycles_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    env = {**os.environ, "TRADEPILOT_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradepilot.cli",
            "paper",
            "--speed",
            "3000",
            "--duration",
            "24h",
            "--cycle",
            "300s",
            "--log",
            "cycles.jsonl",
            "--journal",
            "paper.db",
            "--quiet",
            "--flatten-on-stop",
            "--param",
            "threshold_pct=0.3",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "cycles.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not log.exists() or len(log.read_text().splitlines()) < 20
    ):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) >= 20
    for key in (
        "timestamp",
        "portfolio_value",
        "return_pct",
        "position",
        "price",
        "signal",
        "confidence",
        "momentum_pct",
        "trades",
    ):
        assert key in records[0]
    report = json.loads((tmp_path / "cycles.report.json").read_text())
    assert report["stop_reason"] == "SIGINT"
    assert report["positions"] == {} or all(
        p["quantity"] == "0" for p in report["positions"].values()
    )
    assert "paper session (SIGINT)" in stdout
