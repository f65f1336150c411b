"""One id registry: a session restored from its journal never hands out an id the journal
already holds - orders, parent orders of execution algorithms, or their children.

Real data: the bundled one-minute BTC/USDT candles.
"""

from __future__ import annotations

from test_algos import BALANCES, BARS_INST, BUY, Driver, assert_done, bundled_bars, run, submit
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.execution.algo_engine import AlgoEngine
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import OrderInitialized, ParentOrderStarted
from tradepilot.model.ids import IdRegistry
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.persistence.projection import StateProjection

__all__ = ["bundled_bars"]  # the module fixture, shared with test_algos


def buy_direct(driver: Driver) -> object:
    return driver.buy(BARS_INST.id, "0.1")


def _ids(events: list[object]) -> set[str]:
    out: set[str] = set()
    for e in events:
        if isinstance(e, OrderInitialized):
            out.add(e.client_order_id)
        elif isinstance(e, ParentOrderStarted):
            out.add(e.parent_id)
    return out


def test_a_parent_order_after_restoring_a_finished_twap_gets_a_new_id(
    bundled_bars: list[Bar],
) -> None:
    bars = bundled_bars[:20]
    first = run(
        bars[:8],
        [
            submit(0, BUY, "2", "twap", {"duration": "5m"}),
            (1, lambda d: d.buy(BARS_INST.id, "0.1")),
        ],
        BARS_INST,
    )
    assert_done(first)
    journaled = first.events()
    projection = StateProjection(
        [BARS_INST], "USDT", {ccy: fixed.to_raw(v) for ccy, v in BALANCES.items()}
    )
    for seq, event in enumerate(journaled, 1):
        projection.apply(seq, event)
    assert projection.next_parent_id("drv") == "drv-P2"

    algos = AlgoEngine(isolate_errors=False)
    driver = Driver(
        algos,
        BARS_INST.id,
        [
            submit(0, BUY, "1", "twap", {"duration": "3m"}),
            (1, lambda d: d.buy(BARS_INST.id, "0.1")),
        ],
    )
    journal = MemoryJournal()
    # a new simulated venue numbers its trades from 1 again: its own name keeps its trade
    # ids apart from the restored ones (a fill already booked is dropped as a duplicate)
    config = EngineConfig(starting_balances=BALANCES, venue="SIM2")
    engine = Engine.simulated([BARS_INST], [algos, driver], config, journal=journal)
    engine.restore_state(projection)
    engine.run(bars[8:])

    assert driver.pids == ["drv-P2"]
    view = algos.parent("drv-P2")
    assert view.children[0] == "drv-P2-c1" and view.filled_qty == fixed.to_raw("1")
    new_ids = _ids(journal.events())
    assert "drv-P2" in new_ids and "drv-2" in new_ids
    assert not new_ids & _ids(journaled), "an id of the restored journal was handed out again"


def test_the_registry_continues_after_restored_and_observed_ids() -> None:
    ids = IdRegistry()
    for seen in ("s-3", "s-1", "algo-P2", "algo-P2-c7", "algo-P2-c2", "odd-id-x", "-5", "P-c"):
        ids.observe(seen)
    assert ids.next_order_id("s") == "s-4"
    assert ids.next_parent_id("algo") == "algo-P3"
    assert ids.next_child_id("algo-P2") == "algo-P2-c8"
    restored = IdRegistry()
    restored.restore({"s": 2}, {"algo-P2": 1}, {"algo": 9})  # lower counters never win
    restored.restore_from(ids)
    assert restored.orders == {"s": 4, "": 5} and restored.parents == {"algo": 9}
    assert restored.next_child_id("algo-P2") == "algo-P2-c9"
