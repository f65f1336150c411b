"""Matching in the simulated venue, driven end to end through the engine.

Every expected price, quantity and liquidity flag below is worked out by hand from
the fill rules in ``tradepilot.venues.sim.venue`` (module docstring). Unless a test
says otherwise the instrument has tick 0.01, lot 0.001 and no fees, the account is
CASH with 100000 USDT and 10 BTC, and latency is zero.
"""

from __future__ import annotations

from typing import Any

import pytest

from sim_helpers import (
    IID,
    MIDNIGHT,
    MIN,
    SEC,
    R,
    S,
    Scripted,
    bar,
    deltas,
    event_names,
    fill_times,
    fills,
    journal_events,
    last_event,
    make_instrument,
    order,
    run,
    snapshot,
    trade,
)
from tradepilot.model.data import Bar
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from tradepilot.model.events import (
    CancelOrder,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderModifyRejected,
    OrderRejected,
    OrderTriggered,
    OrderUpdated,
)
from tradepilot.venues.sim.models import FillModel, LatencyModel

ST = OrderStatus
MKT, LMT, STP, STL = (
    OrderType.MARKET,
    OrderType.LIMIT,
    OrderType.STOP_MARKET,
    OrderType.STOP_LIMIT,
)
T, M = "TAKER", "MAKER"
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def place(
    side: OrderSide,
    qty: str,
    order_type: OrderType = MKT,
    tif: TimeInForce = TimeInForce.GTC,
    **kwargs: Any,
) -> Any:
    """A script action that submits one order."""

    def action(s: Scripted) -> Any:
        return s.submit(IID, side, qty, order_type=order_type, time_in_force=tif, **kwargs)

    return action


def cancel(cid: str = "s-1") -> Any:
    return lambda s: s.cancel(cid)


def modify(cid: str = "s-1", **kwargs: Any) -> Any:
    return lambda s: s.modify(cid, **kwargs)


def both(*actions: Any) -> Any:
    def action(s: Scripted) -> None:
        for a in actions:
            result = a(s)
            if result is not None:
                s.placed.append(result)

    return action


# ==================================================================================================
# Order type x time in force x data kind
# ==================================================================================================
# Each data kind has one fixed path and one buy order of quantity 1 per type. The expected
# outcome is (final status, fills as (data index, qty, price, liquidity), index of the data
# item at which the order closed or None).
TIFS = list(TimeInForce)
TYPES = [MKT, LMT, STP, STL]
Fill = tuple[int, str, str, str]
Expect = tuple[OrderStatus, list[Fill], int | None]


def _table(rows: dict[OrderType, dict[TimeInForce, Expect]]) -> list[Any]:
    return [
        pytest.param(t, tif, rows[t][tif], id=f"{t.value}-{tif.value}")
        for t in TYPES
        for tif in TIFS
    ]


def _same(expect: Expect, **overrides: Expect) -> dict[TimeInForce, Expect]:
    out = dict.fromkeys(TIFS, expect)
    out.update({TimeInForce(k): v for k, v in overrides.items()})
    return out


# -- bars ------------------------------------------------------------------------------------------
# The order is decided on bar 0 (at its close, 23:59:00) and first eligible on bar 1.
#   bar 1 closes up   (O100 H104 L96 C102): path 100 -> 96 -> 104 -> 102
#   bar 2 closes down (O102 H103 L90 C95):  path 102 -> 103 -> 90 -> 95, opens at midnight
# MARKET fills at bar 1's open. LIMIT 97 is touched on the way down to 96. STOP_MARKET 103
# triggers on the way up to 104 and fills at the trigger. STOP_LIMIT 103/99 triggers on the
# way up to 104, then bar 1 only falls back to 102, so it rests and bar 2 falls through 99.
# GTD expires at midnight (bar 1's close) and DAY at the end of the day it was accepted
# (also midnight): both expire before bar 2 is matched. A FOK that is not marketable on
# arrival (limits below the market, every stop) is cancelled at once.
BARS = [
    bar(0, "100", "101", "99", "100"),
    bar(1, "100", "104", "96", "102"),
    bar(2, "102", "103", "90", "95"),
    bar(3, "95", "96", "94", "95"),
]
BAR_ARGS: dict[OrderType, dict[str, str]] = {
    MKT: {},
    LMT: {"price": "97"},
    STP: {"trigger_price": "103"},
    STL: {"trigger_price": "103", "price": "99"},
}
FOK_KILL: Expect = (ST.CANCELED, [], 0)
BAR_TABLE = {
    MKT: _same((ST.FILLED, [(1, "1", "100", T)], 1)),
    LMT: _same((ST.FILLED, [(1, "1", "97", M)], 1), FOK=FOK_KILL),
    STP: _same((ST.FILLED, [(1, "1", "103", T)], 1), FOK=FOK_KILL),
    STL: _same(
        (ST.FILLED, [(2, "1", "99", M)], 2),
        IOC=(ST.CANCELED, [], 1),
        FOK=FOK_KILL,
        GTD=(ST.EXPIRED, [], 2),
        DAY=(ST.EXPIRED, [], 2),
    ),
}

# -- trade ticks -----------------------------------------------------------------------------------
#   t0 23:59:50 100 x 10 (decision) | t1 23:59:51 101 x 5
#   t2 23:59:52 99 x 0.4             | t3 00:00:01 98.5 x 5
# MARKET and STOP_MARKET 101 fill in full at t1's price. LIMIT 99 and STOP_LIMIT 101/99
# (triggered by t1, not marketable at 101) fill 0.4 at 99 on t2 (capped by the trade size)
# and the rest at their own price 99 on t3. GTD (23:59:51.5) expires before t2; DAY keeps
# t2's partial fill and expires at t3 (after midnight). IOC is cancelled after t1.
TICKS = [
    trade(MIDNIGHT - 10 * SEC, "100", "10"),
    trade(MIDNIGHT - 9 * SEC, "101", "5"),
    trade(MIDNIGHT - 8 * SEC, "99", "0.4"),
    trade(MIDNIGHT + 1 * SEC, "98.5", "5"),
]
TICK_ARGS: dict[OrderType, dict[str, str]] = {
    MKT: {},
    LMT: {"price": "99"},
    STP: {"trigger_price": "101"},
    STL: {"trigger_price": "101", "price": "99"},
}
TWO_STEP = [(2, "0.4", "99", M), (3, "0.6", "99", M)]
TICK_TABLE = {
    MKT: _same((ST.FILLED, [(1, "1", "101", T)], 1)),
    LMT: _same(
        (ST.FILLED, TWO_STEP, 3),
        IOC=(ST.CANCELED, [], 1),
        FOK=FOK_KILL,
        GTD=(ST.EXPIRED, [], 2),
        DAY=(ST.EXPIRED, TWO_STEP[:1], 3),
    ),
    STP: _same((ST.FILLED, [(1, "1", "101", T)], 1), FOK=FOK_KILL),
    STL: _same(
        (ST.FILLED, TWO_STEP, 3),
        IOC=(ST.CANCELED, [], 1),
        FOK=FOK_KILL,
        GTD=(ST.EXPIRED, [], 2),
        DAY=(ST.EXPIRED, TWO_STEP[:1], 3),
    ),
}

