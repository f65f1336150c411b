"""The passive maker example: quotes that keep working, moved by modify or replace, and TWAPs."""

from __future__ import annotations

from pathlib import Path

from tradepilot.app.build import RunSpec, build_spec_run
from tradepilot.core.time import NS_PER_MINUTE
from tradepilot.execution.algo_engine import AlgoEngine
from tradepilot.model.events import (
    CancelOrder,
    ModifyOrder,
    OrderInitialized,
    ParentOrderStarted,
)
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy import registry

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def test_the_maker_keeps_orders_working_and_runs_twaps() -> None:
    journal = MemoryJournal()
    spec = RunSpec(strategy="maker", end="2021-05-14T12:00:00Z")
    prepared = build_spec_run(spec, journal)
    engine = prepared.engine
    samples: list[bool] = []
    algos = engine.strategies[0]
    assert isinstance(algos, AlgoEngine)

    def sample(ts: int) -> None:
        running = any(not p.status.is_final for p in algos.parents())
        samples.append(bool(engine.orders.all_open()) or running)

    bars = list(prepared.data())
    engine.every(5 * NS_PER_MINUTE, sample, bars[0].ts + 5 * NS_PER_MINUTE)
    engine.run(bars)
    events = list(journal.events())
    assert any(isinstance(e, ParentOrderStarted) for e in events)
    assert any(isinstance(e, ModifyOrder) for e in events)
    assert any(isinstance(e, CancelOrder) for e in events)
    limits = [e for e in events if isinstance(e, OrderInitialized) and e.order_type == "LIMIT"]
    assert len(limits) > 100
    assert len(samples) > 100 and sum(samples) >= 0.75 * len(samples)


def test_maker_parameters_are_checked() -> None:
    for bad in ({"spread_bps": "0"}, {"quantity": "-1"}, {"refresh_bars": "0"}):
        try:
            registry.build("maker", "BTCUSDT.BINANCE", bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_a_paper_session_reconciles_periodically_and_a_backtest_does_not() -> None:
    spec = RunSpec(strategy="maker", end="2021-05-14T01:00:00Z")
    assert (
        build_spec_run(spec, mode="paper").engine.config.reconcile_interval_ns == 5 * NS_PER_MINUTE
    )
    assert build_spec_run(spec).engine.config.reconcile_interval_ns is None
