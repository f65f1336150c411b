"""Sizing with hand-computed numbers: each sizer, Kelly capped by CVaR and the max
position, heat, trade values, free cash, lot snapping, and capital allocations."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from tradepilot.core.time import NS_PER_MINUTE
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import OrderFilled
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.allocation import CapitalAllocator, Ledger
from tradepilot.strategy.gates import GateConfig
from tradepilot.strategy.indicators import RollingReturns
from tradepilot.strategy.pipeline import PipelineConfig
from tradepilot.strategy.signal_strategy import SignalStrategy
from tradepilot.strategy.signals import Signal, SignalAction
from tradepilot.strategy.sizing import (
    Returns,
    Sizer,
    SizingConfig,
    SizingInputs,
    TradeStats,
    historical_cvar,
    kelly_fraction,
    qty_str,
)

R = fixed.to_raw
S = fixed.to_str
IID = "BTCUSDT.SIM"
MIN = NS_PER_MINUTE
T0 = 28_333_333 * MIN


def inst(lot: str = "0.001", fee: str = "0", min_notional: str = "0") -> Instrument:
    return Instrument.create(
        "BTCUSDT", "SIM", "BTC", "USDT", "0.01", lot, lot, min_notional, fee, fee
    )


def inputs(**kw: Any) -> SizingInputs:
    base: dict[str, Any] = {
        "instrument": inst(),
        "side": 1,
        "price": R("50000"),
        "capital": R("100000"),
    }
    base.update(kw)
    return SizingInputs(**base)


def size(config: SizingConfig, **kw: Any) -> tuple[str, str, str]:
    result = Sizer(config).size(inputs(**kw))
    return S(result.quantity), result.code, result.reason


def no_limits(**kw: Any) -> SizingConfig:
    return SizingConfig(**({"max_position": None, "heat": None} | kw))


# -- the base sizers ------------------------------------------------------------------------------
def test_fixed_quantity() -> None:
    assert size(no_limits(method="fixed_quantity", quantity="0.25"))[0] == "0.25"


def test_fixed_notional_snaps_down_to_the_lot() -> None:
    # 1,000 / 30,000 = 0.0333... -> 0.033 (lot 0.001)
    qty, _, reason = size(no_limits(method="fixed_notional", notional="1000"), price=R("30000"))
    assert qty == "0.033"
    assert reason.endswith("-> 0.033 (990.00)")


def test_percent_of_equity() -> None:
    # 10 % of 100,000 = 10,000; / 50,000 = 0.2
    qty, _, reason = size(no_limits(method="percent_equity", percent=0.1))
    assert qty == "0.2"
    assert reason.startswith("10.00% of capital 100000.00 = 10000.00")


def test_volatility_sizing_with_atr() -> None:
    # lose 1 % of 100,000 = 1,000 on a move of 2 ATR = 2 * 500 = 1,000 -> 1 unit
    cfg = no_limits(method="volatility", vol_method="atr", risk_per_trade=0.01, atr_multiple=2.0)
    assert size(cfg, atr=500.0)[0] == "1"
    assert size(cfg, atr=None)[1] == "NO_VOLATILITY"


def test_volatility_sizing_with_realised_volatility() -> None:
    # returns -1 %, 0, +1 %: sample std 1 %; target 0.5 % -> notional = 50 % of capital
    # = 50,000 at a price of 100 -> 500 units
    cfg = no_limits(method="volatility", vol_method="realized", target_vol=0.005, min_history=3)
    qty, _, _ = size(cfg, price=R("100"), returns=[-0.01, 0.0, 0.01])
    assert qty == "500"
    assert size(cfg, price=R("100"), returns=[0.01, 0.01])[1] == "NO_VOLATILITY"


# -- Kelly and CVaR -------------------------------------------------------------------------------
def test_kelly_fraction_from_win_rate_and_payoff() -> None:
    # p = 0.55, b = 5 % / 2 % = 2.5: f* = 0.55 - 0.45 / 2.5 = 0.37
    assert kelly_fraction(0.55, 0.05, 0.02) == pytest.approx(0.37)
    assert kelly_fraction(0.5, 0.02, 0.02) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        kelly_fraction(1.2, 0.05, 0.02)


def test_historical_cvar_is_the_mean_of_the_worst_tail() -> None:
    returns = [0.01] * 18 + [-0.05, -0.03]
    # alpha 0.90 over 20 returns: the worst 2 -> (5 % + 3 %) / 2 = 4 %
    assert historical_cvar(returns, 0.90) == pytest.approx(0.04)
    # alpha 0.95: the worst 1 -> 5 %
    assert historical_cvar(returns, 0.95) == pytest.approx(0.05)
    assert historical_cvar([0.01, 0.02], 0.95) == 0.0  # no losses in the tail
    with pytest.raises(ValueError):
        historical_cvar([], 0.95)


def test_rolling_returns_give_the_same_cvar_and_std_as_a_fixed_sample() -> None:
    rnd = random.Random(3)
    values = [rnd.gauss(0.0, 0.01) for _ in range(500)]
    rolling = RollingReturns()
    for k, r in enumerate(values):
        rolling.add(k, r)
    rolling.drop_before(100)
    kept = values[100:]
    assert rolling.values() == kept
    assert rolling.cvar(0.95) == pytest.approx(historical_cvar(kept, 0.95), rel=1e-12)
    assert rolling.std() == pytest.approx(Returns(kept).std(), rel=1e-12)


KELLY = {
    "method": "kelly",
    "kelly_fraction": 0.25,
    "win_rate": 0.55,
    "avg_win": 0.05,
    "avg_loss": 0.02,
    "cvar_alpha": 0.95,
    "min_history": 20,
}


def test_quarter_kelly_when_the_cvar_budget_does_not_bind() -> None:
    # quarter Kelly: 0.25 * 0.37 = 9.25 % of 100,000 = 9,250 -> 0.185 at 50,000.
    # CVaR95 of 95 x +0.1 % and 5 x -4 % is 4 %: the 2 % budget allows
    # 0.02 * 100,000 / 0.04 = 50,000 (not binding); max position 50 % = 50,000.
    returns = [0.001] * 95 + [-0.04] * 5
    qty, code, reason = size(SizingConfig(**KELLY, cvar_budget=0.02), returns=returns)
    assert (qty, code) == ("0.185", "")
    assert "Kelly 0.25 x 0.3700 = 0.0925 of capital" in reason
    assert "CVaR 0.04000" in reason and "caps it" not in reason


def test_the_cvar_budget_caps_kelly() -> None:
    # worst 5 % average a 25 % loss: 0.02 * 100,000 / 0.25 = 8,000 < 9,250 -> 0.16
    returns = [0.001] * 95 + [-0.25] * 5
    qty, _, reason = size(SizingConfig(**KELLY, cvar_budget=0.02), returns=returns)
    assert qty == "0.16"
    assert "CVaR 0.25000 x budget 0.02 caps it" in reason


def test_the_max_position_caps_kelly() -> None:
    # full Kelly 37 % = 37,000, max position 25 % = 25,000 -> 0.5
    cfg = SizingConfig(**(KELLY | {"kelly_fraction": 1.0}), cvar_budget=None, max_position=0.25)
    qty, _, reason = size(cfg)
    assert qty == "0.5"
    assert "max position 25% caps at 25000.00" in reason
    # what is already held counts: 0.3 held (15,000) leaves 10,000 -> 0.2
    assert size(cfg, position_qty=R("0.3"))[0] == "0.2"
    assert size(cfg, position_qty=R("0.5"))[1] == "NO_CAPITAL"


def test_kelly_without_an_edge_or_history_holds() -> None:
    no_edge = SizingConfig(**(KELLY | {"win_rate": 0.3, "avg_win": 0.02, "avg_loss": 0.02}))
    qty, code, reason = size(no_edge, returns=[0.0] * 50)
    assert (qty, code) == ("0", "NO_EDGE")
    assert reason.startswith("no edge: full Kelly -40.00%")
    qty, code, reason = size(SizingConfig(**KELLY), returns=[0.01] * 5)
    assert (code, reason) == ("CVAR_HISTORY", "CVaR needs 20 historical returns, have 5")


def test_kelly_from_the_strategy_s_own_trades() -> None:
    stats = TradeStats.from_returns([0.04, 0.04, -0.02, 0.04, -0.02])
    assert (stats.trades, stats.win_rate) == (5, 0.6)
    assert stats.avg_win == pytest.approx(0.04) and stats.avg_loss == pytest.approx(0.02)
    cfg = SizingConfig(**KELLY, cvar_budget=None, use_trade_history=True, min_trades=5)
    # p = 0.6, b = 2: f* = 0.6 - 0.4 / 2 = 0.4; quarter = 10 % = 10,000 -> 0.2
    qty, _, reason = size(cfg, trade_stats=stats)
    assert qty == "0.2" and "from 5 trades" in reason
    # with fewer trades than min_trades the configured prior is used (9,250 -> 0.185)
    few = TradeStats.from_returns([0.04, 0.04])
    assert size(cfg, trade_stats=few)[0] == "0.185"


# -- limits ---------------------------------------------------------------------------------------
def test_heat_limits_the_loss_at_the_stop() -> None:
    # 2 % of 100,000 = 2,000 at risk; the stop is 1,000 below 10,000 -> 2 units
    # (percent sizing asked for 50,000 / 10,000 = 5)
    cfg = SizingConfig(method="percent_equity", percent=0.5, max_position=None, heat=0.02)
    qty, _, reason = size(cfg, price=R("10000"), stop_price=R("9000"))
    assert qty == "2"
    assert "heat 2.0%: 2000.00 at risk with the stop 1000.00 away" in reason
    assert size(cfg, price=R("10000"))[0] == "5"  # no stop, no heat limit


def test_max_and_min_trade_value() -> None:
    cfg = no_limits(method="percent_equity", percent=0.5, max_trade_value="10000")
    qty, _, reason = size(cfg, price=R("100"))
    assert qty == "100" and "max trade value 10000.00" in reason
    small = no_limits(method="fixed_notional", notional="40", min_trade_value="100")
    qty, code, reason = size(small, price=R("10"))
    assert (qty, code, reason) == ("0", "BELOW_MIN_TRADE", "trade value 40.00 < minimum 100.00")


def test_a_size_that_rounds_to_zero_lots_is_a_hold() -> None:
    cfg = no_limits(method="fixed_notional", notional="50")
    qty, code, reason = size(cfg, instrument=inst(lot="1"), price=R("100"))
    assert (qty, code) == ("0", "SIZE_ZERO")
    assert reason.startswith("size 0.5 rounds to zero lots of 1")


def test_free_cash_and_fees_limit_a_buy() -> None:
    # 1,000 free, price 100 plus a 10 bps fee: 1,000 / 100.1 = 9.99000999 -> 9.99
    cfg = no_limits(method="fixed_quantity", quantity="50")
    qty, _, reason = size(cfg, instrument=inst(fee="10"), price=R("100"), free_cash=R("1000"))
    assert qty == "9.99" and "free cash 1000.00" in reason
    assert size(cfg, price=R("100"), free_cash=0)[1] == "NO_CASH"
    assert size(cfg, price=R("100"), free_cash=0, side=-1)[0] == "50"  # sells need no cash


def test_capital_already_used_limits_the_next_trade() -> None:
    cfg = no_limits(method="percent_equity", percent=0.5)
    # capital 100,000 of which 80,000 is in positions: 20,000 left -> 0.4
    assert size(cfg, exposure=R("80000"))[0] == "0.4"
    assert size(cfg, exposure=R("100000"))[1] == "NO_CAPITAL"


def test_instrument_minimums() -> None:
    cfg = no_limits(method="fixed_quantity", quantity="0.001")
    qty, code, _ = size(cfg, instrument=inst(min_notional="100"))
    assert (qty, code) == ("0", "BELOW_MIN_TRADE")  # 0.001 * 50,000 = 50 < 100


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "martingale"},
        {"method": "fixed_quantity", "quantity": "0"},
        {"method": "percent_equity", "percent": 1.5},
        {"method": "kelly", "win_rate": 1.2},
        {"method": "kelly", "avg_loss": 0.0},
        {"cvar_budget": 0.0},
        {"max_position": 2.0},
        {"min_trade_value": "100", "max_trade_value": "50"},
    ],
)
def test_bad_sizing_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SizingConfig(**kwargs)


def test_target_sizing_never_sells_more_than_is_owned() -> None:
    sizer = Sizer(no_limits(method="fixed_quantity", quantity="1"))
    inp = inputs(price=R("100"), position_qty=R("5"), side=-1)
    # target 0: sell 5, but the account only owns 3 of them
    result = sizer.size_target(inp, 0, cash_account=True, held_in_account=R("3"))
    assert S(result.quantity) == "3" and "never sell more than the 3 owned" in result.reason
    result = sizer.size_target(inputs(price=R("100")), -R("2"), cash_account=True)
    assert result.code == "NOTHING_TO_SELL"
    assert sizer.size_target(inp, R("5"), cash_account=True).code == "AT_TARGET"


def test_qty_str_is_exact() -> None:
    for text in ("0", "1", "0.5", "123.000000001", "-0.25", "1000000"):
        assert qty_str(R(text)) == text


# -- capital allocations --------------------------------------------------------------------------
def test_allocations_must_fit_in_the_account() -> None:
    alloc = CapitalAllocator({"a": 0.3, "b": 0.3})
    with pytest.raises(ValueError, match="more than 100 %"):
        alloc.register("c", 0.5)
    alloc.register("c", 0.4)
    alloc.start(R("100000"))
    assert [S(alloc.capital(s)) for s in "abc"] == ["30000", "30000", "40000"]
    assert S(alloc.capital("a", pnl=R("-500"))) == "29500"
    with pytest.raises(ValueError):
        alloc.capital("d")


def test_three_strategies_each_size_within_their_allocation() -> None:
    """30/30/40 % of 100,000; each buys 100 % of its own capital at 100 (no fees)."""
    instrument = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001")
    alloc = CapitalAllocator({"a": 0.3, "b": 0.3, "c": 0.4})
    config = PipelineConfig(
        gates=GateConfig(min_confidence=0.0, min_momentum_pct=0.0, block_entry_when_open=False),
        sizing=SizingConfig(method="percent_equity", percent=1.0, max_position=None, heat=None),
    )

    class Buyer(SignalStrategy):
        def on_bar(self, bar: Bar) -> None:
            super().on_bar(bar)
            if bar.ts == T0 + MIN or bar.ts == T0 + 3 * MIN:
                self.pipeline.handle(Signal(instrument_id=IID, action=SignalAction.BUY))

    strategies = [Buyer(sid, config, allocator=alloc) for sid in "abc"]
    engine = Engine.simulated(
        [instrument],
        strategies,
        EngineConfig(starting_balances={"USDT": "100000"}, base_currency="USDT"),
        journal=MemoryJournal(),
    )
    px = R("100")
    engine.run([Bar(IID, T0 + (k + 1) * MIN, T0 + k * MIN, px, px, px, px, 0) for k in range(5)])
    held = {s.strategy_id: S(s.pipeline.ledger.qty(IID)) for s in strategies}
    assert held == {"a": "300", "b": "300", "c": "400"}
    # the second round of signals finds each strategy's capital fully used
    assert all(s.pipeline.holds.to_dict() == {"NO_CAPITAL": 1} for s in strategies)
    assert S(engine.portfolio.position_qty(IID)) == "1000"


def test_the_ledger_keeps_a_strategy_s_trades_apart() -> None:
    ledger = Ledger()

    def fill(side: int, qty: str, px: str, fee: str = "0") -> None:
        ledger.on_fill(
            OrderFilled(0, "x", IID, "s", "t", side, R(qty), R(px), R(fee), "USDT", "TAKER")
        )

    fill(1, "2", "100", "1")
    fill(1, "2", "110", "1")  # average 105, cost 420
    fill(-1, "4", "126", "2")  # +84 realised, 4 of fees
    assert ledger.qty(IID) == 0
    assert ledger.trade_returns == [pytest.approx((84 - 4) / 420)]
    fill(-1, "1", "100")
    assert ledger.qty(IID) == -R("1")
    assert S(ledger.exposure(lambda _: R("90"))) == "90"
    assert S(ledger.pnl(lambda _: R("90"))) == str(84 - 4 + 10)
    assert math.isclose(ledger.stats().win_rate, 1.0)
