"""Fees, average prices and PnL on hand-checked examples, through the engine and on
``Position`` alone. Fees are charged in the quote currency on each fill's notional."""

from __future__ import annotations

from typing import Any

import pytest

from sim_helpers import IID, SEC, R, S, Scripted, make_instrument, run, trade
from tradepilot.model import fixed
from tradepilot.model.enums import AccountType, OrderStatus
from tradepilot.model.events import OrderRejected
from tradepilot.model.position import Position

TAKER_10 = make_instrument(taker_fee_bps="10", maker_fee_bps="5")
NO_FEES = make_instrument()


def ticks(*prices: str) -> list[Any]:
    return [trade((i + 1) * SEC, px, "100") for i, px in enumerate(prices)]


def record(key: str) -> Any:
    """A script action that stores the strategy's view of its position and balances."""

    def action(s: Scripted) -> None:
        pos = s.position(IID)
        assert pos is not None
        s.notes[key] = {
            "qty": S(pos.qty),
            "avg": S(pos.avg_px) if pos.avg_px is not None else None,
            "realized": S(pos.realized_pnl),
            "fees": S(pos.fees),
            "usdt": S(s.balance("USDT")),
            "equity": S(s.equity()),
        }

    return action


def then(*actions: Any) -> Any:
    def action(s: Scripted) -> None:
        for a in actions:
            a(s)

    return action


# -- the worked example ----------------------------------------------------------------------------
def test_long_trade_with_taker_fees_by_hand() -> None:
    """Buy 0.5 @ 100, sell 0.2 @ 110, sell 0.3 @ 90; market orders, 10 bps taker fee.

    buy  0.5 @ 100: notional 50,  fee 0.05   cash 10000 - 50 - 0.05      = 9949.95
                    position 0.5, cost 50, average 100
    sell 0.2 @ 110: notional 22,  fee 0.022  cash 9949.95 + 22 - 0.022   = 9971.928
                    closes 0.2 of 0.5: cost share 50 x 0.2 / 0.5 = 20, realised 22 - 20 = 2
                    position 0.3, cost 30, average still 100
    sell 0.3 @ 90:  notional 27,  fee 0.027  cash 9971.928 + 27 - 0.027  = 9998.901
                    closes the rest: realised 27 - 30 = -3
    total realised 2 - 3 = -1, fees 0.05 + 0.022 + 0.027 = 0.099,
    net -1.099 = 9998.901 - 10000.
    """
    strat = Scripted(
        {
            0: lambda s: s.buy(IID, "0.5"),
            1: then(record("long"), lambda s: s.sell(IID, "0.2")),
            2: then(record("partial"), lambda s: s.sell(IID, "0.3")),
            3: record("flat"),
        }
    )
    engine = run(
        ticks("100", "100", "110", "90"),
        strategies=[strat],
        instrument=TAKER_10,
        balances={"USDT": "10000"},
    )
    n = strat.notes
    # equity marks the 0.5 BTC at the last trade (100): 9949.95 + 50
    assert n["long"] == {
        "qty": "0.5",
        "avg": "100",
        "realized": "0",
        "fees": "0.05",
        "usdt": "9949.95",
        "equity": "9999.95",
    }
    # marked at 110: 9971.928 + 0.3 x 110 = 10004.928
    assert n["partial"] == {
        "qty": "0.3",
        "avg": "100",
        "realized": "2",
        "fees": "0.072",
        "usdt": "9971.928",
        "equity": "10004.928",
    }
    assert n["flat"] == {
        "qty": "0",
        "avg": None,
        "realized": "-1",
        "fees": "0.099",
        "usdt": "9998.901",
        "equity": "9998.901",
    }
    assert engine.portfolio.total_fees == R("0.099")
    assert engine.venue.account.balance("USDT") == R("9998.901")
    assert engine.venue.account.balance("BTC") == 0
    (trip,) = engine.portfolio.round_trips
    # exit VWAP (22 + 27) / 0.5 = 98; entry 98 + (-1 / 0.5) x -1 = 100
    assert (trip.side, S(trip.max_qty), S(trip.entry_px), S(trip.exit_px)) == (
        1,
        "0.5",
        "100",
        "98",
    )
    assert (S(trip.pnl), S(trip.fees)) == ("-1.099", "0.099")
    # the price ranged 90..110 against an entry at 100 on 0.5
    assert (S(trip.mae), S(trip.mfe)) == ("-5", "5")


