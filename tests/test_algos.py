"""Execution algorithms on bars and trade ticks: the parent lifecycle, the quantity
invariant, validation, cancellation, and each algorithm's behaviour.

Real data: the bundled one-minute BTC/USDT candles and the Tardis BTCUSDT trade tape
from ``shared/data``; hand-built bars and ticks where a test needs exact prices.
The L2 book tests are in ``test_algos_book.py`` (they share the helpers below).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tradepilot.core.time import NS_PER_DAY, NS_PER_MINUTE, NS_PER_SECOND
from tradepilot.data import catalog
from tradepilot.data.loaders import load_trades
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.execution.algo_engine import AlgoEngine, ParentContext, ParentStatus, ParentView
from tradepilot.execution.algos import (
    ALGORITHMS,
    AlgoParams,
    Algorithm,
    TwapParams,
    VolumeProfile,
    volume_profile,
)
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType
from tradepilot.model.events import (
    Event,
    OrderCanceled,
    OrderFilled,
    OrderInitialized,
    OrderUpdated,
    ParentOrderFinished,
    ParentOrderProgress,
    ParentOrderStarted,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.base import Strategy

R = fixed.to_raw
S = fixed.to_str
SEC = NS_PER_SECOND
MIN = NS_PER_MINUTE
BUY, SELL = OrderSide.BUY, OrderSide.SELL
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TARDIS_TRADES = SHARED / "trades" / "tardis_binance-futures_btcusdt_trades_20200222.csv.gz"
BALANCES = {"USDT": "10000000", "BTC": "100"}
#: 2024-01-02 00:00 UTC
MIDNIGHT = 19_724 * NS_PER_DAY
IID = "BTCUSDT.SIM"


# -- instruments and data ---------------------------------------------------------------------
def instrument(lot: str = "0.001", tick: str = "0.01") -> Instrument:
    return Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", tick_size=tick, lot_size=lot)


BUNDLED = catalog.bundled()[0]
BARS_INST = BUNDLED.instrument()


@pytest.fixture(scope="module")
def bundled_bars() -> list[Bar]:
    return list(BUNDLED.load_bars(BARS_INST.id))


@pytest.fixture(scope="module")
def tardis_ticks() -> list[TradeTick]:
    if not TARDIS_TRADES.is_file():
        pytest.fail(f"shared data not found (the tests need ../shared/data): {TARDIS_TRADES}")
    return list(load_trades(TARDIS_TRADES, IID))


def make_bars(ohlc: Sequence[tuple[str, str, str, str]], volume: str = "10") -> list[Bar]:
    """One-minute bars from MIDNIGHT; bar ``k`` closes at ``MIDNIGHT + (k + 1) * MIN``."""
    out = []
    for k, (o, h, lo, c) in enumerate(ohlc):
        t = MIDNIGHT + k * MIN
        out.append(Bar(IID, t + MIN, t, R(o), R(h), R(lo), R(c), R(volume)))
    return out


def make_ticks(prices: Sequence[str], size: str = "1", step: int = SEC) -> list[TradeTick]:
    """One trade per ``step`` from MIDNIGHT."""
    return [TradeTick(IID, MIDNIGHT + i * step, R(p), R(size), 0) for i, p in enumerate(prices)]


# -- a driver strategy, the invariant probe and a runner ----------------------------------------
Action = Callable[["Driver"], object]


class Driver(Strategy):
    """Runs each action on the first data item at least ``offset`` ns after the first one."""

    strategy_id = "drv"

    def __init__(self, algos: AlgoEngine, instrument_id: str, actions: Sequence[Any]) -> None:
        super().__init__()
        self.algos = algos
        self.instrument_id = instrument_id
        self.actions: list[tuple[int, Action]] = sorted(actions, key=lambda a: int(a[0]))
        self.t0: int | None = None
        self.pids: list[str] = []
        self.errors: list[str] = []
        self.fills: list[OrderFilled] = []
        self.parent_filled: list[int] = []  # the parent's filled quantity in on_fill

    def _data(self, ts: int) -> None:
        if self.t0 is None:
            self.t0 = ts
        while self.actions and ts >= self.t0 + self.actions[0][0]:
            self.actions.pop(0)[1](self)

    def on_bar(self, bar: Bar) -> None:
        self._data(bar.ts)

    def on_trade(self, tick: TradeTick) -> None:
        self._data(tick.ts)

    def on_book(self, update: Any) -> None:
        self._data(update.ts)

    def on_fill(self, fill: OrderFilled) -> None:
        self.fills.append(fill)
        pid = self.engine.orders.orders[fill.client_order_id].parent_id
        if pid is not None:
            self.parent_filled.append(self.algos.parent(pid).filled_qty)

    def parent(
        self, side: OrderSide, qty: Any, algorithm: str, params: Any = None, **kw: Any
    ) -> None:
        try:
            pid = self.algos.submit_parent(
                self.instrument_id, side, qty, algorithm, params, strategy_id="drv", **kw
            )
        except ValueError as exc:
            self.errors.append(str(exc))
        else:
            self.pids.append(pid)


def submit(
    offset: int, side: OrderSide, qty: Any, algorithm: str, params: Any = None, **kw: Any
) -> tuple[int, Action]:
    return offset, lambda d: d.parent(side, qty, algorithm, params, **kw)


def cancel(offset: int, index: int = 0) -> tuple[int, Action]:
    return offset, lambda d: d.algos.cancel_parent(d.pids[index])


class InvariantProbe:
    """After every child event: children's fills plus working quantity never exceed what
    the parent allows (its quantity; for exits, what its own side filled)."""

    def __init__(self, engine: Engine, algos: AlgoEngine) -> None:
        self.engine = engine
        self.algos = algos
        self.checked = 0
        self.max_open: dict[str, int] = {}
        engine.bus.subscribe(Event, self.on_event)

    def on_event(self, event: Event) -> None:
        cid = getattr(event, "client_order_id", None)
        order = self.engine.orders.orders.get(cid) if cid else None
        if order is None or order.parent_id is None:
            return
        view = self.algos.parent(order.parent_id)
        children = child_orders(self.engine, view)
        committed = {
            side: sum(
                o.filled_qty + (0 if o.is_closed else o.leaves_qty)
                for o in children
                if o.side is side
            )
            for side in (BUY, SELL)
        }
        entry_filled = sum(o.filled_qty for o in children if o.side is view.side)
        assert committed[view.side] <= view.quantity, (view, children)
        assert committed[view.side.opposite] <= entry_filled, (view, children)
        n_open = sum(1 for o in children if not o.is_closed)
        self.max_open[view.parent_id] = max(self.max_open.get(view.parent_id, 0), n_open)
        self.checked += 1


@dataclass
class Run:
    engine: Engine
    algos: AlgoEngine
    driver: Driver
    probe: InvariantProbe

    def view(self, index: int = 0) -> ParentView:
        return self.algos.parent(self.driver.pids[index])

    def children(self, index: int = 0) -> list[Order]:
        return child_orders(self.engine, self.view(index))

    def events(self) -> list[Event]:
        journal = self.engine.journal
        assert isinstance(journal, MemoryJournal)
        return journal.events()


def child_orders(engine: Engine, view: ParentView) -> list[Order]:
    return [engine.orders.orders[c] for c in view.children if c in engine.orders.orders]


def run(
    data: Sequence[Any],
    actions: Sequence[tuple[int, Action]],
    inst: Instrument | None = None,
    balances: dict[str, str] | None = None,
    risk_rules: Sequence[Any] = (),
    **algo_kwargs: Any,
) -> Run:
    inst = inst or instrument()
    algo_kwargs.setdefault("isolate_errors", False)
    algos = AlgoEngine(**algo_kwargs)
    driver = Driver(algos, inst.id, actions)
    cfg = EngineConfig(starting_balances=balances or BALANCES)
    engine = Engine.simulated(
        [inst], [algos, driver], cfg, journal=MemoryJournal(), risk_rules=risk_rules
    )
    probe = InvariantProbe(engine, algos)
    engine.run(data)
    result = Run(engine, algos, driver, probe)
    check_run(result)
    return result


def check_run(r: Run) -> None:
    """What every run must satisfy, whatever the algorithm did."""
    events = r.events()
    started = [e for e in events if isinstance(e, ParentOrderStarted)]
    finished = [e for e in events if isinstance(e, ParentOrderFinished)]
    assert [e.parent_id for e in started] == r.driver.pids
    assert sorted(e.parent_id for e in finished) == sorted(r.driver.pids)  # each exactly once
    first_seq = {e.parent_id: i for i, e in enumerate(events) if isinstance(e, ParentOrderStarted)}
    for i, e in enumerate(events):
        if isinstance(e, OrderInitialized) and e.parent_id is not None:
            assert first_seq[e.parent_id] < i
            assert e.client_order_id.startswith(f"{e.parent_id}-c")
            assert e.strategy_id == e.parent_id.rsplit("-P", 1)[0]
    for view in r.algos.parents():
        assert view.status.is_final
        children = child_orders(r.engine, view)
        assert len(children) == len(view.children)
        same = [o for o in children if o.side is view.side]
        assert sum(o.filled_qty for o in same) == view.filled_qty <= view.quantity
        exits = sum(o.filled_qty for o in children if o.side is not view.side)
        assert exits <= view.filled_qty
        fills = [
            e
            for e in events
            if isinstance(e, OrderFilled) and e.client_order_id in children_ids(view)
        ]
        progress = [
            e
            for e in events
            if isinstance(e, ParentOrderProgress) and e.parent_id == view.parent_id
        ]
        assert len(progress) == len(fills)
        end = next(e for e in finished if e.parent_id == view.parent_id)
        assert end.state == view.status.value and end.filled_qty == view.filled_qty
        assert end.avg_px == view.avg_px
        if progress:
            assert progress[-1].filled_qty == view.filled_qty
        if not view.reason.startswith("session ended"):
            assert all(o.is_closed for o in children), children


def children_ids(view: ParentView) -> set[str]:
    return set(view.children)


def started_params(r: Run, index: int = 0) -> dict[str, Any]:
    pid = r.driver.pids[index]
    e = next(e for e in r.events() if isinstance(e, ParentOrderStarted) and e.parent_id == pid)
    result: dict[str, Any] = json.loads(e.params)
    return result


def assert_done(r: Run, index: int = 0) -> ParentView:
    view = r.view(index)
    assert view.status is ParentStatus.DONE, view
    assert view.filled_qty == view.quantity and view.remaining_qty == 0
    return view


# == the parent lifecycle ======================================================================
def test_twap_on_bundled_bars_records_the_lifecycle(bundled_bars: list[Bar]) -> None:
    bars = bundled_bars[:10]
    r = run(bars, [submit(0, BUY, "2", "twap", {"duration": "5m"})], BARS_INST)
    view = assert_done(r)
    assert view.parent_id == "drv-P1" and view.algorithm == "twap"
    assert view.children == tuple(f"drv-P1-c{i}" for i in range(1, 6))
    children = r.children()
    assert [o.quantity for o in children] == [R("0.4")] * 5
    # one slice per minute from the submit; each market slice fills at the next bar's open
    assert [o.ts_init for o in children] == [bars[0].ts + i * MIN for i in range(5)]
    assert [o.avg_px for o in children] == [b.open for b in bars[1:6]]
    assert view.avg_px == fixed.div(sum(fixed.mul(b.open, R("0.4")) for b in bars[1:6]), R("2"))
    assert view.arrival_px == bars[0].close  # no book: the last price
    events = r.events()
    started = next(e for e in events if isinstance(e, ParentOrderStarted))
    assert (started.parent_id, started.side, started.quantity) == ("drv-P1", 1, R("2"))
    assert (started.arrival_px, started.urgency) == (bars[0].close, "normal")
    assert json.loads(started.params)["duration"] == 5 * MIN
    progress = [e for e in events if isinstance(e, ParentOrderProgress)]
    assert [p.filled_qty for p in progress] == [R("0.4") * i for i in range(1, 6)]
    assert [p.remaining_qty for p in progress] == [R("2") - R("0.4") * i for i in range(1, 6)]
    finished = next(e for e in events if isinstance(e, ParentOrderFinished))
    assert (finished.state, finished.filled_qty, finished.avg_px) == ("DONE", R("2"), view.avg_px)
    assert finished.ts == bars[5].ts
    # the requesting strategy sees the children's fills; every child went through risk
    assert [f.client_order_id for f in r.driver.fills] == list(view.children)
    assert r.driver.parent_filled == [R("0.4") * i for i in range(1, 6)]  # already booked
    inits = [e for e in events if isinstance(e, OrderInitialized)]
    assert all(e.parent_id == "drv-P1" and e.strategy_id == "drv" for e in inits)


def test_parent_ids_are_per_strategy_and_deterministic(bundled_bars: list[Bar]) -> None:
    def both(d: Driver) -> None:
        d.parent(BUY, "0.1", "market")
        d.pids.append(d.algos.submit_parent(BARS_INST.id, BUY, "0.1", "market"))
        d.parent(SELL, "0.1", "market")

    r = run(bundled_bars[:3], [(0, both)], BARS_INST, balances=BALANCES)
    assert r.driver.pids == ["drv-P1", "algo-P1", "drv-P2"]
    assert r.algos.parent("algo-P1").children == ("algo-P1-c1",)


def test_quantity_int_is_raw_and_text_is_human(bundled_bars: list[Bar]) -> None:
    r = run(
        bundled_bars[:3],
        [
            submit(0, BUY, 2 * fixed.SCALE, "market"),
            submit(0, BUY, "2", "market"),
            submit(0, BUY, 2, "market"),
        ],
        BARS_INST,
    )
    assert r.view(0).quantity == r.view(1).quantity == R("2")
    assert len(r.driver.errors) == 1 and "lot size" in r.driver.errors[0]


def test_the_same_run_writes_the_same_journal(bundled_bars: list[Bar]) -> None:
    params = {"duration": "10m", "slices": 6, "randomize_size": 0.5, "randomize_time": 0.5}

    def rows(seed: int | None) -> list[Any]:
        p = dict(params, seed=seed)
        r = run(bundled_bars[:15], [submit(0, BUY, "3", "twap", p)], BARS_INST)
        assert_done(r)
        journal = r.engine.journal
        assert isinstance(journal, MemoryJournal)
        return journal.rows

    assert rows(None) == rows(None)
    assert rows(7) == rows(7)
    assert rows(7) != rows(8)


# == validation: bad input raises before anything is recorded or sent ==========================
BAD: list[tuple[str, Any, str]] = [
    ("twap", {"duration": 0}, "duration must be positive"),
    ("twap", {"duration": "-5m"}, "non-negative"),
    ("twap", {"duration": "5m", "slices": 0}, "slices must be between"),
    ("twap", {"duration": "5m", "slices": 5, "interval": "1m"}, "not both"),
    ("twap", {"duration": "5m", "interval": "10m"}, "at most the duration"),
    ("twap", {"duration": "5m", "order_type": "stop"}, "order_type must be one of"),
    ("twap", {"duration": "5m", "randomize_size": 1.5}, r"randomize_size must be in \[0, 1\)"),
    ("twap", {"duration": "5m", "min_slice": "5"}, "min_slice is above the parent quantity"),
    ("twap", {}, "missing parameter"),
    ("twap", {"duration": "5m", "speed": 2}, "unknown parameter"),
    ("twap", {"duration": "5m", "slices": "5"}, "slices must be int or None"),
    ("twap", 42, "params must be a dict or TwapParams"),
    ("vwap", {"duration": "5m"}, r"missing parameter\(s\) profile"),
    ("vwap", {"duration": "5m", "profile": [1.0]}, "profile must be VolumeProfile"),
    ("pov", {"participation": 0}, r"participation must be in \(0, 1\]"),
    ("pov", {"participation": 1.5}, r"participation must be in \(0, 1\]"),
    ("pov", {"participation": 0.1, "min_child": "1", "max_child": "0.5"}, "below min_child"),
    ("pov", {"participation": 0.1, "min_child": "0.000015"}, "multiple of the lot"),
    ("iceberg", {"visible_qty": "5"}, "visible quantity 5 is above the total 2"),
    ("iceberg", {}, "exactly one of visible_qty and visible_pct"),
    ("iceberg", {"visible_pct": 150}, r"visible_pct must be in \(0, 100\]"),
    ("iceberg", {"visible_qty": "0.5", "min_visible": "1"}, "below min_visible"),
    ("iceberg", {"visible_qty": "0.5", "limit_price": "1", "offset_ticks": 2}, "only without"),
    ("limit", {"price": "-1"}, "price must be positive"),
    ("limit", {"price": "50000.001"}, "multiple of the tick"),
    ("limit", {"fallback_to_market": True}, "needs a timeout"),
    ("limit", {"timeout": "0s"}, "timeout must be positive"),
    ("chaser", {"threshold_ticks": 0}, "threshold_ticks must be at least 1"),
    ("chaser", {"peg": "mid"}, "peg must be one of best, last"),
    ("oco", {}, "give a stop_loss, a take_profit or a trailing_offset"),
    ("oco", {"stop_loss": "60000", "take_profit": "40000"}, "needs stop_loss below take_profit"),
    ("oco", {"stop_loss": "60000"}, "stop_loss 60000 is already reached"),
    ("bracket", {"entry_type": "limit", "take_profit": "60000"}, "needs an entry_price"),
    ("bracket", {"stop_loss": "49000", "take_profit": "49500"}, "take_profit 49500 is already"),
    ("market", {"max_retries": -1}, "max_retries cannot be negative"),
    ("auto", {"max_participation": 2}, r"max_participation must be in \(0, 1\]"),
    ("nope", {}, "unknown algorithm 'nope'"),
]


@pytest.mark.parametrize(("algorithm", "params", "message"), BAD)
def test_bad_parameters_raise_before_any_child(
    bundled_bars: list[Bar], algorithm: str, params: Any, message: str
) -> None:
    side = SELL if algorithm == "oco" else BUY  # a sell OCO closes a long position
    r = run(bundled_bars[:3], [submit(0, side, "2", algorithm, params)], BARS_INST)
    assert len(r.driver.errors) == 1
    error = r.driver.errors[0]
    assert error.startswith(f"{algorithm}: ") or algorithm == "nope"
    assert re.search(message, error), error
    events = r.events()
    assert not [e for e in events if isinstance(e, OrderInitialized | ParentOrderStarted)]
    assert r.algos.parents() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"urgency": "asap"}, "urgency must be one of low, normal, high"),
        ({"side": 0}, "side must be"),
        ({"qty": "-1"}, "quantity must be positive"),
        ({"qty": "0.000001"}, "not a multiple of the lot size"),
        ({"instrument_id": "ETHUSDT.SIM"}, "unknown instrument"),
    ],
)
def test_bad_parent_fields_raise_before_any_child(
    bundled_bars: list[Bar], kwargs: dict[str, Any], message: str
) -> None:
    def act(d: Driver) -> None:
        args = {"instrument_id": BARS_INST.id, "side": BUY, "qty": "1", "urgency": "normal"}
        args.update(kwargs)
        with pytest.raises(ValueError, match=message):
            d.algos.submit_parent(
                args["instrument_id"], args["side"], args["qty"], "market", urgency=args["urgency"]
            )

    r = run(bundled_bars[:3], [(0, act)], BARS_INST)
    assert not [e for e in r.events() if isinstance(e, OrderInitialized | ParentOrderStarted)]


def test_a_failed_submission_does_not_use_up_a_parent_id(bundled_bars: list[Bar]) -> None:
    r = run(
        bundled_bars[:3],
        [submit(0, BUY, "1", "twap", {"duration": 0}), submit(0, BUY, "1", "market")],
        BARS_INST,
    )
    assert r.driver.pids == ["drv-P1"] and len(r.driver.errors) == 1


def test_params_dataclass_is_validated_on_construction() -> None:
    with pytest.raises(ValueError, match="duration must be positive"):
        TwapParams(duration=-1)
    with pytest.raises(ValueError, match="randomize_time must be in"):
        TwapParams(duration=MIN, randomize_time=-0.1)
    assert TwapParams(duration=5 * MIN).slice_count() == 5
    assert TwapParams(duration=30 * SEC).slice_count() == 1
    assert TwapParams(duration=5 * MIN, interval=2 * MIN).slice_count() == 3


# == outcomes other than DONE: cancel, session end, refusals, errors ===========================
def test_cancel_parent_mid_way_leaves_no_working_child_on_bars(bundled_bars: list[Bar]) -> None:
    params = {"duration": "10m", "slices": 10, "order_type": "limit", "limit_offset_ticks": -5000}
    r = run(
        bundled_bars[:12],
        [submit(0, BUY, "2", "twap", params), cancel(3 * MIN + 1)],
        BARS_INST,
    )
    view = r.view()
    assert view.status is ParentStatus.CANCELLED and view.reason == "cancelled by request"
    assert view.filled_qty < view.quantity
    assert view.finished_ts == bundled_bars[4].ts  # the venue confirmed the cancels at once
    assert all(o.is_closed for o in r.children())
    assert not set(r.engine.venue.open_order_ids()) & set(view.children)
    assert len(view.children) == 5  # the slice due with the cancel's bar ran first
    assert all(o.ts_init <= view.finished_ts for o in r.children())  # nothing after it
    finished = [e for e in r.events() if isinstance(e, ParentOrderFinished)]
    assert [(e.state, e.filled_qty) for e in finished] == [("CANCELLED", view.filled_qty)]


def test_cancel_parent_mid_way_leaves_no_working_child_on_ticks(
    tardis_ticks: list[TradeTick],
) -> None:
    params = {"visible_qty": "0.5", "offset_ticks": -200}
    r = run(tardis_ticks[:3000], [submit(0, BUY, "20", "iceberg", params), cancel(10 * MIN)])
    view = r.view()
    assert view.status is ParentStatus.CANCELLED
    assert 0 < view.filled_qty < view.quantity
    assert all(o.is_closed for o in r.children())
    assert not r.engine.venue.open_order_ids()


def test_cancel_waits_for_the_venue_with_latency(bundled_bars: list[Bar]) -> None:
    params = {"duration": "10m", "slices": 10, "order_type": "limit", "limit_offset_ticks": -5000}
    algos_box: list[ParentView] = []

    def cancel_and_look(d: Driver) -> None:
        d.algos.cancel_parent(d.pids[0])
        algos_box.append(d.algos.parent(d.pids[0]))

    inst = BARS_INST
    algos = AlgoEngine(isolate_errors=False)
    driver = Driver(
        algos, inst.id, [submit(0, BUY, "2", "twap", params), (2 * MIN, cancel_and_look)]
    )
    cfg = EngineConfig(starting_balances=BALANCES, latency_ns=30 * SEC)
    engine = Engine.simulated([inst], [algos, driver], cfg, journal=MemoryJournal())
    InvariantProbe(engine, algos)
    engine.run(bundled_bars[:8])
    assert algos_box[0].status is ParentStatus.FINISHING  # cancels sent, not yet confirmed
    view = algos.parent(driver.pids[0])
    assert view.status is ParentStatus.CANCELLED
    assert view.finished_ts is not None and view.finished_ts > algos_box[0].started_ts
    assert not engine.venue.open_order_ids()


def test_session_end_fails_the_parent_with_its_remainder(bundled_bars: list[Bar]) -> None:
    r = run(bundled_bars[:5], [submit(0, BUY, "3", "twap", {"duration": "1h"})], BARS_INST)
    view = r.view()
    assert view.status is ParentStatus.FAILED
    assert 0 < view.filled_qty < view.quantity
    assert view.reason == f"session ended before completion: {S(view.filled_qty)} of 3 filled"


def test_a_child_the_venue_rejects_fails_the_parent(bundled_bars: list[Bar]) -> None:
    r = run(
        bundled_bars[:5],
        [submit(0, BUY, "2", "market")],
        BARS_INST,
        balances={"USDT": "1000"},
    )
    view = r.view()
    assert view.status is ParentStatus.FAILED and view.filled_qty == 0
    assert view.reason.startswith("child drv-P1-c1 REJECTED: ")
    assert "insufficient" in view.reason.lower() or "balance" in view.reason.lower()


class MaxQty:
    code = "MAX_QTY"

    def check(self, order: Order, view: Any) -> str | None:
        return "child above 0.5" if order.quantity > R("0.5") else None


def test_a_child_the_risk_engine_denies_fails_the_parent(bundled_bars: list[Bar]) -> None:
    r = run(
        bundled_bars[:10],
        [submit(0, BUY, "3", "twap", {"duration": "5m", "slices": 5})],
        BARS_INST,
        risk_rules=[MaxQty()],
    )
    view = r.view()
    assert view.status is ParentStatus.FAILED
    assert view.reason == "child drv-P1-c1 DENIED: child above 0.5"
    assert len(view.children) == 1  # nothing else was sent


class Boom(Algorithm[AlgoParams]):
    name = "boom"
    params_type = AlgoParams

    def on_start(self) -> None:
        self.ctx.submit(R("0.1"), OrderType.MARKET)
        raise RuntimeError("boom")


def test_an_algorithm_error_fails_only_its_parent(
    bundled_bars: list[Bar], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ALGORITHMS, "boom", Boom)
    r = run(
        bundled_bars[:5],
        [submit(0, BUY, "1", "boom"), submit(0, BUY, "1", "market")],
        BARS_INST,
        isolate_errors=True,
    )
    assert r.view(0).status is ParentStatus.FAILED
    assert r.view(0).reason == "algorithm error: RuntimeError: boom"
    assert_done(r, 1)
    with pytest.raises(RuntimeError, match="boom"):
        run(bundled_bars[:5], [submit(0, BUY, "1", "boom")], BARS_INST, isolate_errors=False)


# == every algorithm on real bars and real trade ticks =========================================
def _levels(data: Sequence[Any], inst: Instrument) -> dict[str, str]:
    """Prices for the exit legs, from the data: a stop never reached, a take-profit reached."""
    prices = [(d.low, d.high) if isinstance(d, Bar) else (d.price, d.price) for d in data]
    ref = data[0].close if isinstance(data[0], Bar) else data[0].price
    low = min(p[0] for p in prices)
    high = max(p[1] for p in prices[2:])
    tick = inst.tick_size
    tp = (ref + (high - ref) // 3) // tick * tick
    return {
        "stop_far": S((low * 9 // 10) // tick * tick),
        "tp_reached": S(tp),
        "trail": S((ref // 1000) // tick * tick),  # 0.1 %
        "above_all": S((max(p[1] for p in prices) * 101 // 100) // tick * tick),
    }


def every_algorithm(data: Sequence[Any], inst: Instrument) -> list[tuple[str, OrderSide, str, Any]]:
    lv = _levels(data, inst)
    profile = volume_profile(BUNDLED.load_bars(inst.id))
    return [
        ("market", BUY, "2", {}),
        ("limit", BUY, "1", {"timeout": "10m", "fallback_to_market": True}),
        ("twap", BUY, "2", {"duration": "5m"}),
        ("twap", SELL, "2", {"duration": "10m", "order_type": "limit", "randomize_size": 0.3}),
        ("vwap", BUY, "2", {"duration": "10m", "profile": profile, "slices": 5}),
        ("pov", SELL, "3", {"participation": 0.05, "min_child": "0.2", "max_child": "1"}),
        ("iceberg", BUY, "2", {"visible_pct": 25, "limit_price": lv["above_all"]}),
        (
            "chaser",
            BUY,
            "1",
            {"threshold_ticks": 500, "timeout": "20m", "fallback_to_market": True},
        ),
        ("bracket", BUY, "1", {"stop_loss": lv["stop_far"], "take_profit": lv["tp_reached"]}),
        ("oco", SELL, "1", {"trailing_offset": lv["trail"]}),
        ("auto", BUY, "1", {}),
    ]


def _names(cases: list[tuple[str, OrderSide, str, Any]]) -> list[str]:
    return [f"{c[0]}-{c[1].name.lower()}" for c in cases]


CASE_IDS = _names(
    [
        ("market", BUY, "", None),
        ("limit", BUY, "", None),
        ("twap", BUY, "", None),
        ("twap", SELL, "", None),
        ("vwap", BUY, "", None),
        ("pov", SELL, "", None),
        ("iceberg", BUY, "", None),
        ("chaser", BUY, "", None),
        ("bracket", BUY, "", None),
        ("oco", SELL, "", None),
        ("auto", BUY, "", None),
    ]
)


@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_every_algorithm_completes_on_bundled_bars(bundled_bars: list[Bar], case: int) -> None:
    data = bundled_bars[:90]
    name, side, qty, params = every_algorithm(data, BARS_INST)[case]
    r = run(data, [submit(0, side, qty, name, params)], BARS_INST)
    assert_done(r)
    assert r.driver.fills


@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_every_algorithm_completes_on_trade_ticks(tardis_ticks: list[TradeTick], case: int) -> None:
    data = tardis_ticks[:4000]
    name, side, qty, params = every_algorithm(data, instrument())[case]
    r = run(data, [submit(0, side, qty, name, params)])
    assert_done(r)


# == TWAP and VWAP =============================================================================
RISING = [(f"{100 + k}", f"{101 + k}", f"{100 + k}", f"{101 + k}") for k in range(12)]


def test_twap_limit_slices_catch_up_and_finish_at_market() -> None:
    # every bar opens at the previous close and only rises: a limit one dollar under the
    # close never fills, so each slice re-plans the whole target so far
    params = {"duration": "4m", "slices": 4, "order_type": "limit", "limit_offset_ticks": -100}
    r = run(make_bars(RISING), [submit(0, BUY, "4", "twap", params)])
    assert_done(r)
    children = r.children()
    assert [(o.order_type, S(o.quantity), o.status) for o in children] == [
        (OrderType.LIMIT, "1", OrderStatus.CANCELED),
        (OrderType.LIMIT, "2", OrderStatus.CANCELED),
        (OrderType.LIMIT, "3", OrderStatus.CANCELED),
        (OrderType.LIMIT, "4", OrderStatus.CANCELED),
        (OrderType.MARKET, "4", OrderStatus.FILLED),
    ]
    # one dollar under the last close each parent sees: a slice timer fires before the
    # strategies see the bar it arrives with, so the second slice still prices off bar 0
    assert [S(o.price or 0) for o in children[:4]] == ["100", "100", "101", "102"]
    assert children[-1].tags == "twap:final"


def test_twap_without_catch_up_sends_only_each_slice_share() -> None:
    params = {
        "duration": "4m",
        "slices": 4,
        "order_type": "limit",
        "limit_offset_ticks": -100,
        "catch_up": False,
    }
    r = run(make_bars(RISING), [submit(0, BUY, "4", "twap", params)])
    assert_done(r)
    assert [S(o.quantity) for o in r.children()] == ["1", "1", "1", "1", "4"]


def test_twap_without_a_market_finish_fails_with_the_remainder() -> None:
    params = {
        "duration": "4m",
        "slices": 4,
        "order_type": "limit",
        "limit_offset_ticks": -100,
        "finish_with_market": False,
    }
    r = run(make_bars(RISING), [submit(0, BUY, "4", "twap", params)])
    view = r.view()
    assert view.status is ParentStatus.FAILED
    assert view.reason == "duration ended with 4 not filled"
    assert all(o.order_type is OrderType.LIMIT for o in r.children())


def test_twap_randomisation_is_seeded_and_keeps_the_total(tardis_ticks: list[TradeTick]) -> None:
    params = {
        "duration": "20m",
        "slices": 8,
        "randomize_size": 0.5,
        "randomize_time": 0.8,
        "seed": 11,
    }
    r = run(tardis_ticks[:2500], [submit(0, BUY, "4", "twap", params)])
    assert_done(r)
    children = r.children()
    start = r.view().started_ts
    times = [o.ts_init for o in children]
    sizes = [o.quantity for o in children]
    assert times[0] == start and times == sorted(times) and times[-1] < start + 20 * MIN
    assert len(set(sizes)) > 2 and sum(sizes) == R("4")
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert len(gaps) > 2  # not a regular grid any more


def test_volume_profile_from_bars() -> None:
    bars = make_bars([("100", "100", "100", "100")] * 4)
    vols = ["1", "1", "2", "4"]
    bars = [
        Bar(b.instrument_id, b.ts, b.ts_open, b.open, b.high, b.low, b.close, R(v))
        for b, v in zip(bars, vols, strict=True)
    ]
    profile = volume_profile(bars)
    assert len(profile.shares) == 1440 and sum(profile.shares) == pytest.approx(1)
    assert profile.shares[:4] == (0.125, 0.125, 0.25, 0.5)
    assert profile.weight(MIDNIGHT, MIDNIGHT + 4 * MIN) == pytest.approx(1)
    assert profile.weight(MIDNIGHT + 90 * SEC, MIDNIGHT + 150 * SEC) == pytest.approx(0.1875)
    assert profile.weight(MIDNIGHT + NS_PER_DAY, MIDNIGHT + NS_PER_DAY + MIN) == 0.125
    assert volume_profile(bars, bucket_minutes=60).shares[0] == 1.0
    with pytest.raises(ValueError, match="divide a day"):
        volume_profile(bars, bucket_minutes=7)
    with pytest.raises(ValueError, match="needs 1440 shares"):
        VolumeProfile((1.0,))


def test_vwap_sizes_slices_by_the_profile() -> None:
    shares = [0.0] * 1440
    shares[1:5] = [1, 1, 2, 4]  # the four minutes after the submit at 00:01
    profile = VolumeProfile(tuple(shares))
    r = run(
        make_bars([("100", "101", "99", "100")] * 8),
        [submit(0, BUY, "8", "vwap", {"duration": "4m", "slices": 4, "profile": profile})],
    )
    assert_done(r)
    assert [S(o.quantity) for o in r.children()] == ["1", "1", "2", "4"]


def test_vwap_without_profile_volume_in_the_window_is_a_twap() -> None:
    shares = [0.0] * 1440
    shares[600] = 1.0
    r = run(
        make_bars([("100", "101", "99", "100")] * 8),
        [
            submit(
                0,
                BUY,
                "8",
                "vwap",
                {"duration": "4m", "slices": 4, "profile": VolumeProfile(tuple(shares))},
            )
        ],
    )
    assert [S(o.quantity) for o in r.children()] == ["2", "2", "2", "2"]


# == POV =======================================================================================
def test_pov_keeps_to_its_share_of_the_traded_volume() -> None:
    ticks = make_ticks(["100"] * 60, size="1")
    params = {"participation": 0.1, "min_child": "0.5", "max_child": "0.8"}
    r = run(ticks, [submit(0, BUY, "4", "pov", params)])
    assert_done(r)
    children = r.children()
    assert all(R("0.5") <= o.quantity <= R("0.8") for o in children[:-1])
    for child in children:
        observed = sum(t.size for t in ticks if r.view().started_ts < t.ts <= child.ts_init)
        sent = sum(o.quantity for o in children if o.ts_init <= child.ts_init)
        assert sent <= observed // 10, (S(sent), S(observed))
    assert r.view().finished_ts is not None
    # 4 at 10 % of one unit a second: about 40 seconds of trading
    assert 40 * SEC <= r.view().finished_ts - MIDNIGHT <= 45 * SEC


def test_pov_on_bars_counts_bar_volume() -> None:
    bars = make_bars([("100", "101", "99", "100")] * 8, volume="10")
    r = run(bars, [submit(0, BUY, "3", "pov", {"participation": 0.1})])
    assert_done(r)
    # submitted on the first bar: each later bar's 10 units allow one more unit
    assert [S(o.quantity) for o in r.children()] == ["1", "1", "1"]


def test_pov_limit_price_is_never_crossed() -> None:
    ticks = make_ticks(["100", "101", "102", "103", "102", "101", "100"] * 5, size="2")
    r = run(ticks, [submit(0, BUY, "2", "pov", {"participation": 0.5, "limit_price": "101"})])
    assert_done(r)
    fills = [e for e in r.events() if isinstance(e, OrderFilled)]
    assert fills and all(f.last_px <= R("101") for f in fills)


# == iceberg, chaser, limit, market ============================================================
def test_iceberg_shows_one_clip_at_a_time() -> None:
    # the first clip rests under the last trade and fills 0.1 per trade at its price; on
    # trade ticks the next clips are marketable against the last trade and fill at once
    ticks = make_ticks(["100", "99.99"] * 6, size="0.1")
    params = {"visible_qty": "0.2", "limit_price": "99.99"}
    r = run(ticks, [submit(0, BUY, "1", "iceberg", params)])
    assert_done(r)
    children = r.children()
    assert [S(o.quantity) for o in children] == ["0.2"] * 5
    assert {o.price for o in children} == {R("99.99")}
    assert r.probe.max_open["drv-P1"] == 1
    first = [S(e.last_qty) for e in children[0].events if isinstance(e, OrderFilled)]
    assert first == ["0.1", "0.1"]


def test_iceberg_clip_from_percent_with_minimum_at_a_limit_price() -> None:
    ticks = make_ticks(["103", "101", "102", "103", "104", "103", "102", "101"] * 4, size="0.5")
    params = {"visible_pct": 5, "min_visible": "0.4", "limit_price": "102"}
    r = run(ticks, [submit(0, BUY, "2", "iceberg", params)])
    assert_done(r)
    children = r.children()
    assert {o.quantity for o in children} == {R("0.4")}  # 5 % of 2 is 0.1: below the minimum
    assert {o.price for o in children} == {R("102")}
    fills = [e for e in r.events() if isinstance(e, OrderFilled)]
    assert all(f.last_px <= R("102") for f in fills)


def test_chaser_follows_a_market_moving_away_up_to_its_limit() -> None:
    prices = ["100", "100.5", "101", "101.5", "103", "106", "110", "104", "103"]
    params = {"peg": "last", "offset_ticks": -100, "threshold_ticks": 50, "max_chase_ticks": 400}
    r = run(make_ticks(prices, size="5"), [submit(0, BUY, "1", "chaser", params)])
    assert_done(r)
    (child,) = r.children()
    updates = [S(e.price or 0) for e in child.events if isinstance(e, OrderUpdated)]
    # starts at 99; re-priced when the last trade is 0.5 or more above; never above 99 + 4
    assert updates == ["99.5", "100", "100.5", "102", "103"]
    assert child.avg_px == R("103")


def test_chaser_does_not_follow_a_market_coming_towards_it() -> None:
    prices = ["100", "99.5", "99", "98.5", "98"]
    params = {"peg": "last", "offset_ticks": -300, "threshold_ticks": 10}
    r = run(make_ticks(prices, size="5"), [submit(0, BUY, "1", "chaser", params)])
    (child,) = r.children()
    assert not [e for e in child.events if isinstance(e, OrderUpdated)]
    assert child.price == R("97") and r.view().status is ParentStatus.FAILED  # session ended


@pytest.mark.parametrize("fallback", [True, False])
def test_limit_timeout_with_and_without_market_fallback(fallback: bool) -> None:
    prices = ["100"] * 3 + ["99"] + ["100"] * 100
    params = {"price": "99", "timeout": "30s", "fallback_to_market": fallback}
    r = run(make_ticks(prices, size="0.4"), [submit(0, BUY, "1", "limit", params)])
    children = r.children()
    assert children[0].filled_qty == R("0.4")  # the one trade at 99, capped to its size
    assert children[0].status is OrderStatus.CANCELED
    if fallback:
        assert_done(r)
        assert (children[1].order_type, children[1].quantity) == (OrderType.MARKET, R("0.6"))
        assert children[1].tags == "limit:fallback"
    else:
        view = r.view()
        assert view.status is ParentStatus.FAILED and view.reason == "timeout with 0.6 not filled"
        assert len(children) == 1


# == OCO and bracket ===========================================================================
def test_oco_take_profit_cancels_the_resting_stop() -> None:
    ticks = make_ticks(["100", "101", "102", "103", "104", "105", "105", "105"])
    params = {"stop_loss": "95", "take_profit": "105"}
    r = run(ticks, [submit(0, SELL, "1", "oco", params)])
    view = assert_done(r)
    stop, exit_ = r.children()
    assert (stop.order_type, stop.trigger_price, stop.status) == (
        OrderType.STOP_MARKET,
        R("95"),
        OrderStatus.CANCELED,
    )
    assert (exit_.order_type, exit_.tags, exit_.avg_px) == (
        OrderType.MARKET,
        "take_profit:market",
        R("105"),
    )
    assert view.reason == "take_profit reached"
    assert any(isinstance(e, OrderCanceled) for e in stop.events)


def test_oco_stop_cancels_the_resting_take_profit() -> None:
    ticks = make_ticks(["100", "99", "97", "95", "94", "94"])
    params = {"stop_loss": "95", "take_profit": "105", "resting_leg": "take_profit"}
    r = run(ticks, [submit(0, SELL, "1", "oco", params)])
    view = assert_done(r)
    tp, exit_ = r.children()
    assert (tp.order_type, tp.price, tp.status) == (OrderType.LIMIT, R("105"), OrderStatus.CANCELED)
    assert exit_.tags == "stop_loss:market" and exit_.avg_px == R("94")
    assert view.reason == "stop_loss reached"


def test_oco_resting_leg_fill_ends_it_without_a_second_order() -> None:
    ticks = make_ticks(["100", "101", "103", "105", "106"])
    params = {"stop_loss": "95", "take_profit": "105", "resting_leg": "take_profit"}
    r = run(ticks, [submit(0, SELL, "1", "oco", params)])
    view = assert_done(r)
    (tp,) = r.children()
    assert tp.status is OrderStatus.FILLED and tp.avg_px == R("105")
    assert view.reason == "take_profit filled"


def test_oco_leg_cancelled_from_outside_cancels_the_other() -> None:
    ticks = make_ticks(["100"] * 10)

    def cancel_leg(d: Driver) -> None:
        d.engine.orders.cancel(d.algos.parent(d.pids[0]).children[0], "manual")

    r = run(
        ticks,
        [
            submit(0, SELL, "1", "oco", {"stop_loss": "95", "take_profit": "105"}),
            (3 * SEC, cancel_leg),
        ],
    )
    view = r.view()
    assert view.status is ParentStatus.CANCELLED
    assert view.reason.startswith("stop_loss leg canceled")
    assert not r.engine.venue.open_order_ids()


def test_oco_trailing_stop_is_re_priced_with_a_modify_then_fills() -> None:
    ticks = make_ticks(["100", "101", "102", "104", "103", "102.5", "101.9", "101.5"])
    r = run(ticks, [submit(0, SELL, "1", "oco", {"trailing_offset": "2"})])
    assert_done(r)
    (stop,) = r.children()
    triggers = [S(e.trigger_price or 0) for e in stop.events if isinstance(e, OrderUpdated)]
    assert S(stop.events[0].trigger_price) == "98"  # type: ignore[attr-defined]
    assert triggers == ["99", "100", "102"]
    assert stop.status is OrderStatus.FILLED and stop.avg_px == R("101.9")


def test_oco_watched_trailing_stop_exits_at_market() -> None:
    ticks = make_ticks(["100", "103", "101.5", "100.9", "100.5"])
    params = {"trailing_offset": "2", "take_profit": "110", "resting_leg": "take_profit"}
    r = run(ticks, [submit(0, SELL, "1", "oco", params)])
    view = assert_done(r)
    tp, exit_ = r.children()
    assert tp.status is OrderStatus.CANCELED and exit_.avg_px == R("100.5")
    assert view.reason == "stop_loss reached"  # the stop trailed up to 101, hit at 100.9


def test_bracket_enters_then_exits_at_the_take_profit() -> None:
    ticks = make_ticks(["100", "100", "101", "103", "105", "104", "104"])
    params = {"stop_loss": "95", "take_profit": "105"}
    r = run(ticks, [submit(0, BUY, "1", "bracket", params)])
    view = assert_done(r)
    entry, stop, exit_ = r.children()
    assert (entry.side, entry.tags, entry.avg_px) == (BUY, "entry", R("100"))
    assert (stop.side, stop.order_type, stop.status) == (
        SELL,
        OrderType.STOP_MARKET,
        OrderStatus.CANCELED,
    )
    assert (exit_.side, exit_.avg_px) == (SELL, R("104"))
    assert view.filled_qty == R("1") and r.engine.portfolio.position_qty(IID) == 0


def test_bracket_partial_limit_entry_protects_only_what_filled() -> None:
    ticks = make_ticks(["100", "99", "99.5", "100", "94", "94"], size="0.3")
    params = {
        "entry_type": "limit",
        "entry_price": "99",
        "entry_timeout": "3s",
        "stop_loss": "95",
        "take_profit": "110",
    }
    r = run(ticks, [submit(0, BUY, "1", "bracket", params)])
    view = r.view()
    assert view.status is ParentStatus.DONE  # the round trip of what the entry got is done
    entry, stop = r.children()
    assert entry.filled_qty == R("0.3") and entry.status is OrderStatus.CANCELED
    assert stop.quantity == R("0.3") and stop.status is OrderStatus.FILLED
    assert view.filled_qty == R("0.3") and view.quantity == R("1")


def test_bracket_entry_never_filled_fails_after_its_timeout() -> None:
    ticks = make_ticks(["100"] * 20)
    params = {"entry_type": "limit", "entry_price": "90", "entry_timeout": "5s", "stop_loss": "80"}
    r = run(ticks, [submit(0, BUY, "1", "bracket", params)])
    view = r.view()
    assert view.status is ParentStatus.FAILED
    assert view.reason == "entry not filled before the entry timeout"
    assert len(view.children) == 1 and not r.engine.venue.open_order_ids()


def test_bracket_cancel_cancels_the_legs_and_keeps_the_position() -> None:
    ticks = make_ticks(["100"] * 20)
    r = run(
        ticks,
        [
            submit(0, BUY, "1", "bracket", {"stop_loss": "95", "take_profit": "105"}),
            cancel(5 * SEC),
        ],
    )
    view = r.view()
    assert view.status is ParentStatus.CANCELLED and view.filled_qty == R("1")
    assert not r.engine.venue.open_order_ids()
    assert r.engine.portfolio.position_qty(IID) == R("1")


# == automatic selection =======================================================================
@pytest.mark.parametrize(
    ("qty", "urgency", "selected"),
    [
        ("0.5", "high", "market"),
        ("50", "high", "pov"),
        ("0.5", "normal", "chaser"),
        ("20", "normal", "twap"),
        ("400", "normal", "pov"),
        ("20", "low", "twap"),
    ],
)
def test_auto_picks_by_size_and_urgency(
    bundled_bars: list[Bar], qty: str, urgency: str, selected: str
) -> None:
    data = bundled_bars[:10]
    r = run(data, [submit(6 * MIN, BUY, qty, "auto", {}, urgency=urgency)], BARS_INST)
    params = started_params(r)
    assert params["selected"] == selected, params["reason"]
    assert params["reason"].startswith(f"urgency {urgency}, {qty} is ")
    if selected == "twap":
        assert params["params"]["order_type"] == ("limit" if urgency == "low" else "market")
    assert r.view().algorithm == "auto"


def test_auto_without_any_market_data_yet(bundled_bars: list[Bar]) -> None:
    class Early(Strategy):
        strategy_id = "early"

        def __init__(self, algos: AlgoEngine) -> None:
            super().__init__()
            self.algos = algos

        def on_start(self) -> None:
            self.pid = self.algos.submit_parent(BARS_INST.id, BUY, "1", "auto", urgency="low")

    algos = AlgoEngine(isolate_errors=False)
    early = Early(algos)
    journal = MemoryJournal()
    cfg = EngineConfig(starting_balances=BALANCES)
    engine = Engine.simulated([BARS_INST], [algos, early], cfg, journal=journal)
    engine.run(bundled_bars[:8])
    view = algos.parent(early.pid)
    assert view.status is ParentStatus.DONE and view.arrival_px is None
    started = next(e for e in journal.events() if isinstance(e, ParentOrderStarted))
    assert json.loads(started.params)["reason"] == "no liquidity seen yet"
    first = engine.orders.orders[view.children[0]]
    assert first.ts_init == bundled_bars[0].ts + MIN  # the slice due at the start rolled over


# == the context API directly ==================================================================
def test_context_clamps_children_to_what_is_available(
    bundled_bars: list[Bar], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    class Greedy(Algorithm[AlgoParams]):
        name = "greedy"
        params_type = AlgoParams

        def on_start(self) -> None:
            ctx: ParentContext = self.ctx
            first = ctx.submit(R("5"), OrderType.LIMIT, price=R("1000"))
            second = ctx.submit(R("1"), OrderType.LIMIT, price=R("1000"))
            seen.append((first and first.quantity, second, ctx.available(), ctx.working()))
            ctx.cancel_all()

        def on_child_closed(self, order: Order, event: Event) -> None:
            self.ctx.fail("stop here")

    monkeypatch.setitem(ALGORITHMS, "greedy", Greedy)
    r = run(bundled_bars[:4], [submit(0, BUY, "2", "greedy")], BARS_INST)
    assert seen == [(R("2"), None, 0, R("2"))]
    assert r.view().status is ParentStatus.FAILED


def test_a_cancelled_timer_never_fires_and_a_reset_one_fires_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fired: list[tuple[str, int]] = []

    class Timed(Algorithm[AlgoParams]):
        name = "timed"
        params_type = AlgoParams

        def on_start(self) -> None:
            now = self.ctx.now()
            self.ctx.set_timer("a", now + 10 * SEC)
            self.ctx.cancel_timer("a")
            self.ctx.set_timer("a", now + 20 * SEC)
            self.ctx.set_timer("b", now + 5 * SEC)
            self.ctx.set_timer("b", now + 15 * SEC)  # replaces the first "b"

        def on_timer(self, name: str) -> None:
            fired.append((name, self.ctx.now() - MIDNIGHT))
            if name == "a":
                self.ctx.fail("done")

    monkeypatch.setitem(ALGORITHMS, "timed", Timed)
    run(make_ticks(["100"] * 30), [submit(0, BUY, "1", "timed")])
    assert fired == [("b", 15 * SEC), ("a", 20 * SEC)]


def test_flatten_cancels_working_parents_before_closing_positions() -> None:
    algos = AlgoEngine()
    ds = catalog.bundled()[0]
    inst = ds.instrument()
    pid: list[str] = []

    class Driver(Strategy):
        strategy_id = "driver"
        n = 0

        def on_bar(self, bar: Bar) -> None:
            self.n += 1
            if self.n == 3:
                pid.append(algos.submit_parent(inst.id, 1, "2", "twap", {"duration": "60m"}))
            elif self.n == 10:
                self.engine.stop("operator", flatten=True)

    engine = Engine.simulated(
        [inst], [algos, Driver()], EngineConfig(starting_balances={"USDT": "10000000"})
    )
    engine.run(ds.load_bars(inst.id).between(None, None))
    view = algos.parent(pid[0])
    assert view.status is ParentStatus.CANCELLED and view.working_qty == 0
    assert 0 < view.filled_qty < view.quantity
    assert engine.is_flat()
