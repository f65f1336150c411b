"""Execution algorithms on a real L2 session (Binance spot BTCUSDT, 2024-08-08, 10.8 min)
and on small hand-built books. Helpers are shared with ``test_algos.py``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from test_algos import (
    BUY,
    CASE_IDS,
    IID,
    MIN,
    SEC,
    SELL,
    Driver,
    InvariantProbe,
    R,
    S,
    assert_done,
    cancel,
    every_algorithm,
    run,
    started_params,
    submit,
)
from tradepilot.data.book_loader import iter_book_session_events, load_book_session
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.execution.algo_engine import AlgoEngine, ParentStatus
from tradepilot.model.data import BookDeltas, BookLevel, BookSnapshot, MarketData, TradeTick
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.events import OrderFilled, OrderUpdated
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal

SESSION = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "book"
    / "binance_spot_btcusdt_20240808"
)
INST = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", tick_size="0.01", lot_size="0.00001")
START = 10 * SEC  # parents start 10 s into the session, once the book is there


@pytest.fixture(scope="module")
def session() -> list[MarketData]:
    if not SESSION.is_dir():
        pytest.fail(f"shared data not found (the tests need ../shared/data): {SESSION}")
    return list(iter_book_session_events(load_book_session(SESSION, IID)))


def first_minutes(events: list[MarketData], minutes: float) -> list[MarketData]:
    end = events[0].ts + round(minutes * MIN)
    return [e for e in events if e.ts <= end]


def trades_after(events: list[MarketData], offset: int) -> list[TradeTick]:
    t0 = events[0].ts + offset
    return [e for e in events if isinstance(e, TradeTick) and e.ts >= t0]


# == the brief's example: buy 2 BTC over 5 minutes =============================================
def test_twap_buys_2_btc_over_5_minutes_on_the_book(session: list[MarketData]) -> None:
    mids: list[int | None] = []

    def go(d: Driver) -> None:
        mids.append(d.algos.market(IID).mid())
        d.parent(BUY, "2", "twap", {"duration": "5m"})

    r = run(first_minutes(session, 6), [(START, go)], INST)
    view = assert_done(r)
    assert view.arrival_px == mids[0] is not None  # the book mid when the parent started
    children = r.children()
    assert [(o.order_type, o.quantity) for o in children] == [(OrderType.MARKET, R("0.4"))] * 5
    assert all(o.status is OrderStatus.FILLED for o in children)
    assert view.finished_ts is not None and view.finished_ts - view.started_ts <= 5 * MIN
    assert abs(view.avg_px - mids[0]) < mids[0] // 200  # type: ignore[operator]  # within 0.5 %
    # market slices walk the book: one fill per level, every one a child fill with progress
    fills = [e for e in r.events() if isinstance(e, OrderFilled)]
    assert len(fills) >= 5 and all(f.liquidity == "TAKER" for f in fills)
    assert sum(f.last_qty for f in fills) == R("2")


# == every algorithm on the real book ==========================================================
@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_every_algorithm_completes_on_the_book(session: list[MarketData], case: int) -> None:
    name, side, qty, params = every_algorithm(trades_after(session, START), INST)[case]
    r = run(session, [submit(START, side, qty, name, params)], INST)
    assert_done(r)


def test_cancel_parent_mid_way_leaves_no_working_child_on_the_book(
    session: list[MarketData],
) -> None:
    # limit slices 20 USDT above the ask (a passive sell), re-planned every minute, from
    # 60 s in, when the market starts to fall for minutes
    params = {"duration": "8m", "slices": 8, "order_type": "limit", "limit_offset_ticks": -2000}
    r = run(
        first_minutes(session, 4),
        [submit(60 * SEC, SELL, "2", "twap", params), cancel(210 * SEC)],
        INST,
    )
    view = r.view()
    assert view.status is ParentStatus.CANCELLED
    assert view.filled_qty < view.quantity
    children = r.children()
    assert len(children) == 3 and all(o.is_closed for o in children)
    # resting 20 USDT above the ask of a falling market: none filled, all were cancelled
    assert [o.status for o in children] == [OrderStatus.CANCELED] * 3
    assert not r.engine.venue.open_order_ids()
    assert not list(r.engine.orders.open_orders())


def test_cancel_with_latency_leaves_no_working_child_on_the_book(
    session: list[MarketData],
) -> None:
    algos = AlgoEngine(isolate_errors=False)
    params = {"visible_qty": "0.05", "offset_ticks": -500}
    driver = Driver(
        algos,
        IID,
        [submit(START, BUY, "3", "iceberg", params), cancel(START + 60 * SEC)],
    )
    cfg = EngineConfig(
        starting_balances={"USDT": "10000000"}, latency_ns=50_000_000, latency_jitter_ns=20_000_000
    )
    engine = Engine.simulated([INST], [algos, driver], cfg, journal=MemoryJournal())
    InvariantProbe(engine, algos)
    engine.run(first_minutes(session, 3))
    view = algos.parent(driver.pids[0])
    assert view.status is ParentStatus.CANCELLED
    assert view.finished_ts is not None and view.finished_ts > view.started_ts + 60 * SEC
    assert not engine.venue.open_order_ids()


# == behaviour on the book =====================================================================
def test_iceberg_clips_rest_in_the_queue_on_the_book(session: list[MarketData]) -> None:
    r = run(
        first_minutes(session, 5),
        [submit(START, BUY, "1", "iceberg", {"visible_qty": "0.1"})],
        INST,
    )
    assert_done(r)
    children = r.children()
    assert [o.quantity for o in children] == [R("0.1")] * 10
    assert r.probe.max_open["drv-P1"] == 1
    # passive at the best bid; a clip sent right after a fill prices off the book the
    # algorithm has seen, which may not yet hold the update that caused the fill
    fills = [e for e in r.events() if isinstance(e, OrderFilled)]
    makers = sum(f.liquidity == "MAKER" for f in fills)
    assert makers >= 0.9 * len(fills)


def test_chaser_only_moves_after_the_market_and_within_its_reach(
    session: list[MarketData],
) -> None:
    # from 60 s the market falls for minutes: a passive sell follows it down, 50 USDT at most
    params = {"offset_ticks": -2000, "threshold_ticks": 500, "max_chase_ticks": 5000}
    r = run(first_minutes(session, 8), [submit(60 * SEC, SELL, "0.5", "chaser", params)], INST)
    (child,) = r.children()
    prices = [child.events[0].price] + [  # type: ignore[attr-defined]
        e.price for e in child.events if isinstance(e, OrderUpdated)
    ]
    assert len(prices) > 1, "the market never moved 5 USDT away in 8 minutes"
    assert prices == sorted(prices, reverse=True)  # a sell chases only downwards
    assert all(prices[0] - p <= R("50") for p in prices)
    assert all(a - b >= R("5") for a, b in itertools.pairwise(prices))
    assert prices[-1] == prices[0] - R("50")  # it reached its limit and stayed there


def test_oco_take_profit_cancels_the_resting_stop_on_the_book(session: list[MarketData]) -> None:
    trades = trades_after(session, START)
    ref = trades[0].price
    high = max(t.price for t in trades)
    tp = S((ref + (high - ref) // 2) // INST.tick_size * INST.tick_size)
    params = {"stop_loss": S(ref - R("1000")), "take_profit": tp}
    r = run(session, [submit(START, SELL, "1", "oco", params)], INST)
    view = assert_done(r)
    stop, exit_ = r.children()
    assert stop.order_type is OrderType.STOP_MARKET and stop.status is OrderStatus.CANCELED
    assert exit_.order_type is OrderType.MARKET and exit_.status is OrderStatus.FILLED
    assert view.reason == "take_profit reached"
    assert exit_.ts_init > stop.ts_last - 1  # the exit was sent once the stop was cancelled


@pytest.mark.parametrize(
    ("qty", "urgency", "selected"),
    [("0.5", "high", "market"), ("0.5", "normal", "chaser"), ("150", "normal", "pov")],
)
def test_auto_measures_the_book_depth(
    session: list[MarketData], qty: str, urgency: str, selected: str
) -> None:
    r = run(
        first_minutes(session, 1),
        [submit(START, BUY, qty, "auto", {}, urgency=urgency)],
        INST,
    )
    params = started_params(r)
    assert params["selected"] == selected
    assert "of the depth within 10 bps" in params["reason"]


def test_book_runs_are_deterministic(session: list[MarketData]) -> None:
    params = {"duration": "2m", "slices": 6, "randomize_size": 0.4, "randomize_time": 0.4}

    def rows() -> list[Any]:
        r = run(first_minutes(session, 3), [submit(START, BUY, "1", "twap", params)], INST)
        journal = r.engine.journal
        assert isinstance(journal, MemoryJournal)
        return journal.rows

    assert rows() == rows()


# == hand-built books ==========================================================================
T0 = 1_700_000_000 * SEC


def _book(ts: int, asks: list[tuple[str, str]]) -> BookSnapshot:
    return BookSnapshot(
        IID,
        ts,
        (BookLevel(R("99"), R("5")),),
        tuple(BookLevel(R(p), R(q)) for p, q in asks),
    )


@pytest.mark.parametrize("retries", [0, 1])
def test_market_on_a_thin_book_reports_or_retries_the_remainder(retries: int) -> None:
    data = [
        _book(T0, [("100", "1")]),
        BookDeltas(IID, T0 + SEC, (), (BookLevel(R("100.5"), R("1")),)),
        BookDeltas(IID, T0 + 2 * SEC, (), ()),
    ]
    r = run(data, [submit(0, BUY, "2", "market", {"max_retries": retries})], INST)
    view = r.view()
    children = r.children()
    assert children[0].filled_qty == R("1") and children[0].status is OrderStatus.CANCELED
    if retries:
        assert_done(r)
        assert len(children) == 2
    else:
        assert view.status is ParentStatus.FAILED and view.filled_qty == R("1")
        assert view.reason == "child drv-P1-c1 CANCELED: not enough liquidity"
