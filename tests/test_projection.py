"""The state projection: a fold over the journal equals the engine's own end state.

Also holds the scenario used by ``test_snapshots.py`` and ``test_queries.py``: an
engine run on seeded trade ticks by a strategy that uses every order path
(market, resting limits with partial fills, stops, IOC, post-only rejects,
cancels, modifies, denials, parent orders with child orders) with venue latency,
so orders are pending, partially filled and open at arbitrary points.
"""

from __future__ import annotations

import functools
import gc
import json
import random
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from tradepilot.app.build import RunSpec
from tradepilot.app.reconcile import reconcile
from tradepilot.app.session import run_backtest
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import TradeTick
from tradepilot.model.enums import AccountType, OrderSide, OrderStatus, OrderType, TimeInForce
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderFilled,
    OrderInitialized,
    OrderSubmitted,
    ParentOrderFinished,
    ParentOrderProgress,
    ParentOrderStarted,
    SessionStarted,
    encode,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.persistence import (
    Journal,
    JournalError,
    MemoryJournal,
    PersistentJournal,
    SqliteJournal,
    StateProjection,
    open_journal,
)
from tradepilot.persistence.projection import session_setup
from tradepilot.risk.engine import TradingState
from tradepilot.strategy.base import Strategy

IID = "BTCUSDT.SIM"
T0 = 1_704_153_600_000_000_000  # 2024-01-02 00:00 UTC
MS = 1_000_000


def instrument() -> Instrument:
    return Instrument.create(
        "BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001", maker_fee_bps="2", taker_fee_bps="5"
    )


