"""Execution algorithms in the signal flow, on the real BTC/USDT bars: a signal file and a
YAML configuration route orders through TWAP and bracket (Signal -> gates -> sizer ->
algorithm -> risk -> order manager -> venue); bad names and parameters are refused with a
reason before any child is sent; a strategy's own call works a parent the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tradepilot.app.config import load_config, parse_config
from tradepilot.app.session import Session
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.execution.algo_engine import AlgoEngine
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import (
    Event,
    OrderDenied,
    OrderFilled,
    OrderInitialized,
    ParentOrderFinished,
    ParentOrderStarted,
)
from tradepilot.persistence.journal import read_events
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.signals import SignalAccepted, SignalRejected, decode

ROOT = Path(__file__).resolve().parents[1]
CRYPTO = ROOT / "examples" / "configs" / "crypto_momentum.yaml"
SIGNALS_HEADER = "time,instrument,action,quantity,stop_loss,take_profit,algo,algo_params,id\n"


def file_run(
    tmp_path: Path, lines: list[str], execution: dict[str, Any] | None = None
) -> tuple[Session, list[Event]]:
    """A signals strategy replaying ``lines`` (CSV) on 19 May 2021, 01:00-09:00."""
    path = tmp_path / "signals.csv"
    path.write_text(SIGNALS_HEADER + "".join(line + "\n" for line in lines))
    strategy: dict[str, Any] = {
        "id": "file",
        "kind": "signals",
        "instrument": "BTCUSDT",
        "signals_file": str(path),
        "gates": {"min_confidence": 0, "min_momentum_pct": 0},
    }
    if execution is not None:
        strategy["execution"] = execution
    raw = {
        "name": "algo-signals",
        "account": {"currency": "USDT", "capital": "100000", "fee_bps": "10"},
        "data": [{"dataset": "btcusdt-1m-sample"}],
        "range": {"start": "2021-05-19T01:00", "end": "2021-05-19T09:00"},
        "strategies": [strategy],
    }
    session = Session.from_config(parse_config(raw), journal_path=tmp_path / "run.db")
    session.run()
    with open_rows(tmp_path / "run.db") as events:
        return session, events


class open_rows:
    """The journal's events, signal events included (the core reader skips none)."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        with sqlite3.connect(path) as conn:
            payloads = conn.execute("SELECT payload FROM events ORDER BY seq").fetchall()
        self.events = [decode(bytes(p)) for (p,) in payloads]

    def __enter__(self) -> list[Event]:
        return self.events

    def __exit__(self, *exc: object) -> None:
        return None


def of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_a_signal_file_routes_an_order_through_twap(tmp_path: Path) -> None:
    params = json.dumps({"duration": "10m", "interval": "2m"}).replace('"', '""')
    session, events = file_run(
        tmp_path, [f'2021-05-19T01:10:30Z,BTCUSDT,BUY,0.5,,,twap,"{params}",t1']
    )
    (started,) = of(events, ParentOrderStarted)
    assert (started.algorithm, started.strategy_id) == ("twap", "file")
    assert started.quantity == fixed.to_raw("0.5") and started.side == 1
    (accepted,) = of(events, SignalAccepted)
    assert accepted.signal_id == "t1" and accepted.order_id == started.parent_id
    children = [e for e in of(events, OrderInitialized) if e.parent_id == started.parent_id]
    assert len(children) == 5  # one slice every 2 minutes for 10 minutes
    assert {c.strategy_id for c in children} == {"file"}
    assert len({c.ts for c in children}) == 5
    (finished,) = of(events, ParentOrderFinished)
    assert finished.state == "DONE" and finished.filled_qty == started.quantity
    assert sum(f.last_qty for f in of(events, OrderFilled)) == started.quantity
    assert session.engine.portfolio.position_qty("BTCUSDT.SIM") == started.quantity
    # the pipeline waited for the parent, then let the instrument trade again
    assert session.built.pipelines()["file"].in_flight() == 0