def test_the_worked_example_on_a_position_alone() -> None:
    pos = Position(IID)
    fee = fixed.bps_of
    ten = R("10")
    assert pos.apply_fill(1, R("0.5"), R("100"), fee(R("50"), ten), 1) == 0
    assert (pos.qty, pos.cost, pos.avg_px) == (R("0.5"), R("50"), R("100"))
    assert pos.apply_fill(-1, R("0.2"), R("110"), fee(R("22"), ten), 2) == R("2")
    assert (pos.qty, pos.cost, pos.avg_px) == (R("0.3"), R("30"), R("100"))
    assert pos.unrealized_pnl(R("120")) == R("6")  # 0.3 x (120 - 100)
    assert pos.apply_fill(-1, R("0.3"), R("90"), fee(R("27"), ten), 3) == R("-3")
    assert (pos.qty, pos.cost, pos.avg_px) == (0, 0, None)
    assert (pos.realized_pnl, pos.fees, pos.trade_count) == (R("-1"), R("0.099"), 3)
    assert pos.is_flat and pos.opened_ts is None


# -- shorts and flips ------------------------------------------------------------------------------
def test_short_in_a_margin_account_by_hand() -> None:
    """Sell 2 @ 100, buy 1 @ 90, buy 1 @ 80; 10 bps taker fee; MARGIN settles only PnL and fees.

    sell 2 @ 100: fee 0.2                   cash 10000 - 0.2              = 9999.8
                  position -2, cost -200, average 100
    buy 1 @ 90:   fee 0.09, realised 100 - 90 = 10   cash 9999.8 + 10 - 0.09 = 10009.71
                  position -1, cost -100; marked at 90 it is up 10: equity 10019.71
    buy 1 @ 80:   fee 0.08, realised 100 - 80 = 20   cash 10009.71 + 20 - 0.08 = 10029.63
    total realised 30, fees 0.37, net 29.63.
    """
    strat = Scripted(
        {
            0: lambda s: s.sell(IID, "2"),
            1: then(record("short"), lambda s: s.buy(IID, "1")),
            2: then(record("half"), lambda s: s.buy(IID, "1")),
            3: record("flat"),
        }
    )
    engine = run(
        ticks("100", "100", "90", "80"),
        strategies=[strat],
        instrument=TAKER_10,
        balances={"USDT": "10000"},
        account_type=AccountType.MARGIN,
    )
    n = strat.notes
    assert (n["short"]["qty"], n["short"]["avg"], n["short"]["usdt"]) == ("-2", "100", "9999.8")
    assert n["short"]["equity"] == "9999.8"
    assert (n["half"]["qty"], n["half"]["realized"], n["half"]["usdt"]) == ("-1", "10", "10009.71")
    assert n["half"]["equity"] == "10019.71"
    assert n["flat"] == {
        "qty": "0",
        "avg": None,
        "realized": "30",
        "fees": "0.37",
        "usdt": "10029.63",
        "equity": "10029.63",
    }
    assert engine.venue.account.balance("USDT") == R("10029.63")
    assert not any(engine.venue.account.locked.values())
    (trip,) = engine.portfolio.round_trips
    assert (trip.side, S(trip.entry_px), S(trip.exit_px), S(trip.pnl)) == (-1, "100", "85", "29.63")


def test_a_cash_account_cannot_go_short() -> None:
    engine = run(ticks("100", "100"), {0: lambda s: s.sell(IID, "1")}, balances={"USDT": "1000"})
    order = engine.orders.orders["s-1"]
    assert order.status is OrderStatus.REJECTED
    reason = next(e.reason for e in order.events if isinstance(e, OrderRejected))
    assert "insufficient BTC" in reason