# -- L2 book ---------------------------------------------------------------------------------------
#   s0 23:59:50 snapshot  bids 99 x 1, 98 x 2 | asks 101 x 0.5, 102 x 1, 103 x 5   (decision)
#   d1 23:59:51 ask 101 removed: best ask 102
#   tr 23:59:52 trade 99 x 2, seller-initiated
#   d3 00:00:01 bid 98 -> 3
# MARKET walks the asks at once: 0.5 @ 101, 0.5 @ 102. LIMIT 99 joins the bid queue behind 1;
# the 2 traded at 99 clear the 1 ahead and fill it. STOP_MARKET 102 triggers on d1 (best ask
# 102) and takes 1 @ 102. STOP_LIMIT 102/101.5 triggers on d1 but no ask is at or below 101.5,
# so it rests as a bid at 101.5 with nobody ahead; the trade at 99 goes through it and fills
# it at 101.5 as maker. On a book, IOC and FOK stops are cancelled on arrival; GTD
# (23:59:51.5) expires before the trade; DAY orders are all done before midnight.
BOOK = [
    snapshot(
        MIDNIGHT - 10 * SEC,
        [("99", "1"), ("98", "2")],
        [("101", "0.5"), ("102", "1"), ("103", "5")],
    ),
    deltas(MIDNIGHT - 9 * SEC, asks=[("101", "0")]),
    trade(MIDNIGHT - 8 * SEC, "99", "2", aggressor=-1),
    deltas(MIDNIGHT + 1 * SEC, bids=[("98", "3")]),
]
BOOK_ARGS: dict[OrderType, dict[str, str]] = {
    MKT: {},
    LMT: {"price": "99"},
    STP: {"trigger_price": "102"},
    STL: {"trigger_price": "102", "price": "101.5"},
}
BOOK_TABLE = {
    MKT: _same((ST.FILLED, [(0, "0.5", "101", T), (0, "0.5", "102", T)], 0)),
    LMT: _same(
        (ST.FILLED, [(2, "1", "99", M)], 2),
        IOC=(ST.CANCELED, [], 0),
        FOK=(ST.CANCELED, [], 0),
        GTD=(ST.EXPIRED, [], 2),
    ),
    STP: _same((ST.FILLED, [(1, "1", "102", T)], 1), IOC=FOK_KILL, FOK=FOK_KILL),
    STL: _same(
        (ST.FILLED, [(2, "1", "101.5", M)], 2),
        IOC=FOK_KILL,
        FOK=FOK_KILL,
        GTD=(ST.EXPIRED, [], 2),
    ),
}


def _check_table_case(
    data: list[Any],
    args: dict[str, str],
    order_type: OrderType,
    tif: TimeInForce,
    expect: Expect,
    gtd_expire: int,
) -> None:
    expire = gtd_expire if tif is TimeInForce.GTD else None
    engine = run(data, {0: place(BUY, "1", order_type, tif, expire_ts=expire, **args)})
    status, expected_fills, closed_at = expect
    o = order(engine)
    assert o.status is status, event_names(engine)
    assert fills(engine) == [(q, p, liq) for _, q, p, liq in expected_fills]
    # on bars a fill at the open is stamped at the open (zero latency), later ones at the close
    assert fill_times(engine) == [
        data[i].ts_open if isinstance(data[i], Bar) and R(p) == data[i].open else data[i].ts
        for i, _, p, _ in expected_fills
    ]
    if closed_at is not None:
        item = data[closed_at]
        # a bar expires orders at its open, before matching; everything else at its ts
        expected_ts = item.ts_open if status is ST.EXPIRED and isinstance(item, Bar) else item.ts
        if status is ST.FILLED and expected_fills:
            expected_ts = fill_times(engine)[-1]  # a filled order closes with its last fill
        assert o.ts_last == expected_ts
    if status is ST.EXPIRED:
        assert isinstance(o.events[-1], OrderExpired)
    if status is ST.CANCELED:
        assert last_event(engine, OrderCanceled).reason


@pytest.mark.parametrize(("order_type", "tif", "expect"), _table(BAR_TABLE))
def test_bars_type_by_tif(order_type: OrderType, tif: TimeInForce, expect: Expect) -> None:
    _check_table_case(BARS, BAR_ARGS[order_type], order_type, tif, expect, gtd_expire=MIDNIGHT)


@pytest.mark.parametrize(("order_type", "tif", "expect"), _table(TICK_TABLE))
def test_trade_ticks_type_by_tif(order_type: OrderType, tif: TimeInForce, expect: Expect) -> None:
    gtd = MIDNIGHT - 8 * SEC - SEC // 2
    _check_table_case(TICKS, TICK_ARGS[order_type], order_type, tif, expect, gtd_expire=gtd)


@pytest.mark.parametrize(("order_type", "tif", "expect"), _table(BOOK_TABLE))
def test_l2_book_type_by_tif(order_type: OrderType, tif: TimeInForce, expect: Expect) -> None:
    gtd = MIDNIGHT - 8 * SEC - SEC // 2
    _check_table_case(BOOK, BOOK_ARGS[order_type], order_type, tif, expect, gtd_expire=gtd)


def test_stop_limit_on_bars_is_triggered_before_it_rests() -> None:
    engine = run(BARS[:2], {0: place(BUY, "1", STL, trigger_price="103", price="99")})
    assert order(engine).status is ST.ACCEPTED and order(engine).triggered
    assert last_event(engine, OrderTriggered).ts == BARS[1].ts


# ==================================================================================================
# Bars
# ==================================================================================================
def test_bar_order_never_fills_on_the_bar_it_was_decided_on() -> None:
    # bar 0's own range (99-101) contains the limit; it must not be used
    data = [bar(0, "100", "101", "99", "100"), bar(1, "100.2", "100.5", "100.1", "100.4")]
    engine = run(data, {0: both(place(BUY, "1"), place(BUY, "1", LMT, price="100.5"))})
    # market: bar 1's open; the marketable limit too, as a taker
    assert fills(engine, "s-1") == [("1", "100.2", T)]
    assert fills(engine, "s-2") == [("1", "100.2", T)]
    # stamped when they happened: at bar 1's open, not at its close
    assert fill_times(engine, "s-1") == fill_times(engine, "s-2") == [data[1].ts_open]