def ticks(n: int, seed: int = 7) -> list[TradeTick]:
    """A seeded random walk of trades around 42,000 with random sizes."""
    rng = random.Random(seed)
    px = 42_000 * fixed.SCALE
    out = []
    for i in range(n):
        px = max(fixed.SCALE, px + rng.randint(-25, 25) * fixed.SCALE // 100)
        size = rng.randint(1, 80) * fixed.SCALE // 1000
        out.append(TradeTick(IID, T0 + i * 250 * MS, px, size, rng.choice((-1, 1))))
    return out


class Busy(Strategy):
    """Does a bit of everything, deterministically (seeded)."""

    def __init__(self, strategy_id: str = "busy", seed: int = 1, parents: bool = True) -> None:
        super().__init__(strategy_id)
        self.rng = random.Random(seed)
        self.parents = parents
        self.parent_n = 0
        self.step = 0
        self.want_reconcile = False

    def _mine(self) -> list[Order]:
        return [o for o in self.open_orders(IID) if o.status is not OrderStatus.PENDING_CANCEL]

    def operate(self) -> None:
        """What an operator and a restart do: trading-state changes, unknown outcomes,
        reconciliation (the parent-order strategy only)."""
        engine = self.engine
        step = self.step = self.step + 1
        now = self.now()
        if step == 600:
            halt = TradingState.HALTED
            engine.command(lambda: engine.set_trading_state(halt, "pause", now + 20 * 10**9))
        elif step == 1200:
            engine.command(lambda: engine.set_trading_state(TradingState.REDUCING, "reduce"))
        elif step == 1300:
            engine.command(lambda: engine.set_trading_state(TradingState.ACTIVE, "go"))
        elif step % 400 == 200:
            resting = [
                o
                for o in self.open_orders(IID)
                if o.order_type is OrderType.LIMIT and o.status is OrderStatus.ACCEPTED
            ]
            if resting:
                engine.orders.mark_unknown(resting[0].client_order_id, "request timed out")
        elif step % 400 == 210:
            self.want_reconcile = True
        if self.want_reconcile:
            engine.command(self._reconcile)

    def _reconcile(self) -> None:
        """Reconcile at an item boundary where no request is on its way to the venue
        (reconciling then would call a request still in flight lost)."""
        in_flight = (OrderStatus.SUBMITTED, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_UPDATE)
        if self.want_reconcile and all(
            o.status not in in_flight for o in self.engine.orders.all_open()
        ):
            self.want_reconcile = False
            reconcile(self.engine)

    def on_trade(self, tick: TradeTick) -> None:
        if self.parents:
            self.operate()
        rng = self.rng
        r = rng.random()
        px = fixed.to_decimal(tick.price)
        held = self.position_qty(IID)
        qty = f"0.0{rng.randint(1, 9)}"
        if r < 0.12:
            self.buy(IID, qty)
        elif r < 0.20 and held > 0:
            self.sell(IID, fixed.to_decimal(min(held, fixed.to_raw(qty))))
        elif r < 0.38:
            below = px - rng.randint(1, 40) * fixed.to_decimal(fixed.SCALE // 100)
            self.buy(IID, qty, order_type=OrderType.LIMIT, price=below)
        elif r < 0.46 and held > fixed.to_raw("0.1"):
            above = px + rng.randint(1, 40) * fixed.to_decimal(fixed.SCALE // 100)
            self.sell(IID, qty, order_type=OrderType.LIMIT, price=above)
        elif r < 0.56 and self._mine():
            self.cancel(rng.choice(self._mine()).client_order_id)
        elif r < 0.62:
            working = [o for o in self._mine() if o.price is not None]
            if working:
                order = rng.choice(working)
                step = fixed.to_decimal(rng.choice((-3, 3)) * fixed.SCALE // 100)
                self.modify(order.client_order_id, price=fixed.to_decimal(order.price or 0) + step)
        elif r < 0.65:
            self.buy(IID, "0.0001")  # below the lot size: denied
        elif r < 0.68:
            trigger = px + rng.randint(5, 30) * fixed.to_decimal(fixed.SCALE // 100)
            self.buy(IID, qty, order_type=OrderType.STOP_MARKET, trigger_price=trigger)
        elif r < 0.70:
            self.buy(IID, qty, order_type=OrderType.LIMIT, price=px, time_in_force=TimeInForce.IOC)
        elif r < 0.71:
            above = px + fixed.to_decimal(fixed.SCALE)
            self.buy(IID, qty, order_type=OrderType.LIMIT, price=above, post_only=True)
        elif r < 0.72:
            self.cancel(f"{self.strategy_id}-999999")  # not an order: a cancel reject
        elif r < 0.73 and self.parents:
            self._parent(tick)

    def _parent(self, tick: TradeTick) -> None:
        """An execution-algorithm parent with two child market orders, journaled as such."""
        engine = self.engine
        self.parent_n += 1
        parent = f"{self.strategy_id}-twap{self.parent_n}"
        now = self.now()
        qty = fixed.to_raw("0.004")
        engine.journal.append(
            ParentOrderStarted(
                now, parent, IID, self.strategy_id, 1, 2 * qty, "TWAP", '{"slices":2}', tick.price
            )
        )
        for k in (1, 2):
            self.submit_raw(
                OrderInitialized(
                    now,
                    f"{parent}-c{k}",
                    IID,
                    self.strategy_id,
                    int(OrderSide.BUY),
                    OrderType.MARKET.value,
                    qty,
                    parent_id=parent,
                )
            )
            engine.journal.append(ParentOrderProgress(now, parent, 0, 2 * qty, None))
        if self.parent_n % 2:
            engine.journal.append(ParentOrderFinished(now, parent, "DONE", 0, None))


@dataclass
class Run:
    engine: Engine
    instrument: Instrument
    events: list[Event]
    balances: dict[str, int]
    account_type: AccountType

    def projection(self) -> StateProjection:
        return StateProjection([self.instrument], "USDT", self.balances, self.account_type)

    def write(self, journal: PersistentJournal, flush_every: int = 250) -> None:
        for i, event in enumerate(self.events, 1):
            journal.append(event)
            if i % flush_every == 0:
                journal.flush()
        journal.flush()


def run_scenario(
    n_ticks: int = 2_500,
    journal: Journal | None = None,
    account_type: AccountType = AccountType.CASH,
    seed: int = 1,
) -> Run:
    """Run the engine on the scenario; ``journal`` defaults to a :class:`MemoryJournal`."""
    inst = instrument()
    balances = {"USDT": "250000", "BTC": "2"}
    memory = MemoryJournal()
    engine = Engine.simulated(
        [inst],
        [Busy("busy", seed), Busy("other", seed + 1, parents=False)],
        EngineConfig(
            starting_balances=balances,
            account_type=account_type,
            latency_ns=120 * MS,
            latency_jitter_ns=400 * MS,
            seed=seed,
        ),
        journal=journal or memory,
    )
    engine.run(ticks(n_ticks, seed + 6), config_json='{"scenario": "busy"}')
    return Run(
        engine,
        inst,
        memory.events(),
        {ccy: fixed.to_raw(v) for ccy, v in balances.items()},
        account_type,
    )


@functools.cache
def default_scenario() -> Run:
    """The scenario, run once per test session (shared by the persistence tests)."""
    return run_scenario()


@pytest.fixture
def scenario() -> Run:
    return default_scenario()


def fold(events: Sequence[Event], projection: StateProjection, start_seq: int = 1) -> None:
    for seq, event in enumerate(events, start_seq):
        projection.apply(seq, event)


# -- comparing with the engine ---------------------------------------------------------------
def order_state(order: Order) -> tuple[object, ...]:
    return (
        order.client_order_id,
        order.status,
        order.status_before_pending,
        order.filled_qty,
        order.filled_notional,
        order.fees,
        order.venue_order_id,
        order.quantity,
        order.price,
        order.trigger_price,
        order.triggered,
        order.ts_init,
        order.ts_last,
        order.side,
        order.order_type,
        order.time_in_force,
        order.parent_id,
        order.events[0],
    )


def assert_matches_engine(proj: StateProjection, engine: Engine) -> None:
    engine_orders = engine.orders.orders
    assert list(proj.orders) == list(engine_orders)
    for cid, order in engine_orders.items():
        assert order_state(proj.orders[cid]) == order_state(order), cid
    assert set(proj.open_orders) == {o.client_order_id for o in engine.orders.all_open()}
    assert set(proj.closed_orders) == {c for c, o in engine_orders.items() if o.is_closed}
    pf = engine.portfolio
    assert set(proj.positions) == set(pf.positions)
    for iid, pos in pf.positions.items():
        mine = proj.positions[iid]
        assert (mine.qty, mine.cost, mine.realized_pnl, mine.fees) == (
            pos.qty,
            pos.cost,
            pos.realized_pnl,
            pos.fees,
        )
        assert (mine.trade_count, mine.opened_ts, mine.last_px, mine.ts_last) == (
            pos.trade_count,
            pos.opened_ts,
            pos.last_px,
            pos.ts_last,
        )
    assert proj.account.total == pf.account.total
    assert proj.account.account_type is pf.account.account_type
    assert (proj.fill_count, proj.total_fees, proj.traded_notional) == (
        pf.fill_count,
        pf.total_fees,
        pf.traded_notional,
    )
    assert proj.id_counters == engine.orders.ids.orders
    for prefix in engine.orders.ids.orders:
        assert proj.next_client_order_id(prefix) == engine.orders.ids.peek_order_id(prefix)
    if all(o.price is not None or o.trigger_price is not None for o in proj.open_orders.values()):
        for ccy in pf.account.total:
            assert proj.locked(ccy) == pf.locked(ccy), ccy


# -- tests -------------------------------------------------------------------------------------
def test_the_scenario_covers_every_order_path(scenario: Run) -> None:
    kinds = {type(e).__name__ for e in scenario.events}
    assert {
        "OrderDenied",
        "OrderRejected",
        "OrderCanceled",
        "OrderUpdated",
        "OrderTriggered",
        "OrderCancelRejected",
        "OrderPendingCancel",
        "OrderPendingUpdate",
        "ParentOrderStarted",
        "ParentOrderFinished",
        "CancelOrder",
        "ModifyOrder",
        "TradingStateChanged",
        "OrderStatusUnknown",
        "ReconciliationCompleted",
    } <= kinds
    statuses = {o.status for o in scenario.engine.orders.orders.values()}
    assert {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.DENIED} <= statuses
    partial = [o for o in scenario.engine.orders.orders.values() if 0 < o.filled_qty < o.quantity]
    assert partial, "no partially filled order"
    assert scenario.engine.orders.all_open(), "no order left open at the end"


def test_fold_of_the_journal_equals_the_engine(scenario: Run) -> None:
    proj = scenario.projection()
    fold(scenario.events, proj)
    assert_matches_engine(proj, scenario.engine)
    assert proj.last_seq == len(scenario.events)
    assert proj.last_ts == scenario.events[-1].ts
    assert proj.anomalies == {} and proj.unknown_kinds == {}
    assert proj.events_applied == len(scenario.events)
    assert sum(proj.kind_counts.values()) == len(scenario.events)
    fills = [e for e in scenario.events if isinstance(e, OrderFilled)]
    assert [(f.client_order_id, f.trade_id, f.last_qty, f.last_px, f.fee) for f in fills] == [
        (f.client_order_id, f.trade_id, f.qty, f.px, f.fee) for f in proj.fills
    ]
    seqs = [seq for seq, e in enumerate(scenario.events, 1) if isinstance(e, OrderFilled)]
    assert [f.seq for f in proj.fills] == seqs


def test_projection_from_a_real_backtest_journal(tmp_path: Path) -> None:
    spec = RunSpec(
        strategy="momentum", params={"threshold_pct": "0.3"}, latency_ms=250, jitter_ms=500
    )
    prepared, summary = run_backtest(spec, tmp_path / "bt.db")
    with open_journal(tmp_path / "bt.db") as journal:
        proj = StateProjection.from_journal(journal)  # setup from the SessionStarted config
    assert_matches_engine(proj, prepared.engine)
    assert len(proj.orders) == summary.orders and proj.fill_count == summary.fills
    assert proj.session is not None and proj.session.mode == "backtest"
    assert json.loads(proj.session.config)["strategy"] == "momentum"
    assert proj.session.stop_reason == "end of data"


def test_projection_of_the_default_backtest(tmp_path: Path) -> None:
    prepared, _ = run_backtest(RunSpec(), tmp_path / "bt.db")
    with open_journal(tmp_path / "bt.db") as journal:
        proj = StateProjection.from_journal(journal)
    assert_matches_engine(proj, prepared.engine)
    inst = prepared.instrument
    assert proj.instruments == {inst.id: inst}
    assert proj.starting_balances == {"USDT": fixed.to_raw("100000")}


def test_projection_written_by_the_engine_to_a_sqlite_journal(tmp_path: Path) -> None:
    with SqliteJournal(tmp_path / "j.db") as journal:
        run = run_scenario(1_200, journal=journal)
    with open_journal(tmp_path / "j.db") as journal:
        proj = StateProjection.from_journal(journal, [run.instrument], "USDT", run.balances)
    assert_matches_engine(proj, run.engine)


def test_margin_account_settles_realised_pnl() -> None:
    run = run_scenario(1_500, account_type=AccountType.MARGIN, seed=3)
    proj = run.projection()
    fold(run.events, proj)
    assert proj.account.account_type is AccountType.MARGIN
    assert_matches_engine(proj, run.engine)


def test_parent_orders_and_child_id_counters(scenario: Run) -> None:
    proj = scenario.projection()
    fold(scenario.events, proj)
    started = [e for e in scenario.events if isinstance(e, ParentOrderStarted)]
    assert set(proj.parents) == {e.parent_id for e in started}
    finished = {e.parent_id for e in scenario.events if isinstance(e, ParentOrderFinished)}
    for pid, parent in proj.parents.items():
        assert parent.state == ("DONE" if pid in finished else "RUNNING")
        assert parent.quantity == fixed.to_raw("0.008")
        assert proj.child_counters[pid] == 2
        assert proj.next_child_order_id(pid) == f"{pid}-c3"
        children = [o for o in proj.orders.values() if o.parent_id == pid]
        assert [o.client_order_id for o in children] == [f"{pid}-c1", f"{pid}-c2"]
    # "busy-twap1" is not "<prefix>-<n>": it does not touch the strategy's counter
    assert "busy-twap1" not in proj.id_counters


def test_client_order_id_counters_keep_the_highest_number() -> None:
    proj = StateProjection([instrument()], "USDT", {"USDT": 10**15})
    ids = ["a-3", "a-1", "a-12", "x-y-7", "p-5-c2", "p-5-c10", "noseq", "b-c", "b-007", "q-²"]
    ids += ["s-P2-c1", "s-P3-c4", "s-Q9", "s-p4"]
    for seq, cid in enumerate(ids, 1):
        proj.apply(seq, OrderInitialized(seq, cid, IID, "s", 1, "MARKET", 10**6))
    proj.apply(99, ParentOrderStarted(99, "s-P3", IID, "s", 1, 10**6, "TWAP", "{}", None))
    assert proj.id_counters == {"a": 12, "x-y": 7, "b": 7}
    assert proj.child_counters == {"p-5": 10, "s-P2": 1, "s-P3": 4}
    assert proj.parent_counters == {"s": 3}
    assert proj.next_client_order_id("a") == "a-13"
    assert proj.next_client_order_id("new") == "new-1"
    assert proj.next_child_order_id("p-5") == "p-5-c11"
    assert proj.next_parent_id("s") == "s-P4" and proj.next_parent_id("t") == "t-P1"
    back = StateProjection.from_snapshot(proj.to_snapshot())
    assert (back.id_counters, back.child_counters, back.parent_counters) == (
        proj.id_counters,
        proj.child_counters,
        proj.parent_counters,
    )


def test_open_and_closed_indexes_follow_the_status(scenario: Run) -> None:
    proj = scenario.projection()
    for seq, event in enumerate(scenario.events, 1):
        proj.apply(seq, event)
        if seq % 50 == 0:
            assert all(not o.is_closed for o in proj.open_orders.values())
            assert all(o.is_closed for o in proj.closed_orders.values())
            assert len(proj.open_orders) + len(proj.closed_orders) == len(proj.orders)


def test_closed_orders_keep_only_their_initialized_event(scenario: Run) -> None:
    trimmed = scenario.projection()
    fold(scenario.events, trimmed)
    full = StateProjection([scenario.instrument], "USDT", scenario.balances, keep_order_events=True)
    fold(scenario.events, full)
    for cid, order in scenario.engine.orders.orders.items():
        assert full.orders[cid].events == order.events
        if order.is_closed:
            assert trimmed.orders[cid].events == order.events[:1]
        else:
            assert trimmed.orders[cid].events == order.events


def test_events_at_or_before_last_seq_are_skipped(scenario: Run) -> None:
    once = scenario.projection()
    fold(scenario.events, once)
    twice = scenario.projection()
    fold(scenario.events[:700], twice)
    fold(scenario.events, twice)  # overlaps the first 700
    assert twice.state() == once.state()


def test_lenient_fold_counts_what_it_cannot_apply() -> None:
    proj = StateProjection([instrument()], "USDT", {"USDT": 10**15})
    init = OrderInitialized(1, "s-1", IID, "s", 1, "LIMIT", 10**7, price=10**12)
    proj.apply(1, init)
    proj.apply(2, OrderAccepted(2, "s-1", "V1"))  # not allowed before OrderSubmitted
    proj.apply(3, OrderSubmitted(3, "nobody"))  # unknown order
    proj.apply(4, init)  # duplicate
    fill = OrderFilled(5, "s-9", "ETH.X", "s", "T1", 1, 10**6, 10**9, 0, "USDT", "TAKER")
    proj.apply(5, OrderInitialized(5, "s-9", "ETH.X", "s", 1, "MARKET", 10**6))
    proj.apply(6, OrderSubmitted(6, "s-9"))
    proj.apply(7, fill)  # unknown instrument: position kept, balances not settled

    class FutureStateChange(Event, frozen=True, tag=True):
        state: str
        reason: str = ""
        until_ns: int | None = None

    class Heartbeat(Event, frozen=True, tag=True):
        pass

    proj.apply(8, FutureStateChange(8, "HALTED", "drawdown", 99))
    proj.apply(9, Heartbeat(9))
    rows = [
        (10, 10, "FutureEvent", b'{"type":"FutureEvent","ts":10}'),
        (11, 11, "CancelOrder", encode(SessionStarted(11, "x", "{}"))),  # counted, not decoded
    ]
    assert proj.fold_rows(rows) == 2
    assert proj.anomalies == {
        "OrderAccepted not allowed by the order's status": 1,
        "OrderSubmitted for an unknown order": 1,
        "duplicate OrderInitialized": 1,
        "fill of an unknown instrument (balances not settled)": 1,
    }
    assert proj.unknown_kinds == {"Heartbeat": 1, "FutureEvent": 1}
    assert proj.trading_state is not None
    assert (proj.trading_state.state, proj.trading_state.reason) == ("HALTED", "drawdown")
    assert (proj.trading_state.until_ns, proj.trading_state.seq) == (99, 8)
    assert proj.trading_state.kind == "FutureStateChange"
    assert proj.orders["s-1"].status is OrderStatus.INITIALIZED
    assert proj.positions["ETH.X"].qty == 10**6
    assert proj.account.total == {"USDT": 10**15}
    assert (proj.last_seq, proj.last_ts, proj.events_applied) == (11, 11, 11)
    assert proj.kind_counts["CancelOrder"] == 1 and proj.session is None


def test_from_journal_needs_a_setup(tmp_path: Path) -> None:
    with open_journal(tmp_path / "empty.db") as journal:
        with pytest.raises(JournalError, match="no SessionStarted"):
            StateProjection.from_journal(journal)
        proj = StateProjection.from_journal(journal, [instrument()], "USDT", {"USDT": 1})
        assert proj.last_seq == 0
        journal.append(SessionStarted(1, "paper", '{"not": "a run spec"}'))
        with pytest.raises(JournalError, match="cannot derive instruments"):
            StateProjection.from_journal(journal)


def test_session_setup_matches_prepare() -> None:
    from tradepilot.app.build import build_spec_run
    from tradepilot.app.session import SessionOptions, SpecPlan

    spec = RunSpec(capital="5000", fee_bps="3")
    setup = session_setup(spec.canonical_json())
    prepared = build_spec_run(spec)
    assert setup.instruments == {prepared.instrument.id: prepared.instrument}
    assert setup.base_currency == prepared.engine.config.base_currency
    assert dict(setup.starting_balances) == prepared.engine.portfolio.account.total
    assert setup.account_type is prepared.engine.config.account_type
    # a paper session journals {"spec": ..., "paper": ...}
    assert session_setup(SpecPlan(spec).config_json(SessionOptions("paper"))) == setup


def test_snapshot_restores_every_order_slot(scenario: Run) -> None:
    """A restored order equals the live one in every slot but its event history."""
    projection = scenario.projection()
    restored = StateProjection.from_snapshot(projection.to_snapshot()).orders
    for cid, live in projection.orders.items():
        again = restored[cid]
        for slot in Order.__slots__:
            if slot != "events":
                assert getattr(again, slot) == getattr(live, slot), (cid, slot)


def test_snapshot_round_trip(scenario: Run) -> None:
    proj = scenario.projection()
    fold(scenario.events, proj)
    payload = proj.to_snapshot()
    back = StateProjection.from_snapshot(payload)
    assert back.state() == proj.state()
    assert back.to_snapshot() == payload
    assert_matches_engine(back, scenario.engine)
    for cid, order in proj.orders.items():
        assert order_state(back.orders[cid]) == order_state(order)
    assert back.instruments == proj.instruments
    assert list(back.account.total.items()) == list(proj.account.total.items())
    assert back.session == proj.session and back.parents == proj.parents
    state = proj.state()
    assert state["last_seq"] == len(scenario.events)
    assert msgspec.json.encode(state)  # plain values only


def test_clone_shares_nothing(scenario: Run) -> None:
    proj = scenario.projection()
    cut = len(scenario.events) // 2
    fold(scenario.events[:cut], proj)
    copy = proj.clone()
    assert copy.state() == proj.state()
    assert not set(map(id, copy.orders.values())) & set(map(id, proj.orders.values()))
    assert not set(map(id, copy.positions.values())) & set(map(id, proj.positions.values()))
    fold(scenario.events[cut:], proj, cut + 1)
    assert copy.last_seq == cut and copy.state() != proj.state()
    fold(scenario.events[cut:], copy, cut + 1)
    assert copy.state() == proj.state()


def test_a_dropped_projection_is_freed_at_once(scenario: Run) -> None:
    """No reference cycles: a dropped projection does not wait for the cyclic collector."""
    proj = scenario.projection()
    fold(scenario.events, proj)
    restored = StateProjection.from_snapshot(proj.to_snapshot())
    refs = [weakref.ref(proj), weakref.ref(restored)]
    enabled = gc.isenabled()
    gc.disable()
    try:
        del proj, restored
        assert [ref() for ref in refs] == [None, None]
    finally:
        if enabled:
            gc.enable()


def test_snapshot_of_an_empty_projection() -> None:
    proj = StateProjection([instrument()], "USDT", {"USDT": 5, "BTC": 0})
    back = StateProjection.from_snapshot(proj.to_snapshot())
    assert back.state() == proj.state()
    assert back.last_seq == 0


def all_prefixes(events: Sequence[Event]) -> Iterator[int]:
    yield from range(0, len(events) + 1, max(len(events) // 40, 1))
    yield len(events)


def test_snapshot_at_any_point_plus_the_rest_equals_the_full_fold(scenario: Run) -> None:
    full = scenario.projection()
    fold(scenario.events, full)
    expected = full.state()
    cuts = sorted({*all_prefixes(scenario.events), 1, 2, 3})
    live = scenario.projection()
    done = 0
    for cut in cuts:
        fold(scenario.events[done:cut], live, done + 1)
        done = cut
        back = StateProjection.from_snapshot(live.to_snapshot())
        assert back.last_seq == cut
        fold(scenario.events[cut:], back, cut + 1)
        assert back.state() == expected, f"snapshot at seq {cut}"
    assert_matches_engine(live, scenario.engine)
