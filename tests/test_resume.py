"""Resuming a paper session: the replay is verified against the journal, then continues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradepilot.app.build import RunSpec, build_spec_run
from tradepilot.app.session import Session, SessionOptions, SpecPlan
from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE
from tradepilot.persistence.journal import JournalError, SqliteJournal

SPEC = RunSpec(strategy="momentum", params={"threshold_pct": "0.3"})
OPTIONS = SessionOptions(
    "paper", speed=1e12, duration_ns=12 * NS_PER_HOUR, cycle_ns=5 * NS_PER_MINUTE
)


def run(tmp: Path, name: str, resume: bool = False) -> dict[str, object]:
    session = Session(
        None if resume else SpecPlan(SPEC),
        None if resume else OPTIONS,
        log_path=tmp / f"{name}.jsonl",
        journal_path=tmp / f"{name}.db",
        resume=resume,
    )
    return session.run()


def cut_journal(path: Path, keep_seq: int) -> None:
    """Simulate a crash: forget everything after ``keep_seq`` (as if never flushed)."""
    journal = SqliteJournal(path)
    conn = journal._conn  # the test reaches into the file on purpose
    conn.execute("DELETE FROM events WHERE seq > ?", (keep_seq,))
    conn.execute("DELETE FROM batches WHERE last_seq > ?", (keep_seq,))
    journal.close()


def test_resume_after_losing_the_tail_reaches_the_same_state(tmp_path: Path) -> None:
    ref = run(tmp_path, "ref")
    run(tmp_path, "cut")
    journal = SqliteJournal(tmp_path / "cut.db")
    batches = journal.batches()
    journal.close()
    cut_journal(tmp_path / "cut.db", batches[len(batches) // 2].last_seq)
    log = (tmp_path / "cut.jsonl").read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(log[: len(log) // 3]) + '\n{"torn')
    resumed = run(tmp_path, "cut", resume=True)
    assert resumed["resumed"] is True
    assert resumed["positions"] == ref["positions"]
    assert resumed["balances"] == ref["balances"]
    assert resumed["summary"] == ref["summary"]
    assert resumed["reconciliation"]["mismatches"] == []  # type: ignore[index]
    ref_log = (tmp_path / "ref.jsonl").read_text().splitlines()
    assert (tmp_path / "cut.jsonl").read_text().splitlines() == ref_log
    assert [json.loads(x)["timestamp"] for x in ref_log] == sorted(
        json.loads(x)["timestamp"] for x in ref_log
    )


def test_resume_refuses_a_journal_that_the_replay_contradicts(tmp_path: Path) -> None:
    run(tmp_path, "s")
    journal = SqliteJournal(tmp_path / "s.db")
    payload = journal._conn.execute(
        "SELECT payload FROM events WHERE kind='OrderFilled'"
    ).fetchone()
    journal._conn.execute(
        "UPDATE events SET payload = ? WHERE kind='OrderFilled' AND payload = ?",
        (bytes(payload[0]).replace(b'"fee":', b'"fee":1'), payload[0]),
    )
    journal.close()
    with pytest.raises(JournalError):
        run(tmp_path, "s", resume=True)


def test_resume_needs_a_session_journal(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no session journal"):
        run(tmp_path, "missing", resume=True)


def test_halted_after_a_restart_is_still_halted(tmp_path: Path) -> None:
    from tradepilot.app.session import CycleRecord
    from tradepilot.model.events import OrderDenied, TradingStateChanged
    from tradepilot.persistence.journal import read_events
    from tradepilot.risk.engine import TradingState

    def operator(session: Session) -> None:
        engine = session.engine

        def on_cycle(rec: CycleRecord) -> None:
            if session.cycles == 30:  # an operator halts trading from outside the engine
                engine.command(
                    lambda: engine.set_trading_state(TradingState.HALTED, "operator: halt")
                )

        session.on_cycle = on_cycle

    spec = RunSpec(strategy="momentum", params={"threshold_pct": "0.2"})
    ref = Session(
        SpecPlan(spec), OPTIONS, log_path=tmp_path / "r.jsonl", journal_path=tmp_path / "r.db"
    )
    operator(ref)
    ref_report = ref.run()
    assert ref.engine.risk.state is TradingState.HALTED
    events = read_events(tmp_path / "r.db")
    halts = [e for e in events if isinstance(e, TradingStateChanged)]
    assert [(h.state, h.source) for h in halts] == [("HALTED", "manual")]
    assert any(isinstance(e, OrderDenied) and e.code == "TRADING_HALTED" for e in events)

    crashed = Session(
        SpecPlan(spec), OPTIONS, log_path=tmp_path / "c.jsonl", journal_path=tmp_path / "c.db"
    )
    operator(crashed)
    crashed.run()
    # lose everything after the halt, as a crash right after it would
    journal = SqliteJournal(tmp_path / "c.db")
    halt_seq = next(seq for seq, _, kind, _ in journal.rows() if kind == "TradingStateChanged")
    batches = [b.last_seq for b in journal.batches()]
    journal.close()
    cut_journal(tmp_path / "c.db", min(s for s in batches if s >= halt_seq))
    resumed = Session(
        None, None, log_path=tmp_path / "c.jsonl", journal_path=tmp_path / "c.db", resume=True
    )
    report = resumed.run()
    assert resumed.engine.risk.state is TradingState.HALTED
    assert resumed.engine.risk.state_reason == "operator: halt"
    assert report["summary"] == ref_report["summary"]
    assert report["balances"] == ref_report["balances"]


def test_restore_state_from_snapshot_and_tail_seeds_a_new_engine(tmp_path: Path) -> None:
    """The live-venue restart path: projected state -> engine, ids continue, state equal."""
    from tradepilot.app.session import run_backtest
    from tradepilot.persistence import open_journal, restore

    spec = RunSpec(strategy="ema_cross")
    prepared, _ = run_backtest(spec, tmp_path / "b.db")
    original = prepared.engine
    journal = open_journal(str(tmp_path / "b.db"))
    state = restore(journal)
    journal.close()
    fresh = build_spec_run(spec).engine
    fresh.restore_state(state)
    assert {c: o.status for c, o in fresh.orders.orders.items()} == {
        c: o.status for c, o in original.orders.orders.items()
    }
    iid = prepared.instrument.id
    a, b = fresh.portfolio.positions[iid], original.portfolio.positions[iid]
    assert (a.qty, a.cost, a.realized_pnl, a.fees) == (b.qty, b.cost, b.realized_pnl, b.fees)
    assert fresh.portfolio.account.total == original.portfolio.account.total
    assert fresh.orders.next_id("ema_cross") == original.orders.next_id("ema_cross")