def test_a_signal_file_routes_an_order_through_a_bracket(tmp_path: Path) -> None:
    session, events = file_run(
        tmp_path, ["2021-05-19T01:10:30Z,BTCUSDT,BUY,0.5,41000,46000,bracket,,b1"]
    )
    (started,) = of(events, ParentOrderStarted)
    assert started.algorithm == "bracket"
    params = json.loads(started.params)
    assert (params["stop_loss"], params["take_profit"]) == (
        fixed.to_raw("41000"),
        fixed.to_raw("46000"),
    )
    children = [e for e in of(events, OrderInitialized) if e.parent_id == started.parent_id]
    # the entry at market, then the resting stop leg (the take-profit leg is watched)
    assert [c.tags for c in children] == ["entry", "stop_loss"]
    # the 19 May crash: the stop leg closed the position
    (finished,) = of(events, ParentOrderFinished)
    assert finished.state == "DONE"
    assert session.engine.portfolio.position_qty("BTCUSDT.SIM") == 0
    stop = next(c for c in children if c.tags == "stop_loss")
    fills = [f for f in of(events, OrderFilled) if f.client_order_id == stop.client_order_id]
    assert fills and all(f.last_px <= fixed.to_raw("41000") for f in fills)
    # the pipeline's own exit policy left the bracket's position alone
    assert not [o for o in of(events, OrderInitialized) if o.parent_id is None]


def test_a_configuration_routes_entries_through_twap_and_exits_direct(tmp_path: Path) -> None:
    execution = "    execution:\n      algo: twap\n      params: {duration: 4m, interval: 1m}\n"
    text = CRYPTO.read_text().replace("    exits:\n", execution + "    exits:\n", 1)
    path = tmp_path / "twap.yaml"
    path.write_text(text)
    session = Session.from_config(
        load_config(path),
        start="2021-05-19T00:00",
        end="2021-05-19T12:00",
        journal_path=tmp_path / "run.db",
    )
    report = session.run()
    events = read_events(str(tmp_path / "run.db"))
    parents = of(events, ParentOrderStarted)
    assert parents and {p.algorithm for p in parents} == {"twap"}
    with open_rows(tmp_path / "run.db") as all_events:
        accepted = of(all_events, SignalAccepted)
    entries = [a for a in accepted if a.intent in ("ENTRY", "ADD")]
    exits = [a for a in accepted if a.intent not in ("ENTRY", "ADD")]
    assert entries and exits
    assert {a.order_id for a in entries} == {p.parent_id for p in parents}
    direct = {o.client_order_id for o in of(events, OrderInitialized) if o.parent_id is None}
    assert {a.order_id for a in exits} <= direct  # exits are never slowed by a schedule
    children = [o for o in of(events, OrderInitialized) if o.parent_id is not None]
    assert len(children) == 4 * len(parents)
    assert not of(events, OrderDenied)
    assert report["summary"]["orders"] == len(children) + len(exits)


def test_a_configuration_routes_file_signals_through_a_bracket(tmp_path: Path) -> None:
    _, events = file_run(
        tmp_path,
        ["2021-05-19T01:10:30Z,BTCUSDT,BUY,0.2,41000,46000,,,c1"],
        execution={"algo": "bracket"},
    )
    (started,) = of(events, ParentOrderStarted)
    assert started.algorithm == "bracket" and started.strategy_id == "file"