@pytest.mark.parametrize(
    ("latency", "fill_bar"),
    [(0, 1), (1, 1), (SEC, 1), (MIN - 1, 1), (MIN, 2), (MIN + 1, 2)],
    ids=["zero", "1ns", "1s", "one-bar-1ns", "one-bar", "one-bar+1ns"],
)
def test_bar_latency_stamps_fills_at_open_plus_latency(latency: int, fill_bar: int) -> None:
    """An order is matched on the bar during which it arrives, at that bar's open, and its
    fill is stamped at its arrival: a 50 ms latency costs 50 ms, not a whole bar."""
    data = [
        bar(0, "100", "101", "99", "100"),
        bar(1, "105", "106", "104", "105"),
        bar(2, "110", "111", "109", "110"),
        bar(3, "115", "116", "114", "115"),
    ]
    engine = run(data, {0: place(BUY, "1")}, latency_ns=latency)
    assert fills(engine) == [("1", S(data[fill_bar].open), T)]
    arrival = data[0].ts + latency
    assert last_event(engine, OrderAccepted).ts == arrival
    assert fill_times(engine) == [max(arrival, data[fill_bar].ts_open)]
    assert fill_times(engine)[0] - data[0].ts == latency  # time to fill = the latency


def test_intrabar_fills_are_stamped_at_the_close() -> None:
    data = [bar(0, "100", "101", "99", "100"), bar(1, "100", "104", "96", "102")]
    engine = run(data, {0: place(BUY, "1", LMT, price="97")})
    assert fills(engine) == [("1", "97", M)]
    assert fill_times(engine) == [data[1].ts]


UP = ("100", "104", "96", "102")  # O -> L -> H -> C
DOWN = ("100", "104", "96", "98")  # O -> H -> L -> C


@pytest.mark.parametrize(
    ("side", "order_type", "trigger", "price", "shape", "expected"),
    [
        # buy stop-limit 103/99: triggered on the way up to 104; only a down bar then falls to 99
        (BUY, STL, "103", "99", UP, None),
        (BUY, STL, "103", "99", DOWN, ("99", M)),
        # sell stop-limit 97/101: triggered on the way down to 96; only an up bar then rises to 101
        (SELL, STL, "97", "101", UP, ("101", M)),
        (SELL, STL, "97", "101", DOWN, None),
        # a stop-market fills at its trigger whichever way the bar went
        (BUY, STP, "103", None, UP, ("103", T)),
        (BUY, STP, "103", None, DOWN, ("103", T)),
        (SELL, STP, "97", None, UP, ("97", T)),
        (SELL, STP, "97", None, DOWN, ("97", T)),
        # a limit inside the range fills at its price, as maker
        (BUY, LMT, None, "97", UP, ("97", M)),
        (BUY, LMT, None, "97", DOWN, ("97", M)),
        (SELL, LMT, None, "103", UP, ("103", M)),
        (SELL, LMT, None, "103", DOWN, ("103", M)),
    ],
)
def test_intrabar_path(
    side: OrderSide,
    order_type: OrderType,
    trigger: str | None,
    price: str | None,
    shape: tuple[str, str, str, str],
    expected: tuple[str, str] | None,
) -> None:
    data = [bar(0, "100", "101", "99", "100"), bar(1, *shape)]
    kwargs = {k: v for k, v in (("trigger_price", trigger), ("price", price)) if v is not None}
    engine = run(data, {0: place(side, "1", order_type, **kwargs)})
    if expected is None:
        assert order(engine).status is ST.ACCEPTED
        assert order(engine).triggered
        assert fills(engine) == []
    else:
        assert fills(engine) == [("1", *expected)]
        assert fill_times(engine) == [data[1].ts]


@pytest.mark.parametrize(
    ("side", "order_type", "trigger", "price", "ohlc", "expected"),
    [
        # the bar opens through the limit: fill at the open (price improvement), still resting
        (BUY, LMT, None, "99", ("95", "97", "94", "96"), ("95", M)),
        (SELL, LMT, None, "101", ("106", "107", "105", "105.5"), ("106", M)),
        # the bar opens through the stop: fill at the open, as taker
        (BUY, STP, "103", None, ("106", "107", "105", "106.5"), ("106", T)),
        (SELL, STP, "97", None, ("94", "95", "93", "93.5"), ("94", T)),
        # stop-limit triggered at a gapped open that is within the limit: taker at the open
        (BUY, STL, "103", "108", ("106", "107", "105", "106.5"), ("106", T)),
        (SELL, STL, "97", "92", ("94", "95", "93", "93.5"), ("94", T)),
        # stop-limit triggered at a gapped open beyond the limit: rests, then the down bar
        # (106 -> 107 -> 101) comes back to 104 and fills it there as maker
        (BUY, STL, "103", "104", ("106", "107", "101", "102"), ("104", M)),
    ],
)
def test_gap_through_fills_at_the_open(
    side: OrderSide,
    order_type: OrderType,
    trigger: str | None,
    price: str | None,
    ohlc: tuple[str, str, str, str],
    expected: tuple[str, str],
) -> None:
    data = [bar(0, "100", "101", "99", "100"), bar(1, *ohlc)]
    kwargs = {k: v for k, v in (("trigger_price", trigger), ("price", price)) if v is not None}
    engine = run(data, {0: place(side, "1", order_type, **kwargs)})
    assert fills(engine) == [("1", *expected)]


@pytest.mark.parametrize(
    ("side", "price", "ohlc", "expected"),
    [
        # marketable on arrival (at or through the last close 100): taker at the next open
        (BUY, "102", ("101", "103", "100.5", "102"), ("101", T)),
        (SELL, "99", ("99.5", "100", "98", "98.5"), ("99.5", T)),
        # marketable on arrival but the next bar opens beyond it: it waits on the path
        # (103 -> 104 -> 101) and fills at its own price as maker
        (BUY, "102", ("103", "104", "101", "101.5"), ("102", M)),
    ],
)
def test_marketable_limit_on_bars(
    side: OrderSide, price: str, ohlc: tuple[str, str, str, str], expected: tuple[str, str]
) -> None:
    data = [bar(0, "100", "101", "99", "100"), bar(1, *ohlc)]
    engine = run(data, {0: place(side, "1", LMT, price=price)})
    assert fills(engine) == [("1", *expected)]


@pytest.mark.parametrize(
    ("mode", "side", "price", "expected"),
    [
        (FillModel().limit_fill, BUY, "96", "96"),  # the default is touch
        ("touch", BUY, "96", "96"),
        ("through", BUY, "96", None),
        ("through", BUY, "96.01", "96.01"),
        ("touch", SELL, "104", "104"),
        ("through", SELL, "104", None),
        ("through", SELL, "103.99", "103.99"),
    ],
)
def test_limit_touch_vs_through_on_bars(
    mode: str, side: OrderSide, price: str, expected: str | None
) -> None:
    data = [bar(0, "100", "101", "99", "100"), bar(1, *UP)]  # low 96, high 104
    engine = run(
        data,
        {0: place(side, "1", LMT, price=price)},
        fill_model=FillModel(limit_fill=mode),  # type: ignore[arg-type]
    )
    if expected is None:
        assert order(engine).status is ST.ACCEPTED and fills(engine) == []
    else:
        assert fills(engine) == [("1", expected, M)]