def test_position_flip_by_hand() -> None:
    """Long 1 @ 100, sell 3 @ 110 (close 1, open short 2 @ 110), buy 2 @ 100; no fees.

    the sell realises 110 - 100 = 10 and leaves -2 with cost -220 (average 110);
    the buy realises 2 x (110 - 100) = 20.
    """
    strat = Scripted(
        {
            0: lambda s: s.buy(IID, "1"),
            1: lambda s: s.sell(IID, "3"),
            2: then(record("flipped"), lambda s: s.buy(IID, "2")),
            3: record("flat"),
        }
    )
    engine = run(
        ticks("100", "100", "110", "100"),
        strategies=[strat],
        instrument=NO_FEES,
        balances={"USDT": "10000"},
        account_type=AccountType.MARGIN,
    )
    assert strat.notes["flipped"]["qty"] == "-2"
    assert strat.notes["flipped"]["avg"] == "110"
    assert strat.notes["flipped"]["realized"] == "10"
    assert strat.notes["flat"]["realized"] == "30"
    assert strat.notes["flat"]["usdt"] == "10030"
    long_trip, short_trip = engine.portfolio.round_trips
    assert (long_trip.side, S(long_trip.max_qty), S(long_trip.pnl)) == (1, "1", "10")
    assert (S(long_trip.entry_px), S(long_trip.exit_px)) == ("100", "110")
    assert (short_trip.side, S(short_trip.max_qty), S(short_trip.pnl)) == (-1, "2", "20")
    assert (S(short_trip.entry_px), S(short_trip.exit_px)) == ("110", "100")
    assert short_trip.entry_ts == long_trip.exit_ts


def test_round_trip_pnl_sums_to_realised_minus_fees_across_a_flip_with_fees() -> None:
    strat = Scripted(
        {
            0: lambda s: s.buy(IID, "1"),
            1: lambda s: s.sell(IID, "3"),
            2: lambda s: s.buy(IID, "2"),
        }
    )
    engine = run(
        ticks("100", "100.37", "110.01", "99.99"),
        strategies=[strat],
        instrument=TAKER_10,
        balances={"USDT": "10000"},
        account_type=AccountType.MARGIN,
    )
    pos = engine.portfolio.positions[IID]
    assert pos.is_flat
    trips = engine.portfolio.round_trips
    assert len(trips) == 2
    assert sum(t.pnl for t in trips) == pos.realized_pnl - pos.fees
    assert sum(t.fees for t in trips) == pos.fees == engine.portfolio.total_fees
    # realised: (110.01 - 100.37) x 1 + (110.01 - 99.99) x 2 = 9.64 + 20.04 = 29.68
    assert pos.realized_pnl == R("29.68")
    # fees: 10 bps of 100.37 + 330.03 + 199.98 = 630.38 -> 0.63038
    assert pos.fees == R("0.63038")
    assert engine.venue.account.balance("USDT") == R("10000") + R("29.68") - R("0.63038")


def test_position_flip_on_a_position_alone() -> None:
    pos = Position(IID)
    pos.apply_fill(-1, R("1"), R("50"), 0, 1)
    assert pos.apply_fill(1, R("1.5"), R("40"), 0, 2) == R("10")
    assert (pos.side, pos.qty, pos.cost, pos.avg_px) == ("LONG", R("0.5"), R("20"), R("40"))
    assert pos.opened_ts == 2


# -- exactness -------------------------------------------------------------------------------------
def test_partial_closes_of_an_awkward_average_by_hand() -> None:
    """Buy 1 @ 10 and 2 @ 10.01 (cost 30.02, average 10.00666...), sell 1 @ 11 three times.

    close 1: cost share 30.02 / 3      = 10.006666666|67 -> 10.006666667, realised 0.993333333
    close 2: cost share 20.013333333/2 = 10.006666666|5  -> 10.006666666 (half-even), 0.993333334
    close 3: the whole remaining cost    10.006666667,                               0.993333333
    total 2.98 = 33 - 30.02 exactly.
    """
    pos = Position(IID)
    pos.apply_fill(1, R("1"), R("10"), 0, 1)
    pos.apply_fill(1, R("2"), R("10.01"), 0, 2)
    assert pos.avg_px == R("10.006666667")
    realized = [pos.apply_fill(-1, R("1"), R("11"), 0, 3 + i) for i in range(3)]
    assert realized == [R("0.993333333"), R("0.993333334"), R("0.993333333")]
    assert pos.realized_pnl == R("2.98")
    assert (pos.qty, pos.cost) == (0, 0)