def test_bad_algorithms_and_parameters_are_refused_before_any_child(tmp_path: Path) -> None:
    bad_params = json.dumps({"duration": "-5m"}).replace('"', '""')
    unknown_key = json.dumps({"duration": "5m", "speed": 3}).replace('"', '""')
    _, events = file_run(
        tmp_path,
        [
            "2021-05-19T01:10:30Z,BTCUSDT,BUY,0.1,,,warp,,x1",
            f'2021-05-19T01:11:30Z,BTCUSDT,BUY,0.1,,,twap,"{bad_params}",x2',
            f'2021-05-19T01:12:30Z,BTCUSDT,BUY,0.1,,,twap,"{unknown_key}",x3',
            "2021-05-19T01:13:30Z,BTCUSDT,BUY,0.1,,,bracket,,x4",  # no levels at all
            '2021-05-19T01:14:30Z,BTCUSDT,BUY,0.1,,,,"{""duration"": ""5m""}",x5',
            # levels on the right sides of each other, but the stop is above the market:
            # only the algorithm, seeing the price, can refuse it
            "2021-05-19T01:15:30Z,BTCUSDT,BUY,0.1,90000,95000,bracket,,x6",
        ],
    )
    rejected = {e.signal_id: e for e in of(events, SignalRejected)}
    assert set(rejected) == {"x1", "x2", "x3", "x4", "x5", "x6"}
    assert {e.code for e in rejected.values()} == {"BAD_ALGO"}
    assert "unknown algorithm 'warp'" in rejected["x1"].reason
    assert "duration" in rejected["x2"].reason
    assert "speed" in rejected["x3"].reason
    assert "stop_loss" in rejected["x4"].reason
    assert "need an algo" in rejected["x5"].reason
    assert "already reached" in rejected["x6"].reason
    assert not of(events, ParentOrderStarted) and not of(events, OrderInitialized)
    assert not of(events, SignalAccepted)


@pytest.mark.parametrize(
    ("execution", "message"),
    [
        ({"algo": "warp"}, r"strategies\[0\]\.execution: unknown algorithm 'warp'"),
        ({"algo": "twap", "params": {"duration": "0s"}}, r"execution: twap: duration"),
        ({"algo": "twap", "speed": 1}, r"execution: unknown key"),
    ],
)
def test_a_bad_execution_section_names_the_key(execution: dict[str, Any], message: str) -> None:
    raw = {
        "data": [{"dataset": "btcusdt-1m-sample"}],
        "account": {"currency": "USDT"},
        "strategies": [{"id": "a", "instrument": "BTCUSDT", "execution": execution}],
    }
    with pytest.raises(ValueError, match=message):
        parse_config(raw)


class _Twap(Strategy):
    strategy_id = "twapper"

    def __init__(self) -> None:
        super().__init__()
        self.parent: str | None = None
        self.error = ""

    def on_bar(self, bar: Bar) -> None:
        if self.parent is None and not self.error:
            try:
                self.execute(bar.instrument_id, 1, "0.3", "twap", {"duration": "warp"})
            except ValueError as exc:
                self.error = str(exc)
            self.parent = self.execute(bar.instrument_id, 1, "0.3", "twap", {"duration": "3m"})


def test_a_strategy_works_a_parent_through_its_own_call() -> None:
    from tradepilot.data.catalog import find

    ds = find("btcusdt-1m-sample")
    inst = ds.instrument(None)
    bars = ds.load_bars(inst.id).between(None, ds.load_bars(inst.id).start_ns + 10 * 60 * 10**9)
    strategy = _Twap()
    strategy.algos = AlgoEngine()
    config = EngineConfig(starting_balances={"USDT": "1e6"})
    engine = Engine.simulated([inst], [strategy.algos, strategy], config)
    engine.run(bars)
    assert strategy.error.startswith("twap: duration")
    assert strategy.parent == "twapper-P1"  # the refused call recorded nothing
    kids = [o for o in engine.orders.orders.values() if o.parent_id == strategy.parent]
    assert len(kids) == 3 and all(o.strategy_id == "twapper" for o in kids)
    assert engine.portfolio.position_qty(inst.id) == fixed.to_raw("0.3")
    with pytest.raises(ValueError, match="no algorithm host"):
        lone = _Twap()
        Engine.simulated([inst], [lone], EngineConfig())
        lone.execute(inst.id, 1, "1", "twap", {"duration": "1m"})