@pytest.mark.parametrize(
    ("side", "order_type", "kwargs", "expected"),
    [
        (BUY, MKT, {}, "100.03"),
        (SELL, MKT, {}, "99.97"),
        (BUY, STP, {"trigger_price": "103"}, "103.03"),  # a triggered stop is a market order
        (BUY, LMT, {"price": "97"}, "97"),  # limits never slip
    ],
)
def test_bar_slippage_ticks(
    side: OrderSide, order_type: OrderType, kwargs: dict[str, str], expected: str
) -> None:
    data = [bar(0, "100", "101", "99", "100"), bar(1, *UP)]
    engine = run(
        data,
        {0: place(side, "1", order_type, **kwargs)},
        fill_model=FillModel(bar_slippage_ticks=3),
    )
    assert fills(engine)[0][1] == expected


def test_bar_volume_participation_splits_a_market_order_over_bars() -> None:
    # 25 % of a volume of 2 = 0.5 per bar
    data = [
        bar(0, "100", "101", "99", "100"),
        bar(1, "101", "102", "100", "101", volume="2"),
        bar(2, "102", "103", "101", "102", volume="2"),
    ]
    engine = run(
        data,
        {0: place(BUY, "1")},
        fill_model=FillModel(bar_volume_participation=0.25),
    )
    assert fills(engine) == [("0.5", "101", T), ("0.5", "102", T)]
    assert order(engine).status is ST.FILLED


# ==================================================================================================
# Trade ticks
# ==================================================================================================
TICKS3 = [trade(SEC, "100", "10"), trade(2 * SEC, "101", "10"), trade(3 * SEC, "98", "10")]


@pytest.mark.parametrize(("side", "expected"), [(BUY, "101.02"), (SELL, "100.98")])
def test_tick_market_fills_at_next_trade_plus_slippage(side: OrderSide, expected: str) -> None:
    engine = run(TICKS3, {0: place(side, "1")}, fill_model=FillModel(market_slippage_ticks=2))
    assert fills(engine) == [("1", expected, T)]
    assert fill_times(engine) == [TICKS3[1].ts]


def test_tick_resting_limit_fills_at_its_own_price() -> None:
    # the trade at 98 goes through the buy limit at 99: the fill is at 99, not 98
    engine = run(TICKS3, {0: place(BUY, "1", LMT, price="99")})
    assert fills(engine) == [("1", "99", M)]
    assert fill_times(engine) == [TICKS3[2].ts]


@pytest.mark.parametrize(("side", "price"), [(BUY, "101"), (SELL, "99.5"), (BUY, "100")])
def test_tick_marketable_limit_takes_at_the_last_trade(side: OrderSide, price: str) -> None:
    # the last trade (100 x 0.3) is smaller than the order: a taker is not capped
    data = [trade(SEC, "100", "0.3"), trade(2 * SEC, "105", "1")]
    engine = run(data, {0: place(side, "1", LMT, price=price)})
    assert fills(engine) == [("1", "100", T)]
    assert fill_times(engine) == [data[0].ts]


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        (True, [("0.3", "99", M), ("0.3", "99", M), ("0.4", "99", M)]),
        (False, [("1", "99", M)]),
    ],
)
def test_tick_partial_fills_capped_by_trade_size(
    cap: bool, expected: list[tuple[str, str, str]]
) -> None:
    data = [
        trade(SEC, "100"),
        trade(2 * SEC, "99", "0.3"),
        trade(3 * SEC, "99", "0.3"),
        trade(4 * SEC, "98", "5"),
    ]
    engine = run(
        data,
        {0: place(BUY, "1", LMT, price="99")},
        fill_model=FillModel(cap_limit_fills_to_trade_size=cap),
    )
    assert fills(engine) == expected
    assert order(engine).status is ST.FILLED


def test_tick_trade_size_is_shared_by_resting_orders_in_arrival_order() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "99", "0.4")]
    engine = run(
        data,
        {0: both(place(BUY, "0.3", LMT, price="99"), place(BUY, "0.3", LMT, price="99"))},
    )
    assert fills(engine, "s-1") == [("0.3", "99", M)]
    assert fills(engine, "s-2") == [("0.1", "99", M)]
    assert order(engine, "s-2").status is ST.PARTIALLY_FILLED


@pytest.mark.parametrize(
    ("mode", "trade_px", "filled"),
    [("touch", "99", True), ("through", "99", False), ("through", "98.99", True)],
)
def test_tick_limit_touch_vs_through(mode: str, trade_px: str, filled: bool) -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, trade_px, "5")]
    engine = run(
        data,
        {0: place(BUY, "1", LMT, price="99")},
        fill_model=FillModel(limit_fill=mode),  # type: ignore[arg-type]
    )
    assert fills(engine) == ([("1", "99", M)] if filled else [])


# ==================================================================================================
# L2 book
# ==================================================================================================
T0 = 10 * SEC
BOOK0 = snapshot(T0, [("99", "1"), ("98", "2")], [("101", "0.5"), ("102", "1"), ("103", "5")])


def book_run(*later: Any, script: dict[int | str, Any], **kwargs: Any) -> Any:
    return run([BOOK0, *later], script, **kwargs)


def test_market_buy_walks_the_asks() -> None:
    engine = book_run(script={0: place(BUY, "3")})
    assert fills(engine) == [("0.5", "101", T), ("1", "102", T), ("1.5", "103", T)]
    # VWAP = (0.5*101 + 1*102 + 1.5*103) / 3 = (50.5 + 102 + 154.5) / 3 = 307 / 3
    assert order(engine).avg_px == R("102.333333333")
    assert order(engine).status is ST.FILLED
    assert fill_times(engine) == [T0] * 3


def test_market_sell_walks_the_bids() -> None:
    engine = book_run(script={0: place(SELL, "2.5")})
    assert fills(engine) == [("1", "99", T), ("1.5", "98", T)]
    # (99 + 147) / 2.5 = 98.4
    assert order(engine).avg_px == R("98.4")


def test_market_order_beyond_the_depth_cancels_the_remainder() -> None:
    engine = book_run(script={0: place(BUY, "8")})
    assert fills(engine) == [("0.5", "101", T), ("1", "102", T), ("5", "103", T)]
    o = order(engine)
    assert o.status is ST.CANCELED
    assert o.filled_qty == R("6.5")
    assert "liquidity" in last_event(engine, OrderCanceled).reason


