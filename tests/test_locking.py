"""One locked-balance rule: the portfolio, the risk view and the projection hold back what
the venue locks - a buy's notional plus the larger fee - and a market buy in flight keeps
the value it was sent at (issue 8: it was revalued at later prices, free cash went below 0).
"""

from __future__ import annotations

from typing import Any

from sim_helpers import IID, SEC, R, S, Scripted, make_instrument, run, trade
from tradepilot.model.enums import OrderType
from tradepilot.model.events import OrderRejected
from tradepilot.model.order import Order
from tradepilot.portfolio.locking import buy_lock, locked_by

FEES = make_instrument(maker_fee_bps="5", taker_fee_bps="10")


def _snap(key: str) -> Any:
    def action(s: Scripted) -> None:
        pf = s.context.portfolio
        s.notes[key] = (S(pf.locked("USDT")), S(pf.free("USDT")))

    return action


def test_a_market_buy_in_flight_keeps_the_lock_it_was_sent_with() -> None:
    # 1000 USDT buys 9.99 at 100 with the 10 bps fee: 999 + 0.999 = 999.999
    data = [trade(SEC, "100"), trade(2 * SEC, "120"), trade(3 * SEC, "120"), trade(5 * SEC, "120")]
    strat = Scripted({0: lambda s: s.buy(IID, "9.99"), 1: _snap("in flight")})
    engine = run(
        data,
        strategies=[strat],
        instrument=FEES,
        balances={"USDT": "1000"},
        latency_ns=int(2.5 * SEC),
    )
    # the price rose to 120 while the order travelled: its lock stays at 100
    assert strat.notes["in flight"] == ("999.999", "0.001")
    # the venue values it at arrival (120) and cannot lock that: rejected, nothing held
    assert isinstance(engine.orders.orders["s-1"].events[-1], OrderRejected)
    assert engine.portfolio.locked("USDT") == 0 and engine.portfolio.free("USDT") == R("1000")


def test_every_view_uses_the_venue_rule() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100"), trade(3 * SEC, "100")]
    strat = Scripted({0: lambda s: s.buy(IID, "2", order_type=OrderType.LIMIT, price="99")})
    engine = run(data, strategies=[strat], instrument=FEES, balances={"USDT": "1000"})
    [order] = engine.orders.all_open()
    venue_lock = engine.venue.account.locked["USDT"]  # type: ignore[attr-defined]
    assert venue_lock == buy_lock(FEES, R("2"), R("99")) == R("198.198")
    assert engine.portfolio.locked("USDT") == venue_lock
    view = engine.risk.view
    assert view.free_balance("USDT") == R("1000") - venue_lock  # type: ignore[attr-defined]
    instruments = {IID: FEES}
    assert locked_by([order], instruments, "USDT", True, {}) == venue_lock
    assert locked_by([order], instruments, "BTC", True, {}) == 0


def test_a_market_buy_without_a_sent_value_uses_the_fallback_price() -> None:
    data = [trade(SEC, "100"), trade(2 * SEC, "100")]
    strat = Scripted({0: lambda s: s.buy(IID, "1")})
    engine = run(data, strategies=[strat], instrument=FEES, latency_ns=10 * SEC, check=False)
    order: Order = engine.orders.orders["s-1"]
    assert order.lock_px == R("100")
    order.lock_px = None  # as restored from a journal
    assert locked_by([order], {IID: FEES}, "USDT", True, {IID: R("50")}) == R("50.05")
    assert locked_by([order], {IID: FEES}, "USDT", True, {}) == 0
