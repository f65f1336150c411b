"""Each configurable risk rule: an order just inside its limit passes, one just outside is
denied with the rule's code and a reason naming the limit; config parsing; denials
reaching the journal of a real engine.

Unless a test says otherwise the view has BTC at 50000, ETH at 3000, SOL at 100,
equity 100000 USDT in a cash account, no positions and no working orders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from test_risk_support import (
    BTC,
    DAY,
    DAY0,
    ETH,
    MIN,
    SEC,
    SOL,
    FakeView,
    R,
    Scripted,
    bars,
    buy,
    denials,
    events_of,
    inst,
    install_view,
    make_engine,
    merge,
    risk_engine,
    sell,
)
from tradepilot.model.enums import AccountType, OrderStatus, OrderType
from tradepilot.model.events import OrderFilled, OrderSubmitted
from tradepilot.model.order import Order
from tradepilot.risk.config import CircuitBreakerConfig, RiskConfig, build_rules
from tradepilot.risk.engine import RiskEngine
from tradepilot.risk.rules import (
    BalanceSufficient,
    MaxCorrelatedExposure,
    MaxOrdersPerSecond,
    MaxPositionValue,
    projected_exposure,
)
from tradepilot.risk.view import EngineRiskView

LIMIT = OrderType.LIMIT


@dataclass
class Case:
    name: str
    config: RiskConfig
    view: Callable[[], FakeView]
    inside: Callable[[], Order]
    outside: Callable[[], Order]
    code: str
    key: str  # the config key the reason must name


def _view(**kw: object) -> Callable[[], FakeView]:
    return lambda: FakeView(**kw)  # type: ignore[arg-type]


CASES = [
    Case(
        "max_order_qty by symbol",
        RiskConfig(max_order_qty={"BTCUSDT": "0.5", "*": "100"}),
        _view(),
        lambda: buy("0.5"),
        lambda: buy("0.501"),
        "MAX_ORDER_QTY",
        "max_order_qty",
    ),
    Case(
        "max_order_qty default",
        RiskConfig(max_order_qty={"*": "2"}),
        _view(),
        lambda: sell("2", ETH.id, order_type=LIMIT, price="3000"),
        lambda: sell("2.001", ETH.id, order_type=LIMIT, price="3000"),
        "MAX_ORDER_QTY",
        "max_order_qty",
    ),
    Case(
        "max_order_value",
        RiskConfig(max_order_value="10000"),
        _view(),
        lambda: buy("0.2"),
        lambda: buy("0.201"),
        "MAX_ORDER_VALUE",
        "max_order_value",
    ),
    Case(
        "max_order_value at the limit price",
        RiskConfig(max_order_value="10000"),
        _view(),
        lambda: buy("0.25", order_type=LIMIT, price="40000"),
        lambda: buy("0.25", order_type=LIMIT, price="40000.01"),
        "MAX_ORDER_VALUE",
        "max_order_value",
    ),
    Case(
        "min_trade_value",
        RiskConfig(min_trade_value="100"),
        _view(),
        lambda: buy("0.002"),
        lambda: buy("0.001"),
        "MIN_TRADE_VALUE",
        "min_trade_value",
    ),
    Case(
        "max_trade_value",
        RiskConfig(max_trade_value="25000"),
        _view(),
        lambda: buy("0.5"),
        lambda: buy("0.501"),
        "MAX_TRADE_VALUE",
        "max_trade_value",
    ),
    Case(
        "max_position_pct adds to a held position",
        RiskConfig(max_position_pct=20.0),
        _view(positions={BTC.id: "0.2"}),
        lambda: buy("0.2"),
        lambda: buy("0.201"),
        "MAX_POSITION_VALUE",
        "max_position_pct",
    ),
    Case(
        "max_position_pct counts working orders",
        RiskConfig(max_position_pct=20.0),
        _view(working={BTC.id: ("0.3", "0")}),
        lambda: buy("0.1"),
        lambda: buy("0.101"),
        "MAX_POSITION_VALUE",
        "max_position_pct",
    ),
    Case(
        "max_position_pct short side",
        RiskConfig(max_position_pct=20.0),
        _view(positions={ETH.id: "-5"}, account_type=AccountType.MARGIN),
        lambda: sell("1.666", ETH.id),
        lambda: sell("1.667", ETH.id),
        "MAX_POSITION_VALUE",
        "max_position_pct",
    ),
    Case(
        "max_gross_exposure_pct",
        RiskConfig(max_gross_exposure_pct=50.0),
        _view(positions={ETH.id: "10"}),
        lambda: buy("0.4"),
        lambda: buy("0.401"),
        "MAX_GROSS_EXPOSURE",
        "max_gross_exposure_pct",
    ),
    Case(
        "max_open_positions at the limit",
        RiskConfig(max_open_positions=2),
        _view(positions={ETH.id: "1", BTC.id: "0.1"}),
        lambda: buy("0.1"),  # adds to an open position: still 2
        lambda: buy("1", SOL.id),
        "MAX_OPEN_POSITIONS",
        "max_open_positions",
    ),
    Case(
        "max_open_positions counts working orders",
        RiskConfig(max_open_positions=2),
        _view(positions={ETH.id: "1"}, working={BTC.id: ("0.1", "0")}),
        lambda: buy("0.1"),  # BTC is already counted
        lambda: buy("1", SOL.id),
        "MAX_OPEN_POSITIONS",
        "max_open_positions",
    ),
    Case(
        "max_sector_exposure_pct",
        RiskConfig(
            max_sector_exposure_pct=30.0,
            sectors={"BTCUSDT": "L1", "ETHUSDT.SIM": "L1", "SOLUSDT": "ALT"},
        ),
        _view(positions={ETH.id: "5"}),
        lambda: buy("0.3"),
        lambda: buy("0.301"),
        "MAX_SECTOR_EXPOSURE",
        "max_sector_exposure_pct",
    ),
    Case(
        "max_orders_per_second",
        RiskConfig(max_orders_per_second=1),
        _view(),
        lambda: buy("0.1", ts=DAY0),
        lambda: buy("0.1", ts=DAY0 + SEC - 1),
        "ORDER_RATE_SECOND",
        "max_orders_per_second",
    ),
    Case(
        "max_orders_per_day",
        RiskConfig(max_orders_per_day=1),
        _view(),
        lambda: buy("0.1", ts=DAY0),
        lambda: buy("0.1", ts=DAY0 + DAY - 1),
        "ORDER_RATE_DAY",
        "max_orders_per_day",
    ),
    Case(
        "max_orders_per_symbol_per_day",
        RiskConfig(max_orders_per_symbol_per_day=1),
        _view(),
        lambda: buy("0.1", ts=DAY0),
        lambda: buy("0.1", ts=DAY0 + 5 * MIN),
        "ORDER_RATE_SYMBOL_DAY",
        "max_orders_per_symbol_per_day",
    ),
    Case(
        "price_band_pct limit price",
        RiskConfig(price_band_pct=5.0),
        _view(),
        lambda: buy("0.1", order_type=LIMIT, price="52500"),
        lambda: buy("0.1", order_type=LIMIT, price="52500.01"),
        "PRICE_BAND",
        "price_band_pct",
    ),
    Case(
        "price_band_pct trigger price",
        RiskConfig(price_band_pct=5.0),
        _view(),
        lambda: sell("0.1", order_type=OrderType.STOP_MARKET, trigger="47500", reduce_only=False),
        lambda: sell("0.1", order_type=OrderType.STOP_MARKET, trigger="47499.99"),
        "PRICE_BAND",
        "price_band_pct",
    ),
    Case(
        "check_balance cash buy",
        RiskConfig(check_balance=True),
        _view(balances={"USDT": "10000"}),
        lambda: buy("0.2"),
        lambda: buy("0.201"),
        "INSUFFICIENT_BALANCE",
        "check_balance",
    ),
    Case(
        "check_balance cash sell",
        RiskConfig(check_balance=True),
        _view(balances={"USDT": "0", "BTC": "1"}),
        lambda: sell("1"),
        lambda: sell("1.001"),
        "INSUFFICIENT_BALANCE",
        "check_balance",
    ),
    Case(
        "check_balance margin",
        RiskConfig(check_balance=True),
        _view(equity="10000", account_type=AccountType.MARGIN, leverage=2),
        lambda: sell("0.4"),
        lambda: sell("0.401"),
        "INSUFFICIENT_BALANCE",
        "check_balance",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_inside_passes_outside_is_denied(case: Case) -> None:
    risk = risk_engine(case.config, case.view())
    assert risk.check(case.inside()) is None
    denial = risk.check(case.outside())
    assert denial is not None
    assert denial.code == case.code
    assert case.key in denial.reason


def test_balance_includes_the_fee() -> None:
    view = FakeView(
        balances={"USDT": "10010"}, instruments={BTC.id: inst("BTCUSDT", "BTC", taker_fee_bps="10")}
    )
    rule = BalanceSufficient()
    assert rule.check(buy("0.2"), view) is None  # 10000 + 10 fee
    reason = rule.check(buy("0.201"), view)
    assert reason is not None and "fee 10.05" in reason


def test_reasons_name_limit_and_value() -> None:
    risk = risk_engine(RiskConfig(max_position_pct=20.0), FakeView(positions={BTC.id: "0.2"}))
    denial = risk.check(buy("0.3"))
    assert denial is not None
    assert denial.reason == (
        "position value of BTCUSDT.SIM 25000 after the order would exceed max_position_pct 20% "
        "of equity 100000 (limit 20000, would be 25.00%)"
    )
    risk = risk_engine(RiskConfig(max_order_value="10000"))
    d = risk.check(buy("0.3"))
    assert d is not None and d.reason == "order value 15000 exceeds max_order_value 10000"


# -- losses ----------------------------------------------------------------------------------
def test_daily_loss_limit() -> None:
    view = FakeView(equity="100000")
    risk = risk_engine(RiskConfig(daily_loss_pct=5.0), view)
    risk.on_equity(DAY0 + MIN, R("100000"))  # the day's first equity
    view.set_equity("95000.01")
    assert risk.check(buy("0.1", ts=DAY0 + 2 * MIN)) is None
    view.set_equity("95000")
    denial = risk.check(buy("0.1", ts=DAY0 + 3 * MIN))
    assert denial is not None and denial.code == "DAILY_LOSS_LIMIT"
    assert "daily_loss_pct 5%" in denial.reason and "5000" in denial.reason
    # the next UTC day starts from its own first equity
    assert risk.check(buy("0.1", ts=DAY0 + DAY + MIN)) is None


def test_daily_loss_observed_at_check_without_feed() -> None:
    view = FakeView(equity="100000")
    risk = risk_engine(RiskConfig(daily_loss_pct=10.0), view)
    assert risk.check(buy("0.1", ts=DAY0)) is None
    view.set_equity("89000")
    d = risk.check(buy("0.1", ts=DAY0 + MIN))
    assert d is not None and d.code == "DAILY_LOSS_LIMIT"


def test_max_drawdown() -> None:
    view = FakeView(equity="90000.01")
    risk = risk_engine(RiskConfig(max_drawdown_pct=10.0), view)
    risk.on_equity(DAY0, R("100000"))
    risk.on_equity(DAY0 + DAY, R("95000"))  # a new day does not reset the peak
    assert risk.check(buy("0.1", ts=DAY0 + DAY)) is None
    view.set_equity("90000")
    denial = risk.check(buy("0.1", ts=DAY0 + DAY))
    assert denial is not None and denial.code == "MAX_DRAWDOWN"
    assert "max_drawdown_pct 10%" in denial.reason and "peak equity 100000" in denial.reason


# -- correlation -----------------------------------------------------------------------------
def _feed_correlated(rule: MaxCorrelatedExposure | RiskEngine, n: int = 30) -> None:
    """BTC and ETH move together (ETH = 0.06 x BTC); SOL follows its own zig-zag."""
    btc = 50000.0
    for i in range(n + 2):
        btc *= 1.01 if (i * 7) % 5 < 2 else 0.99
        sol = 100.0 + (3.0 if i % 2 else -3.0) + (i % 3)
        ts = DAY0 + i * MIN
        rule.on_price(BTC.id, ts, R(f"{btc:.2f}"))
        rule.on_price(ETH.id, ts, R(f"{btc * 0.06:.2f}"))
        rule.on_price(SOL.id, ts, R(f"{sol:.2f}"))


def test_correlation_groups() -> None:
    rule = MaxCorrelatedExposure(30.0, threshold=0.8, window=20, min_periods=10, interval_ns=MIN)
    assert rule.groups() == []
    _feed_correlated(rule)
    btc_eth = rule.correlation(BTC.id, ETH.id)
    assert btc_eth is not None and btc_eth > 0.99
    sol = rule.correlation(BTC.id, SOL.id)
    assert sol is not None and abs(sol) < 0.8
    assert rule.groups() == [frozenset({BTC.id, ETH.id})]
    assert rule.group(SOL.id) == frozenset({SOL.id})


def test_max_correlated_exposure() -> None:
    cfg = RiskConfig(
        max_correlated_exposure_pct=30.0,
        correlation_window=20,
        correlation_min_periods=10,
        correlation_interval="1m",
    )
    view = FakeView(positions={ETH.id: "5"})  # 15000 of ETH
    risk = risk_engine(cfg, view)
    _feed_correlated(risk)  # fanned out by the engine to the rule
    assert risk.check(buy("0.3")) is None  # 15000 + 15000 = 30 %
    denial = risk.check(buy("0.301"))
    assert denial is not None and denial.code == "MAX_CORRELATED_EXPOSURE"
    assert "max_correlated_exposure_pct 30%" in denial.reason
    assert "BTCUSDT.SIM, ETHUSDT.SIM" in denial.reason
    # SOL is in a group of its own: 25000 of SOL alone is within 30 %
    assert risk.check(buy("250", SOL.id)) is None


def test_correlation_unknown_until_enough_data() -> None:
    rule = MaxCorrelatedExposure(30.0, window=20, min_periods=10, interval_ns=MIN)
    _feed_correlated(rule, n=5)
    assert rule.correlation(BTC.id, ETH.id) is None
    view = FakeView(positions={ETH.id: "5"})
    assert rule.check(buy("0.5"), view) is None  # BTC alone: 25000


# -- reducing and protective orders ----------------------------------------------------------
GROWTH = RiskConfig(
    max_trade_value="1",
    max_position_pct=1.0,
    max_gross_exposure_pct=1.0,
    max_open_positions=1,
    max_sector_exposure_pct=1.0,
    max_correlated_exposure_pct=1.0,
    daily_loss_pct=1.0,
    max_drawdown_pct=1.0,
)


def test_reducing_orders_pass_every_growth_limit() -> None:
    view = FakeView(positions={BTC.id: "2", ETH.id: "-10"}, account_type=AccountType.MARGIN)
    risk = risk_engine(GROWTH, view)
    risk.on_equity(DAY0, R("200000"))  # equity 100000: 50 % down on the day and from the peak
    assert risk.check(sell("2")) is None
    assert risk.check(sell("0.5")) is None
    assert risk.check(buy("10", ETH.id)) is None
    assert risk_engine(RiskConfig(min_trade_value="1000000"), view).check(sell("0.001")) is None
    # ... but not an order that flips or adds
    for o in (sell("2.001"), buy("0.001"), sell("0.001", ETH.id)):
        assert risk.check(o) is not None


def test_protective_orders_pass_size_and_rate_limits() -> None:
    cfg = RiskConfig(
        max_order_qty={"*": "0.1"},
        max_order_value="1000",
        max_orders_per_second=1,
        max_orders_per_day=1,
        max_orders_per_symbol_per_day=1,
    )
    risk = risk_engine(cfg, FakeView(positions={BTC.id: "2"}))
    assert risk.check(sell("0.01", ts=DAY0)) is None  # uses up every rate limit
    assert risk.check(sell("2", reduce_only=True, ts=DAY0)) is None
    d = risk.check(sell("2", ts=DAY0))  # reducing, but not reduce_only
    assert d is not None and d.code == "MAX_ORDER_QTY"
    d = risk.check(buy("0.01", reduce_only=True, ts=DAY0))  # reduce_only that would add
    assert d is not None and d.code == "ORDER_RATE_SECOND"


def test_rate_limits_count_only_orders_that_pass_every_rule() -> None:
    cfg = RiskConfig(max_orders_per_second=2, max_order_value="10000")
    risk = risk_engine(cfg)
    for _ in range(5):  # denied by the value limit: not counted
        assert risk.check(buy("1")) is not None
    assert risk.check(buy("0.1")) is None
    assert risk.check(buy("0.1")) is None
    d = risk.check(buy("0.1", ts=DAY0 + SEC - 1))
    assert d is not None and d.code == "ORDER_RATE_SECOND"
    assert risk.check(buy("0.1", ts=DAY0 + SEC)) is None  # the window slid past the first


def test_rate_rule_on_its_own_counts_nothing_without_the_engine() -> None:
    rule = MaxOrdersPerSecond(1)
    view = FakeView()
    assert rule.check(buy("0.1"), view) is None
    assert rule.check(buy("0.1"), view) is None


def test_growth_rules_need_a_price_and_positive_equity() -> None:
    view = FakeView(prices={})
    d = MaxPositionValue(20.0).check(buy("0.1"), view)
    assert d is not None and "no reference price" in d
    d = MaxPositionValue(20.0).check(buy("0.1"), FakeView(equity="0"))
    assert d is not None and "not positive" in d


def test_exposure_values_order_at_higher_of_last_and_limit() -> None:
    view = FakeView(positions={BTC.id: "1"})
    o = buy("1", order_type=LIMIT, price="40000")
    assert projected_exposure(o, view, R("40000")) == R("100000")  # 2 BTC at the last 50000
    o = buy("1", order_type=LIMIT, price="60000")
    assert projected_exposure(o, view, R("60000")) == R("120000")


# -- configuration ---------------------------------------------------------------------------
def test_config_from_dict_round_trip() -> None:
    data = {
        "max_order_qty": {"BTCUSDT": "0.5"},
        "max_order_value": "50000",
        "min_trade_value": 10,
        "max_trade_value": "100000",
        "max_position_pct": 25,
        "max_gross_exposure_pct": 150.0,
        "max_open_positions": 5,
        "max_sector_exposure_pct": 40.0,
        "sectors": {"BTCUSDT": "L1"},
        "max_correlated_exposure_pct": 50.0,
        "correlation_interval": "5m",
        "max_orders_per_second": 5,
        "max_orders_per_day": 1000,
        "max_orders_per_symbol_per_day": 200,
        "price_band_pct": 5,
        "check_balance": True,
        "daily_loss_pct": 3.0,
        "max_drawdown_pct": 20.0,
        "circuit_breaker": {"max_drawdown_pct": 25.0, "cooldown": "30m"},
    }
    cfg = RiskConfig.from_dict(data)
    assert cfg.max_position_pct == 25.0
    assert cfg.circuit_breaker == CircuitBreakerConfig(max_drawdown_pct=25.0, cooldown="30m")
    assert cfg.circuit_breaker.cooldown_ns == 30 * MIN
    again = RiskConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    codes = [rule.code for rule in build_rules(cfg)]
    assert len(codes) == len(set(codes)) == 16


def test_empty_config_builds_no_rules() -> None:
    assert build_rules(RiskConfig()) == []
    assert build_rules(RiskConfig.from_dict({})) == []


def test_unknown_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown risk config key\(s\): max_leverage"):
        RiskConfig.from_dict({"max_leverage": 3})
    with pytest.raises(ValueError, match=r"unknown circuit_breaker config key\(s\): trip"):
        RiskConfig.from_dict({"circuit_breaker": {"trip": 1}})


@pytest.mark.parametrize(
    "data",
    [
        {"max_order_value": "abc"},
        {"max_order_value": "-1"},
        {"max_order_value": 1.5},
        {"max_position_pct": "20"},
        {"max_position_pct": 0},
        {"max_position_pct": math.nan},
        {"daily_loss_pct": 150.0},
        {"max_open_positions": 0},
        {"max_open_positions": True},
        {"max_orders_per_day": 2.5},
        {"correlation_threshold": 1.5},
        {"correlation_window": 5, "correlation_min_periods": 10},
        {"correlation_interval": "soon"},
        {"check_balance": "yes"},
        {"sectors": ["BTCUSDT"]},
        {"max_order_qty": {"BTCUSDT": "0"}},
        {"min_trade_value": "100", "max_trade_value": "10"},
    ],
)
def test_invalid_values_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RiskConfig.from_dict(data)


# -- through a real engine -------------------------------------------------------------------
def test_denials_reach_the_journal() -> None:
    cfg = RiskConfig(max_order_value="10000", price_band_pct=5.0, max_orders_per_day=2)
    strat = Scripted(
        {
            (0, BTC.id): lambda s, b: s.buy(BTC.id, "0.2"),  # 10000: passes
            (1, BTC.id): lambda s, b: s.buy(BTC.id, "0.201"),  # 10050
            (2, BTC.id): lambda s, b: s.buy(BTC.id, "0.1", order_type=LIMIT, price="60000"),
            (3, BTC.id): lambda s, b: s.buy(BTC.id, "0.1"),  # passes: second order today
            (4, BTC.id): lambda s, b: s.buy(BTC.id, "0.1"),  # third
        }
    )
    engine, journal = make_engine(strat, cfg)
    engine.run(bars(BTC.id, ["50000"] * 6))
    got = [(d.client_order_id, d.code) for d in denials(journal)]
    assert got == [
        ("s-2", "MAX_ORDER_VALUE"),
        ("s-3", "PRICE_BAND"),
        ("s-5", "ORDER_RATE_DAY"),
    ]
    reasons = {d.code: d.reason for d in denials(journal)}
    assert reasons["MAX_ORDER_VALUE"] == "order value 10050 exceeds max_order_value 10000"
    assert "price_band_pct 5%" in reasons["PRICE_BAND"]
    assert "max_orders_per_day 2" in reasons["ORDER_RATE_DAY"]
    assert [o.status for o in strat.sent] == [
        OrderStatus.FILLED,
        OrderStatus.DENIED,
        OrderStatus.DENIED,
        OrderStatus.FILLED,
        OrderStatus.DENIED,
    ]
    assert len(events_of(journal, OrderSubmitted)) == 2


def test_position_and_balance_limits_in_an_engine() -> None:
    """Positions come from real fills; working orders count before they fill."""
    cfg = RiskConfig(max_position_pct=30.0, check_balance=True)
    strat = Scripted(
        {
            (0, BTC.id): lambda s, b: s.buy(BTC.id, "0.4"),  # 20000 of 100000
            # 0.4 held + 0.2 = 30000 of 100000
            (2, BTC.id): lambda s, b: s.buy(BTC.id, "0.2", order_type=LIMIT, price="45000"),
            (3, BTC.id): lambda s, b: s.buy(BTC.id, "0.001"),  # working buy counts: denied
            (4, BTC.id): lambda s, b: s.sell(BTC.id, "0.401"),  # more BTC than held
            (5, BTC.id): lambda s, b: s.sell(BTC.id, "0.4"),  # reduces: passes
        }
    )
    engine, journal = make_engine(strat, cfg)
    engine.run(bars(BTC.id, ["50000"] * 8))
    got = [(d.client_order_id, d.code) for d in denials(journal)]
    assert got == [("s-3", "MAX_POSITION_VALUE"), ("s-4", "INSUFFICIENT_BALANCE")]
    assert "max_position_pct 30%" in denials(journal)[0].reason
    assert engine.portfolio.position_qty(BTC.id) == 0
    assert len(events_of(journal, OrderFilled)) == 2


def test_gross_exposure_across_instruments_in_an_engine() -> None:
    cfg = RiskConfig(max_gross_exposure_pct=50.0)
    strat = Scripted(
        {
            (0, ETH.id): lambda s, b: s.buy(ETH.id, "10"),  # 30000
            (2, BTC.id): lambda s, b: s.buy(BTC.id, "0.401"),  # 20050 more
            (3, BTC.id): lambda s, b: s.buy(BTC.id, "0.4"),  # exactly 50 %
        }
    )
    engine, journal = make_engine(strat, cfg, instruments=(BTC, ETH))
    engine.run(merge(bars(BTC.id, ["50000"] * 5), bars(ETH.id, ["3000"] * 5)))
    got = [(d.client_order_id, d.code) for d in denials(journal)]
    assert got == [("s-2", "MAX_GROSS_EXPOSURE")]
    assert engine.portfolio.position_qty(BTC.id) == R("0.4")


def test_engine_view_free_balance_ignores_pending_cancels() -> None:
    strat = Scripted(
        {(0, BTC.id): lambda s, b: s.buy(BTC.id, "1", order_type=LIMIT, price="40000")}
    )
    engine, _ = make_engine(strat, balances={"USDT": "100000", "BTC": "2"})
    engine.run(bars(BTC.id, ["50000"] * 2))
    view = install_view(engine)
    [working] = engine.orders.all_open()
    assert view.free_balance("USDT") == R("60000")
    assert view.working_qty() == {BTC.id: (R("1"), 0)}
    assert view.free_balance("BTC") == R("2")
    engine.orders.cancel(working.client_order_id)
    assert view.free_balance("USDT") == R("100000")
    assert view.account_type() is AccountType.CASH and view.leverage() == 1
    assert view.now() == engine.clock.now()


def test_open_positions_first_new_one_passes() -> None:
    risk = risk_engine(RiskConfig(max_open_positions=2), FakeView(positions={ETH.id: "1"}))
    assert risk.check(buy("1", SOL.id)) is None  # the second position


def test_engine_view_from_a_callable_and_memo_only_inside_a_check() -> None:
    strat = Scripted(
        {(0, BTC.id): lambda s, b: s.buy(BTC.id, "1", order_type=LIMIT, price="40000")}
    )
    engine, _ = make_engine(strat)
    engine.run(bars(BTC.id, ["50000"] * 2))
    view = EngineRiskView(
        engine.portfolio, lambda: engine.orders.all_open(), engine.clock, engine.instruments
    )
    assert view.free_balance("USDT") == R("60000")
    assert view.working_qty() == {BTC.id: (R("1"), 0)}
    view.begin_check()
    assert view.equity() == R("100000")
    engine.portfolio.account.total["USDT"] = R("90000")
    assert view.equity() == R("100000")  # memoised for the check
    view.end_check()
    assert view.equity() == R("90000")  # live outside a check


def test_engine_knows_which_feeds_are_wanted() -> None:
    assert not RiskEngine(FakeView()).wants_prices
    risk = risk_engine(RiskConfig(max_correlated_exposure_pct=50.0, daily_loss_pct=5.0))
    assert risk.wants_prices and risk.wants_equity
    assert risk.rule("MAX_CORRELATED_EXPOSURE") is not None and risk.rule("NOPE") is None