def test_our_own_fills_take_liquidity_until_the_level_updates() -> None:
    """Two market buys in a row: the second cannot take the asks the first one took."""
    engine = book_run(
        deltas(T0 + SEC, asks=[("101", "2")]),
        script={0: both(place(BUY, "1"), place(BUY, "1")), 1: place(BUY, "1")},
    )
    assert fills(engine, "s-1") == [("0.5", "101", T), ("0.5", "102", T)]
    assert fills(engine, "s-2") == [("0.5", "102", T), ("0.5", "103", T)]
    # the exchange re-published 101 with size 2: that level is whole again
    assert fills(engine, "s-3") == [("1", "101", T)]


def sell_trade(ts: int, price: str, size: str) -> Any:
    return trade(ts, price, size, aggressor=-1)


def test_resting_limit_waits_for_the_queue_ahead() -> None:
    engine = book_run(
        sell_trade(T0 + 1, "99", "0.6"),  # 1 ahead -> 0.4 ahead
        sell_trade(T0 + 2, "99", "0.6"),  # 0.4 clears the queue, 0.2 for us
        sell_trade(T0 + 3, "99", "5"),  # the remaining 0.8
        script={0: place(BUY, "1", LMT, price="99")},
    )
    assert fills(engine) == [("0.2", "99", M), ("0.8", "99", M)]
    assert fill_times(engine) == [T0 + 2, T0 + 3]


def test_buyer_initiated_trades_do_not_fill_resting_bids() -> None:
    engine = book_run(
        trade(T0 + 1, "99", "5", aggressor=1),
        script={0: place(BUY, "1", LMT, price="99")},
    )
    assert fills(engine) == []


def test_cancellations_ahead_shrink_the_queue_and_growth_behind_does_not() -> None:
    engine = book_run(
        deltas(T0 + 1, bids=[("99", "0.3")]),  # 0.7 cancelled ahead of us: 0.3 ahead
        sell_trade(T0 + 2, "99", "0.5"),  # 0.3 ahead, 0.2 for us
        deltas(T0 + 3, bids=[("99", "4")]),  # new orders join behind us
        sell_trade(T0 + 4, "99", "0.5"),  # all ours
        script={0: place(BUY, "1", LMT, price="99")},
    )
    assert fills(engine) == [("0.2", "99", M), ("0.5", "99", M)]


def test_trade_through_the_price_fills_regardless_of_the_queue() -> None:
    engine = book_run(
        sell_trade(T0 + 1, "98.5", "0.5"),
        script={0: place(BUY, "1", LMT, price="99")},
    )
    assert fills(engine) == [("0.5", "99", M)]


def test_a_book_cross_without_trades_fills_nothing_by_default() -> None:
    # bid 100 is inside the spread (nobody ahead); an ask appears at 100 x 0.4, nothing trades
    engine = book_run(
        deltas(T0 + 1, asks=[("100", "0.4")]),
        script={0: place(BUY, "1", LMT, price="100")},
    )
    assert fills(engine) == []


def test_a_book_cross_fills_a_capped_share_of_what_traded() -> None:
    # 0.3 traded at or through 100 within the last second; the ask at 100 shows 4:
    # the allowance is min(10 % of 4, 0.3 traded) = 0.3; then another cross, nothing new traded
    engine = book_run(
        trade(T0 + 1, "100", "0.3", aggressor=1),  # a buyer lifts an ask at 100: not ours
        deltas(T0 + 2, asks=[("100", "4")]),
        deltas(T0 + 3, asks=[("100", "5")]),
        script={0: place(BUY, "1", LMT, price="100")},
    )
    assert fills(engine) == [("0.3", "100", M)]
    # outside the window the same trade no longer counts
    late = book_run(
        trade(T0 + 1, "100", "0.3", aggressor=1),
        deltas(T0 + 2 * SEC, asks=[("100", "4")]),
        script={0: place(BUY, "1", LMT, price="100")},
    )
    assert fills(late) == []


def test_the_crossing_share_caps_a_cross_with_heavy_trading() -> None:
    engine = book_run(
        trade(T0 + 1, "99.5", "50", aggressor=1),
        deltas(T0 + 2, asks=[("100", "4")]),
        script={0: place(BUY, "1", LMT, price="100")},
    )
    assert fills(engine) == [("0.4", "100", M)]  # 10 % of the 4 displayed


def test_the_generous_crossing_rule_is_still_available() -> None:
    engine = book_run(
        deltas(T0 + 1, asks=[("100", "0.4")]),
        script={0: place(BUY, "1", LMT, price="100")},
        fill_model=FillModel(book_cross_share=1.0, book_cross_window_ns=None),
    )
    assert fills(engine) == [("0.4", "100", M)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"book_cross_share": -0.1},
        {"book_cross_share": 1.5},
        {"book_cross_share": float("nan")},
        {"book_cross_window_ns": 0},
    ],
)
def test_bad_crossing_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FillModel(**kwargs)


def test_marketable_limit_takes_then_rests() -> None:
    # buy 2 @ 102: takes 0.5 @ 101 and 1 @ 102, rests 0.5 at 102
    engine = book_run(script={0: place(BUY, "2", LMT, price="102")})
    assert fills(engine) == [("0.5", "101", T), ("1", "102", T)]
    assert order(engine).status is ST.PARTIALLY_FILLED
    assert engine.venue.open_order_ids() == ["s-1"]


@pytest.mark.parametrize(
    ("kwargs", "accepted"),
    [
        ({"order_type": LMT, "price": "101"}, False),  # would take the ask at 101
        ({"order_type": LMT, "price": "102"}, False),
        ({"order_type": MKT}, False),
        ({"order_type": LMT, "price": "100"}, True),  # inside the spread: rests
        ({"order_type": LMT, "price": "99"}, True),
    ],
)
def test_post_only(kwargs: dict[str, Any], accepted: bool) -> None:
    engine = book_run(script={0: lambda s: s.buy(IID, "1", post_only=True, **kwargs)})
    o = order(engine)
    if accepted:
        assert o.status is ST.ACCEPTED and fills(engine) == []
    else:
        assert o.status is ST.REJECTED
        assert "post-only" in last_event(engine, OrderRejected).reason


@pytest.mark.parametrize(
    ("second", "status", "reason"),
    [
        (lambda s: s.buy(IID, "0.5", reduce_only=True), ST.REJECTED, "increase"),
        (lambda s: s.sell(IID, "2", reduce_only=True), ST.REJECTED, "larger"),
        (lambda s: s.sell(IID, "1", reduce_only=True), ST.FILLED, None),
        (lambda s: s.sell(IID, "0.4", reduce_only=True), ST.FILLED, None),
    ],
    ids=["increase", "too-large", "close", "reduce"],
)
def test_reduce_only_against_a_long_position(second: Any, status: OrderStatus, reason: str) -> None:
    # first buy 1 at market: 0.5 @ 101 + 0.5 @ 102 -> long 1
    engine = book_run(
        deltas(T0 + 1, bids=[("97", "1")]),
        script={0: place(BUY, "1"), 1: second},
    )
    assert order(engine, "s-2").status is status
    if reason:
        assert reason in last_event(engine, OrderRejected, "s-2").reason