AWKWARD = [
    # (entries, exits): (qty, price) pairs with equal total quantity
    ([("1", "100")], [("0.333", "100.01"), ("0.333", "100.01"), ("0.334", "100.01")]),
    ([("1", "10"), ("2", "10.01")], [("1", "11"), ("1", "11"), ("1", "11")]),
    ([("0.001", "33.33"), ("0.002", "33.34")], [("0.001", "33.35")] * 3),
    ([("3", "0.07")], [("0.7", "0.09"), ("1.1", "0.05"), ("1.2", "0.11")]),
    ([("0.007", "99999.99")], [("0.003", "1.01"), ("0.004", "123456.78")]),
    ([("1", "33.33"), ("1", "33.33"), ("1", "33.34")], [("0.001", "33.35")] * 3000),
]


@pytest.mark.parametrize(("entries", "exits"), AWKWARD)
@pytest.mark.parametrize("direction", [1, -1], ids=["long", "short"])
def test_round_trip_realised_pnl_is_exact(
    entries: list[tuple[str, str]], exits: list[tuple[str, str]], direction: int
) -> None:
    pos = Position(IID)
    for i, (q, p) in enumerate(entries):
        assert pos.apply_fill(direction, R(q), R(p), 0, i) == 0
    realized = sum(
        pos.apply_fill(-direction, R(q), R(p), 0, 100 + i) for i, (q, p) in enumerate(exits)
    )
    entry = sum(fixed.mul(R(p), R(q)) for q, p in entries)
    exit_ = sum(fixed.mul(R(p), R(q)) for q, p in exits)
    assert realized == pos.realized_pnl == direction * (exit_ - entry)
    assert (pos.qty, pos.cost) == (0, 0)


def test_engine_round_trip_in_thirds_reconciles_to_the_nano() -> None:
    """Buy 3 @ 33.33 then sell 1 at a time at 33.34, 33.35 and 33.37 with 7 bps taker fees:
    the cash moves by exactly the notional difference minus the fees, and the realised PnL
    by exactly the notional difference."""
    inst = make_instrument(taker_fee_bps="7")
    strat = Scripted(
        {
            0: lambda s: s.buy(IID, "3"),
            1: lambda s: s.sell(IID, "1"),
            2: lambda s: s.sell(IID, "1"),
            3: lambda s: s.sell(IID, "1"),
        }
    )
    engine = run(
        ticks("33.33", "33.33", "33.34", "33.35", "33.37"),
        strategies=[strat],
        instrument=inst,
        balances={"USDT": "1000"},
    )
    entry, exit_ = R("99.99"), R("33.34") + R("33.35") + R("33.37")  # 100.06
    # fees: 7 bps of 99.99 = 0.069993, of 33.34 = 0.023338, 33.35 = 0.023345, 33.37 = 0.023359
    fees = R("0.069993") + R("0.023338") + R("0.023345") + R("0.023359")
    assert engine.portfolio.total_fees == fees
    pos = engine.portfolio.positions[IID]
    assert pos.realized_pnl == exit_ - entry == R("0.07")
    assert engine.venue.account.balance("USDT") == R("1000") + exit_ - entry - fees
    assert engine.portfolio.account.balance("USDT") == engine.venue.account.balance("USDT")
    (trip,) = engine.portfolio.round_trips
    assert trip.pnl == R("0.07") - fees
    assert trip.entry_px == R("33.33")


def test_fee_rounding_is_half_even_on_nine_decimals() -> None:
    # 1.234567891 x 10 bps = 0.001234567891 -> 0.001234568
    assert fixed.bps_of(R("1.234567891"), R("10")) == R("0.001234568")
    # 0.000000025 x 2000 bps = 0.000000005 exactly; 0.000000005 x 1000 bps = 0.0000000005 -> 0
    assert fixed.bps_of(R("0.000000025"), R("2000")) == 5
    assert fixed.bps_of(R("0.000000005"), R("1000")) == 0
    assert fixed.bps_of(R("0.000000015"), R("1000")) == 2
