"""Signals: validation (bad signals are rejected with a reason and change nothing), the
queue (priority, time, expiry), the three ways in (in-process, file replay, another
thread), the signal events in the journal, determinism."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tradepilot.core.time import NS_PER_MINUTE, NS_PER_SECOND
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.enums import AccountType
from tradepilot.model.events import Event, OrderFilled, OrderInitialized
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy import signals as sig_mod
from tradepilot.strategy.gates import GateConfig
from tradepilot.strategy.pipeline import Decision, PipelineConfig, Status
from tradepilot.strategy.signal_strategy import SignalStrategy
from tradepilot.strategy.signals import (
    FileSignalSource,
    QueuedSignal,
    Signal,
    SignalAccepted,
    SignalAction,
    SignalExpired,
    SignalHeld,
    SignalQueue,
    SignalReceived,
    SignalRejected,
    load_signal_file,
)
from tradepilot.strategy.sizing import SizingConfig

MIN = NS_PER_MINUTE
T0 = 28_333_333 * MIN  # 2023-11-14T22:13:00Z, on a minute
IID = "BTCUSDT.SIM"
R = fixed.to_raw


def instrument() -> Instrument:
    return Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001")


def bars(closes: list[float], iid: str = IID, start: int = T0) -> list[Bar]:
    out = []
    prev = closes[0]
    for k, c in enumerate(closes):
        o = prev
        out.append(
            Bar(
                iid,
                start + (k + 1) * MIN,
                start + k * MIN,
                R(str(o)),
                R(str(max(o, c))),
                R(str(min(o, c))),
                R(str(c)),
                R("1"),
            )
        )
        prev = c
    return out


Action = Callable[["Scripted"], Any]


class Scripted(SignalStrategy):
    """Runs ``script[n]`` after the pipeline has seen bar ``n``; keeps what it returns."""

    def __init__(self, script: dict[int, Action], config: PipelineConfig | None = None, **kw: Any):
        super().__init__("s", config or open_config(), **kw)
        self.script = script
        self.n = -1
        self.out: list[Any] = []

    def on_bar(self, bar: Bar) -> None:
        super().on_bar(bar)
        self.n += 1
        action = self.script.get(self.n)
        if action is not None:
            self.out.append(action(self))


def open_config(**sizing: Any) -> PipelineConfig:
    """Gates that let everything through; a fixed size."""
    return PipelineConfig(
        gates=GateConfig(min_confidence=0.0, min_momentum_pct=0.0),
        sizing=SizingConfig(
            **({"method": "fixed_quantity", "quantity": "0.5", "max_position": None} | sizing)
        ),
    )


def run(
    closes: list[float], strategy: SignalStrategy, balances: dict[str, str] | None = None
) -> Engine:
    engine = Engine.simulated(
        [instrument()],
        [strategy],
        EngineConfig(
            starting_balances=balances or {"USDT": "100000"},
            base_currency="USDT",
            account_type=AccountType.CASH,
        ),
        journal=MemoryJournal(),
    )
    engine.run(bars(closes))
    return engine


def events(engine: Engine) -> list[Event]:
    journal = engine.journal
    assert isinstance(journal, MemoryJournal)
    return [sig_mod.decode(payload) for *_, payload in journal.rows]


def buy(**kw: Any) -> Signal:
    return Signal(instrument_id=IID, action=SignalAction.BUY, **kw)


# -- the happy path -------------------------------------------------------------------------------
def test_a_valid_signal_becomes_a_risk_checked_order_with_its_events_in_order() -> None:
    strat = Scripted({0: lambda s: s.pipeline.handle(buy(confidence=0.9, note="test entry"))})
    engine = run([100.0, 101.0, 102.0], strat)
    decision = strat.out[0]
    assert isinstance(decision, Decision)
    assert decision.status == Status.ACCEPTED and decision.intent == "ENTRY"
    assert decision.quantity == R("0.5") and decision.order_id == "s-1"
    kinds = [type(e).__name__ for e in events(engine)]
    i = kinds.index("SignalReceived")
    assert kinds[i : i + 4] == [
        "SignalReceived",
        "SignalAccepted",
        "OrderInitialized",
        "OrderSubmitted",
    ]
    order = engine.orders.orders["s-1"]
    assert order.tags == decision.signal_id == "s-s1"
    fill = next(e for e in events(engine) if isinstance(e, OrderFilled))
    # decided on bar 0, filled at the open of bar 1 (= bar 0's close) and stamped then
    assert fill.ts == T0 + MIN and fill.last_px == R("100")
    assert strat.pipeline.ledger.qty(IID) == R("0.5")
    accepted = next(e for e in events(engine) if isinstance(e, SignalAccepted))
    assert accepted.order_id == "s-1" and accepted.reason.startswith("test entry")


# -- rejections ---------------------------------------------------------------------------------
BAD: list[tuple[str, Callable[[int], Any], str]] = [
    ("unknown instrument", lambda now: Signal(instrument_id="ETH.SIM", action=SignalAction.BUY),
     "UNKNOWN_INSTRUMENT"),
    ("unknown action", lambda now: Signal(instrument_id=IID, action="HODL"),  # type: ignore[arg-type]
     "INVALID_ACTION"),
    ("NaN confidence", lambda now: buy(confidence=math.nan), "INVALID_VALUE"),
    ("confidence above 1", lambda now: buy(confidence=1.5), "CONFIDENCE_RANGE"),
    ("negative confidence", lambda now: buy(confidence=-0.1), "INVALID_VALUE"),
    ("negative quantity", lambda now: buy(quantity=-1.0), "INVALID_VALUE"),
    ("zero quantity", lambda now: buy(quantity=0.0), "INVALID_VALUE"),
    ("NaN price", lambda now: buy(price=math.nan), "INVALID_VALUE"),
    ("infinite stop", lambda now: buy(stop_loss=math.inf), "INVALID_VALUE"),
    ("negative risk score", lambda now: buy(risk_score=-2.0), "INVALID_VALUE"),
    ("NaN expected return", lambda now: buy(expected_return=math.nan), "INVALID_VALUE"),
    ("expired on arrival", lambda now: buy(ts=now - 10 * MIN, ttl_ns=5 * MIN), "EXPIRED"),
    ("issued in the future", lambda now: buy(ts=now + MIN), "FUTURE_TIMESTAMP"),
    ("zero ttl", lambda now: buy(ttl_ns=0), "INVALID_VALUE"),
    ("target without a target",
     lambda now: Signal(instrument_id=IID, action=SignalAction.TARGET), "INVALID_TARGET"),
    ("target weight above 1",
     lambda now: Signal(instrument_id=IID, action=SignalAction.TARGET, target_weight=1.5),
     "INVALID_TARGET"),
    ("buy carrying a target", lambda now: buy(target_weight=0.1), "INVALID_TARGET"),
    ("stop above a buy price", lambda now: buy(price=100.0, stop_loss=101.0),
     "INCONSISTENT_LEVELS"),
    ("take-profit below the stop", lambda now: buy(stop_loss=90.0, take_profit=80.0),
     "INCONSISTENT_LEVELS"),
    ("close with a quantity",
     lambda now: Signal(instrument_id=IID, action=SignalAction.CLOSE, quantity=1.0),
     "INVALID_VALUE"),
    ("not a signal", lambda now: {"instrument_id": IID, "action": "BUY"}, "MALFORMED"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "make", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_signals_are_rejected_with_a_reason_and_change_nothing(
    label: str, make: Callable[[int], Any], code: str
) -> None:
    snapshot: dict[str, Any] = {}

    def act(s: Scripted) -> Decision:
        p = s.pipeline
        journal = s.engine.journal
        assert isinstance(journal, MemoryJournal)
        snapshot.update(
            rows=len(journal.rows),
            orders=dict(s.engine.orders.orders),
            seen=set(p._seen),
            ledger=dict(p.ledger.positions),
            balances=dict(s.engine.portfolio.account.total),
        )
        decision = p.handle(make(s.now()))
        snapshot["new"] = [sig_mod.decode(r[3]) for r in journal.rows[snapshot["rows"] :]]
        snapshot["after"] = (
            dict(s.engine.orders.orders),
            set(p._seen),
            dict(p.ledger.positions),
            dict(s.engine.portfolio.account.total),
            len(p.queue),
        )
        return decision

    strat = Scripted({1: act})
    run([100.0, 100.0, 100.0], strat)
    decision = strat.out[0]
    assert decision.status == Status.REJECTED
    assert decision.code == code, decision.reason
    assert decision.reason
    new = snapshot["new"]
    assert [type(e) for e in new] == [SignalReceived, SignalRejected]
    rejected = new[1]
    assert isinstance(rejected, SignalRejected)
    assert rejected.code == code and rejected.reason == decision.reason
    assert snapshot["after"] == (
        snapshot["orders"],
        snapshot["seen"],
        snapshot["ledger"],
        snapshot["balances"],
        0,
    )
    assert strat.pipeline.rejections == {code: 1}


def test_a_duplicate_signal_id_is_rejected_and_the_first_signal_stands() -> None:
    strat = Scripted(
        {
            0: lambda s: s.pipeline.handle(buy(signal_id="alpha-1")),
            1: lambda s: s.pipeline.handle(buy(signal_id="alpha-1")),
        },
        open_config(),
    )
    engine = run([100.0, 100.0, 100.0], strat)
    first, second = strat.out
    assert first.status == Status.ACCEPTED
    assert second.status == Status.REJECTED and second.code == "DUPLICATE_ID"
    assert len(engine.orders.orders) == 1


def test_a_valid_signal_held_by_a_gate_is_an_event_with_its_reason() -> None:
    config = PipelineConfig(gates=GateConfig(min_confidence=0.6, min_momentum_pct=0.0))
    strat = Scripted({0: lambda s: s.pipeline.handle(buy(confidence=0.42))}, config)
    engine = run([100.0, 100.0], strat)
    decision = strat.out[0]
    assert decision.status == Status.HELD and decision.code == "LOW_CONFIDENCE"
    assert decision.reason == "confidence 0.42 < 0.60"
    held = [e for e in events(engine) if isinstance(e, SignalHeld)]
    assert [(h.code, h.reason) for h in held] == [("LOW_CONFIDENCE", "confidence 0.42 < 0.60")]
    assert not engine.orders.orders
    assert strat.status()["reason"] == "HOLD: confidence 0.42 < 0.60"
    assert strat.pipeline.holds.to_dict() == {"LOW_CONFIDENCE": 1}


# -- the queue ----------------------------------------------------------------------------------
def test_the_queue_orders_by_priority_then_time_then_arrival() -> None:
    q = SignalQueue()
    items = [
        ("a", 0, 50),
        ("b", 1, 90),
        ("c", 0, 30),
        ("d", 1, 90),
        ("e", 5, 100),
    ]
    for sid, prio, ts in items:
        q.push(QueuedSignal(buy(signal_id=sid, priority=prio, ts=ts), "t", ts, None))
    assert [item.signal.signal_id for item in q] == ["e", "b", "d", "c", "a"]
    assert [q.pop().signal.signal_id for _ in range(len(q))] == ["e", "b", "d", "c", "a"]


def test_a_signal_waits_while_its_instrument_has_an_order_in_flight() -> None:
    close = Signal(instrument_id=IID, action=SignalAction.CLOSE, ttl_ns=5 * MIN)
    strat = Scripted(
        {0: lambda s: [s.pipeline.handle(buy()), s.pipeline.handle(close)]},
        open_config(),
    )
    engine = run([100.0, 101.0, 102.0, 103.0], strat)
    entry, waiting = strat.out[0]
    assert entry.status == Status.ACCEPTED and waiting.status == Status.QUEUED
    sides = [(o.side, o.reduce_only, o.ts_init) for o in engine.orders.orders.values()]
    # the close waited for the entry's fill (bar 1), then went out at bar 1's close
    assert sides == [(1, False, T0 + MIN), (-1, True, T0 + 2 * MIN)]
    assert strat.pipeline.ledger.qty(IID) == 0


def test_a_queued_signal_that_outlives_its_ttl_is_dropped_with_an_event() -> None:
    close = Signal(instrument_id=IID, action=SignalAction.CLOSE, ttl_ns=30 * NS_PER_SECOND)
    strat = Scripted(
        {0: lambda s: [s.pipeline.handle(buy()), s.pipeline.handle(close)]},
        open_config(),
    )
    engine = run([100.0, 101.0, 102.0], strat)
    expired = [e for e in events(engine) if isinstance(e, SignalExpired)]
    assert len(expired) == 1
    assert expired[0].expired_ts == T0 + MIN + 30 * NS_PER_SECOND
    assert expired[0].ts == T0 + 2 * MIN
    assert len(engine.orders.orders) == 1  # only the entry
    assert strat.pipeline.counts["expired"] == 1


# -- sources ------------------------------------------------------------------------------------
def test_a_csv_file_is_replayed_when_the_engine_clock_reaches_each_signal(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    t1, t2, t3 = T0 + 2 * MIN + 30 * NS_PER_SECOND, T0 + 5 * MIN, T0 + 7 * MIN
    path.write_text(
        "ts,instrument_id,action,confidence,quantity,signal_id,priority\n"
        f"{t2},BTCUSDT.SIM,CLOSE,1.0,,close-1,5\n"
        f"{t1},BTCUSDT.SIM,BUY,0.9,0.25,buy-1,0\n"
        f"{t3},BTCUSDT.SIM,BUY,abc,0.25,bad-1,0\n"
        f"{t3},ETHUSDT.SIM,BUY,0.9,0.25,eth-1,0\n"
    )
    strat = Scripted({}, open_config(), sources=[FileSignalSource(path)])
    engine = run([100.0 + k for k in range(10)], strat)
    evs = events(engine)
    received = [(e.ts, e.signal_id, e.source) for e in evs if isinstance(e, SignalReceived)]
    assert received[:2] == [(t1, "buy-1", "file:signals.csv"), (t2, "close-1", "file:signals.csv")]
    rejected = {e.code: e.reason for e in evs if isinstance(e, SignalRejected)}
    assert rejected["MALFORMED"] == "line 4: confidence 'abc' is not a number"
    assert "ETHUSDT.SIM" in rejected["UNKNOWN_INSTRUMENT"]
    orders = list(engine.orders.orders.values())
    assert [(o.side, o.quantity, o.tags) for o in orders] == [
        (1, R("0.25"), "buy-1"),
        (-1, R("0.25"), "close-1"),
    ]
    assert orders[0].ts_init == t1  # emitted at its own time, between bars


def test_a_json_lines_file_with_iso_times_ttl_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    lines = [
        {"time": "2023-11-14T22:15:00Z", "instrument": IID, "action": "buy", "quantity": 0.1},
        {"ts_ms": (T0 + 3 * MIN) // 1_000_000, "instrument_id": IID, "action": "CLOSE",
         "ttl": "1m", "id": "c1"},
        {"ts": T0, "instrument_id": IID, "action": "BUY", "stoploss": 90},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    records = load_signal_file(path)
    errors = sorted(r.error for r in records if r.error)
    assert errors[0].startswith("line 3: unknown field(s) stoploss")
    assert errors[1].startswith("line 4: malformed JSON")
    good = [r.signal for r in records if r.signal is not None]
    assert [s.action for s in good] == [SignalAction.BUY, SignalAction.CLOSE]
    assert good[0].ts == T0 + 2 * MIN and good[1].ttl_ns == MIN and good[1].signal_id == "c1"
    strat = Scripted({}, open_config(), sources=[FileSignalSource(path)])
    engine = run([100.0 + k for k in range(6)], strat)
    assert [o.side for o in engine.orders.orders.values()] == [1, -1]
    assert strat.pipeline.rejections == {"MALFORMED": 2}


def test_signal_files_that_cannot_be_used_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such signal file"):
        load_signal_file(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,instrument_id,action,stoploss\n1,X,BUY,3\n")
    with pytest.raises(ValueError, match="unknown column"):
        load_signal_file(bad)


def test_a_signal_posted_from_another_thread_is_processed_on_the_next_bar() -> None:
    def post(s: Scripted) -> None:
        worker = threading.Thread(
            target=lambda: s.pipeline.post(buy(signal_id="api-1"), source="api")
        )
        worker.start()
        worker.join()

    strat = Scripted({1: post}, open_config())
    engine = run([100.0, 100.0, 100.0, 100.0], strat)
    received = [e for e in events(engine) if isinstance(e, SignalReceived)]
    assert [(e.signal_id, e.source, e.ts) for e in received] == [("api-1", "api", T0 + 3 * MIN)]
    assert [o.tags for o in engine.orders.orders.values()] == ["api-1"]


def test_a_plain_call_returns_the_decision() -> None:
    got: list[Decision] = []
    strat = Scripted({0: lambda s: got.append(s.pipeline.submit(buy(), source="api"))})
    engine = run([100.0, 100.0, 100.0], strat)
    assert got[0].status == Status.QUEUED
    assert [o.tags for o in engine.orders.orders.values()] == [got[0].signal_id]


# -- events and determinism -----------------------------------------------------------------------
def test_signal_events_encode_and_decode_with_the_core_events() -> None:
    samples: list[Event] = [
        SignalReceived(1, "a", "s", IID, "BUY", "file", "{}"),
        SignalRejected(2, "a", "s", IID, "EXPIRED", "too late", "api"),
        SignalExpired(3, "a", "s", IID, 2),
        SignalHeld(4, "a", "s", IID, "LOW_CONFIDENCE", "confidence 0.10 < 0.60"),
        SignalAccepted(5, "a", "s", IID, "s-1", 1, 5, "ENTRY", "why"),
        OrderInitialized(6, "s-1", IID, "s", 1, "MARKET", 5),
    ]
    from tradepilot.model.events import encode

    for event in samples:
        assert sig_mod.decode(encode(event)) == event
    assert json.loads(encode(samples[0]))["type"] == "SignalReceived"


def test_the_same_signals_give_the_same_journal() -> None:
    def script() -> dict[int, Action]:
        return {
            0: lambda s: s.pipeline.handle(buy(confidence=0.9)),
            2: lambda s: s.pipeline.handle(buy(confidence=0.1)),
            3: lambda s: s.pipeline.handle(
                Signal(instrument_id=IID, action=SignalAction.CLOSE, note="done")
            ),
        }

    rows = []
    for _ in range(2):
        strat = Scripted(script(), PipelineConfig(gates=GateConfig(min_momentum_pct=0.0)))
        engine = run([100.0, 101.0, 102.0, 103.0, 104.0], strat)
        journal = engine.journal
        assert isinstance(journal, MemoryJournal)
        rows.append(journal.rows)
    assert rows[0] == rows[1]
    kinds = [r[2] for r in rows[0]]
    assert kinds.count("SignalReceived") == 3 and kinds.count("SignalHeld") == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: Signal(instrument_id=["BTCUSDT.SIM"], action=SignalAction.BUY),  # type: ignore[arg-type]
        lambda: Signal(instrument_id=IID, action=SignalAction.BUY, signal_id=7),  # type: ignore[arg-type]
        lambda: Signal(instrument_id=IID, action=SignalAction.BUY, confidence=object()),  # type: ignore[arg-type]
        lambda: Signal(instrument_id=IID, action=SignalAction.BUY, ts="now"),  # type: ignore[arg-type]
        lambda: Signal(instrument_id=IID, action=SignalAction.BUY, priority=1.5),  # type: ignore[arg-type]
    ],
)
def test_wrongly_typed_fields_are_rejected_not_raised(make: Callable[[], Signal]) -> None:
    strat = Scripted({0: lambda s: s.pipeline.handle(make())})
    engine = run([100.0, 100.0], strat)
    assert strat.out[0].status == Status.REJECTED
    assert strat.out[0].code in ("MALFORMED", "INVALID_VALUE")
    assert not engine.orders.orders