def test_reduce_only_when_flat_is_rejected() -> None:
    engine = book_run(script={0: lambda s: s.sell(IID, "1", reduce_only=True)})
    assert order(engine).status is ST.REJECTED
    assert "increase" in last_event(engine, OrderRejected).reason


def test_cancel_a_resting_order() -> None:
    engine = book_run(
        deltas(T0 + 1, bids=[("97", "1")]),
        sell_trade(T0 + 2, "98", "5"),
        script={0: place(BUY, "1", LMT, price="99"), 1: cancel()},
    )
    o = order(engine)
    assert o.status is ST.CANCELED
    assert event_names(engine)[-2:] == ["OrderPendingCancel", "OrderCanceled"]
    assert fills(engine) == []
    assert engine.venue.open_order_ids() == []
    assert any(isinstance(e, CancelOrder) for e in journal_events(engine))


def test_cancel_of_a_closed_order_is_rejected_by_the_order_manager() -> None:
    engine = book_run(
        deltas(T0 + 1, bids=[("97", "1")]),
        script={0: place(BUY, "1"), 1: cancel()},
    )
    assert order(engine).status is ST.FILLED
    rejects = [e for e in engine.strategies[0].seen if isinstance(e, OrderCancelRejected)]
    assert rejects and rejects[0].reason


def test_modify_price_moves_the_order_to_the_back_of_the_new_level() -> None:
    engine = book_run(
        deltas(T0 + 1, bids=[("97", "1")]),
        sell_trade(T0 + 2, "98", "2"),  # exactly the 2 ahead of us at 98
        sell_trade(T0 + 3, "98", "1"),
        script={0: place(BUY, "1", LMT, price="99"), 1: modify(price="98")},
    )
    o = order(engine)
    assert o.price == R("98")
    assert isinstance(last_event(engine, OrderUpdated), OrderUpdated)
    assert fills(engine) == [("1", "98", M)]
    assert fill_times(engine) == [T0 + 3]


@pytest.mark.parametrize(
    ("new_qty", "expected_fills", "locked"),
    [
        # more quantity: back of the queue (1 ahead again), so the next 0.5 traded is not ours
        ("2", [("0.2", "99", M)], "178.2"),
        # less quantity: keeps its place (0.2 ahead), so it gets 0.3 of the next 0.5
        ("0.5", [("0.2", "99", M), ("0.3", "99", M)], "0"),
    ],
    ids=["increase-loses-priority", "decrease-keeps-priority"],
)
def test_modify_quantity_and_queue_priority(
    new_qty: str, expected_fills: list[tuple[str, str, str]], locked: str
) -> None:
    engine = book_run(
        sell_trade(T0 + 1, "99", "1.2"),  # 1 ahead cleared, 0.2 filled, 0.8 left
        deltas(T0 + 2, bids=[("97", "1")]),
        sell_trade(T0 + 3, "99", "0.5"),
        script={0: place(BUY, "1", LMT, price="99"), 2: modify(quantity=new_qty)},
    )
    assert fills(engine) == expected_fills
    assert order(engine).quantity == R(new_qty)
    # what stays locked: 99 x leaves (1.8 -> 178.2), or nothing once filled
    assert S(engine.venue.account.locked.get("USDT", 0)) == locked


def test_modify_below_the_filled_quantity_is_rejected_and_restores_status() -> None:
    engine = book_run(
        sell_trade(T0 + 1, "99", "1.5"),  # 1 ahead, 0.5 for us
        deltas(T0 + 2, bids=[("97", "1")]),
        script={0: place(BUY, "1", LMT, price="99"), 2: modify(quantity="0.5")},
    )
    o = order(engine)
    assert o.status is ST.PARTIALLY_FILLED
    assert o.quantity == R("1")
    assert "filled" in last_event(engine, OrderModifyRejected).reason


def test_cancel_all_cancels_only_the_strategy_s_own_orders() -> None:
    a = Scripted(
        {
            0: both(place(BUY, "1", LMT, price="99"), place(SELL, "1", LMT, price="105")),
            1: lambda s: s.cancel_all(),
        },
        strategy_id="a",
    )
    b = Scripted({0: place(BUY, "1", LMT, price="98")}, strategy_id="b")
    engine = book_run(deltas(T0 + 1, bids=[("97", "1")]), script={}, strategies=[a, b])
    assert order(engine, "a-1").status is ST.CANCELED
    assert order(engine, "a-2").status is ST.CANCELED
    assert order(engine, "b-1").status is ST.ACCEPTED
    assert engine.venue.open_order_ids() == ["b-1"]


def test_ioc_remainder_is_cancelled() -> None:
    engine = book_run(script={0: place(BUY, "2", LMT, TimeInForce.IOC, price="102")})
    assert fills(engine) == [("0.5", "101", T), ("1", "102", T)]
    o = order(engine)
    assert o.status is ST.CANCELED and o.filled_qty == R("1.5")
    assert "IOC" in last_event(engine, OrderCanceled).reason
    assert engine.venue.account.locked.get("USDT", 0) == 0


@pytest.mark.parametrize(
    ("qty", "order_type", "price", "expected"),
    [
        ("2", LMT, "102", []),  # only 1.5 available at or below 102
        ("1.5", LMT, "102", [("0.5", "101", T), ("1", "102", T)]),
        ("7", MKT, None, []),  # 6.5 on the whole ask side
        ("6.5", MKT, None, [("0.5", "101", T), ("1", "102", T), ("5", "103", T)]),
    ],
)
def test_fok_is_all_or_nothing(
    qty: str, order_type: OrderType, price: str | None, expected: list[tuple[str, str, str]]
) -> None:
    kwargs = {"price": price} if price else {}
    engine = book_run(script={0: place(BUY, qty, order_type, TimeInForce.FOK, **kwargs)})
    assert fills(engine) == expected
    o = order(engine)
    if expected:
        assert o.status is ST.FILLED
    else:
        assert o.status is ST.CANCELED and o.filled_qty == 0
        assert "FOK" in last_event(engine, OrderCanceled).reason


def test_book_day_order_expires_at_midnight() -> None:
    data = [
        snapshot(MIDNIGHT - SEC, [("99", "1"), ("98", "2")], [("101", "1")]),
        sell_trade(MIDNIGHT - 1, "99", "3"),  # does not reach 98
        deltas(MIDNIGHT, bids=[("97", "1")]),
    ]
    engine = run(data, {0: place(BUY, "1", LMT, TimeInForce.DAY, price="98")})
    assert order(engine).status is ST.EXPIRED
    assert order(engine).ts_last == MIDNIGHT


def test_gtd_in_the_past_is_rejected() -> None:
    engine = book_run(script={0: place(BUY, "1", LMT, TimeInForce.GTD, price="99", expire_ts=T0)})
    assert order(engine).status is ST.REJECTED
    assert "GTD" in last_event(engine, OrderRejected).reason


# ==================================================================================================
# Orders that race cancels and modifies (latency)
# ==================================================================================================
def test_cancel_that_arrives_after_the_fill_is_rejected_without_breaking_the_run() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100")]
    engine = run(data, {0: both(place(BUY, "1", LMT, price="101"), cancel())})
    o = order(engine)
    assert o.status is ST.FILLED
    assert event_names(engine)[-2:] == ["OrderFilled", "OrderCancelRejected"]


def test_order_rejected_while_its_cancel_is_in_flight() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100")]
    engine = run(data, {0: both(place(BUY, "5000", LMT, price="99"), cancel())}, latency_ns=1000)
    assert order(engine).status is ST.REJECTED
    assert "insufficient" in last_event(engine, OrderRejected).reason


@pytest.mark.parametrize("request_kind", ["cancel", "modify"])
def test_stop_triggered_while_a_request_is_in_flight(request_kind: str) -> None:
    data = [
        trade(SEC, "100"),
        trade(2 * SEC, "100"),
        trade(2 * SEC + 100, "102"),  # triggers the stop before the request arrives
        trade(3 * SEC, "100"),
    ]
    request = cancel() if request_kind == "cancel" else modify(price="98")
    engine = run(
        data,
        {0: place(BUY, "1", STL, trigger_price="101", price="99"), 1: request},
        latency_ns=1_000_000,
    )
    o = order(engine)
    assert o.triggered
    assert o.status is (ST.CANCELED if request_kind == "cancel" else ST.ACCEPTED)


def test_modify_then_cancel_keeps_the_order_pending_cancel_until_it_is_cancelled() -> None:
    statuses: list[tuple[str, OrderStatus]] = []

    def probe(s: Scripted, where: str) -> None:
        if s.placed and where.startswith("Order"):
            statuses.append((where, s.placed[0].status))

    data = [trade(SEC, "100"), trade(2 * SEC, "100"), trade(3 * SEC, "100")]
    strat = Scripted(
        {0: place(BUY, "1", LMT, price="99"), 1: both(modify(price="98"), cancel())},
        probe=probe,
    )
    engine = run(data, strategies=[strat], latency_ns=1000)
    assert order(engine).status is ST.CANCELED
    assert ("OrderUpdated", ST.PENDING_CANCEL) in statuses


# ==================================================================================================
# Latency
# ==================================================================================================
def _latency_run(seed: int, fixed_ns: int = 5_000_000, jitter_ns: int = 3_000_000) -> Any:
    data = [trade(SEC, "100"), trade(2 * SEC, "100"), trade(3 * SEC, "100")]
    script = {
        0: both(*(place(BUY, "1", LMT, price=p) for p in ("99", "98", "97"))),
        1: cancel("s-1"),
    }
    return run(data, script, latency_ns=fixed_ns, latency_jitter_ns=jitter_ns, seed=seed)


def test_latency_delays_each_command_by_the_sampled_amount_in_fifo_order() -> None:
    """Each message waits its sampled delay, but never arrives before an earlier one."""
    model = LatencyModel(5_000_000, 3_000_000, seed=7)
    delays = [model.sample() for _ in range(4)]  # three submits, then the cancel
    assert len(set(delays)) > 1
    assert all(5_000_000 <= d <= 8_000_000 for d in delays)
    engine = _latency_run(seed=7)
    arrival = 0
    for i, cid in enumerate(("s-1", "s-2", "s-3")):
        arrival = max(SEC + delays[i], arrival)
        assert last_event(engine, OrderAccepted, cid).ts == arrival
    assert last_event(engine, OrderCanceled, "s-1").ts == max(2 * SEC + delays[3], arrival)


def test_jitter_never_lets_a_cancel_overtake_its_order() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100")]
    for seed in range(20):
        script = {0: both(place(BUY, "1", LMT, price="99"), cancel("s-1"))}
        engine = run(data, script, latency_ns=0, latency_jitter_ns=50_000_000, seed=seed)
        assert order(engine).status is ST.CANCELED


def test_fixed_latency_without_jitter() -> None:
    engine = _latency_run(seed=1, fixed_ns=2_000_000, jitter_ns=0)
    for cid in ("s-1", "s-2", "s-3"):
        assert last_event(engine, OrderAccepted, cid).ts == SEC + 2_000_000


def test_latency_is_reproducible_with_the_same_seed() -> None:
    rows = [_latency_run(seed=3).journal.rows for _ in range(2)]
    assert rows[0] == rows[1]
    assert _latency_run(seed=4).journal.rows != rows[0]


def test_market_order_in_flight_ignores_trades_before_it_arrives() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "101"), trade(3 * SEC, "102")]
    engine = run(data, {0: place(BUY, "1")}, latency_ns=SEC + SEC // 2)
    assert last_event(engine, OrderAccepted).ts == SEC + SEC + SEC // 2
    assert fills(engine) == [("1", "102", T)]


def test_latency_model_bounds_and_validation() -> None:
    model = LatencyModel(10, 5, seed=0)
    samples = [model.sample() for _ in range(200)]
    assert min(samples) >= 10 and max(samples) <= 15 and len(set(samples)) == 6
    first, second = LatencyModel(10, 5, seed=9), LatencyModel(10, 5, seed=9)
    assert [first.sample() for _ in range(20)] == [second.sample() for _ in range(20)]
    with pytest.raises(ValueError):
        LatencyModel(-1)
    with pytest.raises(ValueError):
        LatencyModel(0, -1)


# ==================================================================================================
# Balance locking (CASH account)
# ==================================================================================================
FEES = make_instrument(maker_fee_bps="5", taker_fee_bps="10")
SMALL = {"USDT": "1000", "BTC": "2"}


def snap_balances(key: str) -> Any:
    def action(s: Scripted) -> None:
        acct = s.engine.venue.account
        s.notes[key] = {
            ccy: (S(acct.balance(ccy)), S(acct.locked.get(ccy, 0)), S(acct.free(ccy)))
            for ccy in ("USDT", "BTC")
        }
        s.notes[key + "-portfolio"] = (
            S(s.engine.portfolio.locked("USDT")),
            S(s.free_balance("USDT")),
        )

    return action


def test_resting_buy_locks_quote_plus_fee_until_cancelled() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100"), trade(3 * SEC, "100")]
    strat = Scripted(
        {
            0: place(BUY, "2", LMT, price="99"),
            1: both(snap_balances("resting"), cancel()),
            2: snap_balances("after"),
        }
    )
    run(data, strategies=[strat], instrument=FEES, balances=SMALL)
    # lock = 99 x 2 = 198, plus the larger fee rate (10 bps) on it: 0.198
    assert strat.notes["resting"]["USDT"] == ("1000", "198.198", "801.802")
    # the portfolio derives locked from the open order by the venue's rule, fee included
    assert strat.notes["resting-portfolio"] == ("198.198", "801.802")
    assert strat.notes["after"]["USDT"] == ("1000", "0", "1000")
    assert strat.notes["after-portfolio"] == ("0", "1000")


def test_lock_is_released_fill_by_fill() -> None:
    data = [
        trade(SEC, "100"),
        trade(2 * SEC, "99", "0.5"),
        trade(3 * SEC, "98", "5"),
        trade(4 * SEC, "98", "5"),
    ]
    strat = Scripted(
        {0: place(BUY, "2", LMT, price="99"), 1: snap_balances("partial"), 3: snap_balances("end")}
    )
    run(data, strategies=[strat], instrument=FEES, balances=SMALL)
    # fill 1: 0.5 @ 99 maker = 49.5, fee 5 bps = 0.02475 -> pays 49.52475
    #   total 1000 - 49.52475 = 950.47525, lock 198.198 - 49.52475 = 148.67325, free unchanged
    assert strat.notes["partial"]["USDT"] == ("950.47525", "148.67325", "801.802")
    assert strat.notes["partial"]["BTC"] == ("2.5", "0", "2.5")
    # fill 2: 1.5 @ 99 = 148.5, fee 0.07425; the rest of the lock is released
    #   total 950.47525 - 148.57425 = 801.901
    assert strat.notes["end"]["USDT"] == ("801.901", "0", "801.901")
    assert strat.notes["end"]["BTC"] == ("4", "0", "4")


def test_resting_sell_locks_base() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100"), trade(3 * SEC, "101", "10")]
    strat = Scripted(
        {
            0: place(SELL, "1.5", LMT, price="101"),
            1: snap_balances("resting"),
            2: snap_balances("end"),
        }
    )
    run(data, strategies=[strat], instrument=FEES, balances=SMALL)
    assert strat.notes["resting"]["BTC"] == ("2", "1.5", "0.5")
    # 1.5 @ 101 = 151.5 maker, fee 0.07575
    assert strat.notes["end"]["BTC"] == ("0.5", "0", "0.5")
    assert strat.notes["end"]["USDT"] == ("1151.42425", "0", "1151.42425")


@pytest.mark.parametrize(
    ("actions", "reason"),
    [
        ([place(BUY, "20", LMT, price="99")], "insufficient USDT"),  # needs 1981.98
        ([place(SELL, "3", LMT, price="101")], "insufficient BTC"),  # CASH: no shorting
        ([place(BUY, "10")], "insufficient USDT"),  # market: 100 x 10 + fee at the last trade
        # the first order locks 495.495, leaving 504.505 < 594.594
        ([place(BUY, "5", LMT, price="99"), place(BUY, "6", LMT, price="99")], "insufficient USDT"),
    ],
)
def test_insufficient_balance_is_rejected_with_a_reason(actions: list[Any], reason: str) -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100")]
    engine = run(data, {0: both(*actions)}, instrument=FEES, balances=SMALL)
    cid = f"s-{len(actions)}"
    assert order(engine, cid).status is ST.REJECTED
    assert reason in last_event(engine, OrderRejected, cid).reason
    if len(actions) == 2:
        assert order(engine, "s-1").status is ST.ACCEPTED


def test_market_order_before_any_price_is_rejected() -> None:
    engine = run([trade(SEC, "100")], {"start": place(BUY, "1")})
    assert order(engine).status is ST.REJECTED
    assert "reference price" in last_event(engine, OrderRejected).reason


def test_unaffordable_market_remainder_is_cancelled_not_left_working() -> None:
    # buy 9 at market with 1000 USDT: locked at the last trade (100 x 9 + 0.9 fee); the next
    # trade is at 120, where one lot costs 0.12 + 0.00012 fee, so 1000 // 0.12012 = 8325 lots
    data = [trade(SEC, "100"), trade(2 * SEC, "120"), trade(3 * SEC, "120")]
    engine = run(data, {0: place(BUY, "9")}, instrument=FEES, balances={"USDT": "1000"})
    assert fills(engine) == [("8.325", "120", T)]
    o = order(engine)
    assert o.status is ST.CANCELED
    assert o.ts_last == 2 * SEC
    assert "insufficient" in last_event(engine, OrderCanceled).reason
    # 8.325 x 120 = 999, fee 0.999: 0.001 left, nothing locked
    assert S(engine.venue.account.balance("USDT")) == "0.001"
    assert engine.portfolio.free("USDT") == R("0.001")


# ==================================================================================================
# Every refusal has a reason
# ==================================================================================================
REFUSALS = (OrderRejected, OrderDenied, OrderCanceled, OrderCancelRejected, OrderModifyRejected)


@pytest.mark.parametrize(
    "action",
    [
        place(BUY, "1", LMT, TimeInForce.GTD, price="99"),  # GTD without an expire time
        lambda s: s.buy(IID, "1", order_type=LMT, price="101", post_only=True),
        lambda s: s.sell(IID, "1", reduce_only=True),
        place(BUY, "5000", LMT, price="99"),
        place(SELL, "50", LMT, price="101"),
        place(BUY, "1", LMT, TimeInForce.FOK, price="90"),
        lambda s: s.buy(IID, "0"),  # denied before the venue
        lambda s: s.buy(IID, "1", order_type=LMT, price="nan"),
        lambda s: s.buy("NOPE.SIM", "1"),
        lambda s: s.cancel("no-such-order"),
        lambda s: s.modify("no-such-order", price="1"),
    ],
)
def test_every_refusal_carries_a_reason(action: Any) -> None:
    published: list[Event] = []

    def listen(s: Scripted) -> None:
        s.engine.bus.subscribe(Event, published.append)

    data = [snapshot(SEC, [("99", "1")], [("101", "1")]), deltas(2 * SEC, bids=[("98", "1")])]
    run(data, {"start": listen, 0: action})  # run() also checks the journal's events
    refusals = [e for e in published if isinstance(e, REFUSALS)]
    assert refusals
    for e in refusals:
        assert e.reason.strip()


def test_rejected_events_reach_the_strategy_and_the_journal() -> None:
    engine = run([trade(SEC, "100")], {"start": place(BUY, "1")})
    assert any(isinstance(e, OrderRejected) for e in journal_events(engine))
    assert any(isinstance(e, OrderRejected) for e in engine.strategies[0].seen)
    assert engine.orders.rejected_count == 1
