"""Trading states, the circuit breaker and the emergency stop.

Unit checks use a hand-set view (BTC at 50000, equity 100000); the end-to-end checks
drive a real engine over one-minute bars and read its journal.
"""

from __future__ import annotations

import json

import pytest

from test_risk_support import (
    BTC,
    DAY,
    DAY0,
    ETH,
    MIN,
    FakeView,
    R,
    Scripted,
    bars,
    buy,
    denials,
    inst,
    make_engine,
    merge,
    sell,
)
from tradepilot.model.enums import AccountType, OrderStatus, OrderType
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderDenied,
    OrderInitialized,
    OrderRejected,
    OrderSubmitted,
)
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.risk.circuit_breaker import CircuitBreaker
from tradepilot.risk.config import CircuitBreakerConfig, RiskConfig, build_rules
from tradepilot.risk.engine import RiskEngine, TradingState
from tradepilot.risk.kill_switch import emergency_stop

HALTED = TradingState.HALTED
REDUCING = TradingState.REDUCING
ACTIVE = TradingState.ACTIVE
LIMIT = OrderType.LIMIT


def engine_with_long(qty: str = "1") -> RiskEngine:
    return RiskEngine(FakeView(positions={BTC.id: qty}))


# -- trading states ----------------------------------------------------------------------
def test_reducing_lets_only_reducing_orders_through() -> None:
    risk = engine_with_long()
    risk.set_state(REDUCING, "de-risking")
    assert risk.check(sell("0.5")) is None
    assert risk.check(sell("1")) is None
    for o in (buy("0.1"), sell("1.001"), sell("0.1", ETH.id)):
        d = risk.check(o)
        assert d is not None and d.code == "REDUCING_ONLY"
        assert "de-risking" in d.reason


def test_halted_blocks_new_orders_but_lets_reduce_only_flatten_through() -> None:
    risk = engine_with_long()
    risk.set_state(HALTED, "operator")
    assert risk.check(sell("1", reduce_only=True)) is None
    assert risk.check(sell("0.4", reduce_only=True)) is None
    for o in (
        buy("0.1"),
        sell("0.5"),  # reduces, but is not reduce_only
        sell("1.5", reduce_only=True),  # larger than the position
        buy("0.1", reduce_only=True),  # would add
    ):
        d = risk.check(o)
        assert d is not None and d.code == "TRADING_HALTED"
        assert d.reason == "trading is halted: operator"


def test_halted_still_reports_unknown_instruments_first() -> None:
    risk = engine_with_long()
    risk.set_state(HALTED, "x")
    d = risk.check(buy("1", "NOPE.SIM"))
    assert d is not None and d.code == "UNKNOWN_INSTRUMENT"


def test_halted_flatten_still_runs_the_other_rules() -> None:
    view = FakeView(positions={BTC.id: "1"}, balances={"BTC": "0.5"})
    risk = RiskEngine(view, build_rules(RiskConfig(check_balance=True)))
    risk.set_state(HALTED, "x")
    d = risk.check(sell("1", reduce_only=True))
    assert d is not None and d.code == "INSUFFICIENT_BALANCE"


def test_state_with_expiry_resets_on_the_next_check() -> None:
    risk = engine_with_long()
    seen: list[tuple[TradingState, str]] = []
    risk.listeners.append(lambda state, reason: seen.append((state, reason)))
    risk.set_state(HALTED, "cooling", until_ns=DAY0 + 10)
    d = risk.check(buy("0.1", ts=DAY0 + 9))
    assert d is not None and d.code == "TRADING_HALTED"
    assert risk.state is HALTED
    assert risk.check(buy("0.1", ts=DAY0 + 10)) is None
    assert risk.state is ACTIVE and risk.state_until is None
    assert [s for s, _ in seen] == [HALTED, ACTIVE]
    assert "cooling" in seen[-1][1]


def test_trading_state_round_trip() -> None:
    risk = engine_with_long()
    risk.set_state(HALTED, "daily loss", until_ns=DAY0 + DAY)
    saved = json.loads(json.dumps(risk.to_dict()))
    assert saved == {"state": "HALTED", "reason": "daily loss", "until_ns": DAY0 + DAY}
    restored = RiskEngine.from_dict(saved, FakeView())
    assert (restored.state, restored.state_reason, restored.state_until) == (
        HALTED,
        "daily loss",
        DAY0 + DAY,
    )
    other = engine_with_long()
    other.restore(saved)
    assert other.to_dict() == saved
    other.restore({"state": "ACTIVE", "reason": "", "until_ns": None})
    assert other.state is ACTIVE
    for bad in ({}, {"state": "PAUSED"}, {"state": "HALTED", "until_ns": "soon"}):
        with pytest.raises(ValueError):
            other.restore(bad)


# -- circuit breaker ---------------------------------------------------------------------
def breaker(**kw: object) -> tuple[CircuitBreaker, RiskEngine]:
    risk = RiskEngine(FakeView())
    return CircuitBreaker(risk, **kw), risk  # type: ignore[arg-type]


def test_breaker_trips_on_drawdown_and_cools_down() -> None:
    cb, risk = breaker(max_drawdown_pct=20.0, cooldown_ns=30 * MIN)
    cb.on_equity(DAY0, R("100000"))
    cb.on_equity(DAY0 + MIN, R("80000.01"))
    assert not cb.tripped and risk.state is ACTIVE
    cb.on_equity(DAY0 + 2 * MIN, R("80000"))
    assert cb.tripped and risk.state is HALTED
    assert "max_drawdown_pct 20%" in risk.state_reason
    assert risk.state_reason.startswith("circuit breaker: drawdown 20000")
    until = DAY0 + 32 * MIN
    assert cb.until == risk.state_until == until
    d = risk.check(buy("0.1", ts=until - 1))
    assert d is not None and d.code == "TRADING_HALTED" and "circuit breaker" in d.reason
    assert risk.check(buy("0.1", ts=until)) is None
    assert risk.state is ACTIVE and not cb.tripped
    # after the reset losses count from the equity seen next, so no immediate re-trip
    cb.on_equity(until, R("80000"))
    assert not cb.tripped
    cb.on_equity(until + MIN, R("64000"))  # 20 % below 80000
    assert cb.tripped and cb.trip_count == 2


def test_breaker_trips_on_daily_loss() -> None:
    cb, risk = breaker(daily_loss_pct=5.0)
    cb.on_equity(DAY0 - MIN, R("120000"))  # yesterday
    cb.on_equity(DAY0, R("100000"))  # today's first equity
    cb.on_equity(DAY0 + MIN, R("95000.01"))
    assert not cb.tripped
    cb.on_equity(DAY0 + 2 * MIN, R("95000"))
    assert cb.tripped and risk.state is HALTED
    assert "daily_loss_pct 5%" in risk.state_reason


def test_breaker_trips_on_consecutive_failures() -> None:
    cb, risk = breaker(max_consecutive_failures=3, cooldown_ns=None)
    cb.on_event(OrderRejected(DAY0, "a", "no"))
    cb.on_event(OrderRejected(DAY0, "b", "no"))
    cb.on_event(OrderAccepted(DAY0, "c", "V-1"))  # the run ends
    cb.on_event(OrderRejected(DAY0, "d", "no"))
    cb.record_failure(DAY0, "connection lost")
    assert not cb.tripped and cb.consecutive_failures == 2
    cb.on_event(OrderRejected(DAY0 + 1, "e", "rate limited"))
    assert cb.tripped and risk.state is HALTED and risk.state_until is None
    assert "max_consecutive_failures 3" in risk.state_reason
    assert "rate limited" in risk.state_reason
    d = risk.check(buy("0.1", ts=DAY0 + 100 * DAY))  # no cooldown: halted until reset
    assert d is not None and d.code == "TRADING_HALTED"
    cb.reset()
    assert risk.state is ACTIVE and not cb.tripped and cb.consecutive_failures == 0


def test_breaker_manual_trip_and_reset() -> None:
    cb, risk = breaker(cooldown_ns=10 * MIN)
    cb.trip(DAY0, "operator says stop")
    assert risk.state is HALTED and risk.state_until == DAY0 + 10 * MIN
    assert risk.state_reason == "circuit breaker: operator says stop"
    cb.trip(DAY0, "again", until_reset=True)
    assert risk.state_until is None
    cb.trip(DAY0, "short", cooldown_ns=MIN)
    assert risk.state_until == DAY0 + MIN
    assert not cb.poll(DAY0 + MIN - 1) and cb.tripped
    assert cb.poll(DAY0 + MIN) and not cb.tripped and risk.state is ACTIVE
    cb.trip(DAY0 + 2 * MIN, "by hand")
    cb.reset("resumed by hand")
    assert risk.state is ACTIVE and risk.state_reason == "resumed by hand"


def test_breaker_never_replaces_someone_elses_halt() -> None:
    cb, risk = breaker(max_drawdown_pct=10.0, cooldown_ns=MIN)
    risk.set_state(HALTED, "kill switch")
    cb.on_equity(DAY0, R("100000"))
    cb.on_equity(DAY0 + MIN, R("50000"))
    assert not cb.tripped
    assert (risk.state, risk.state_reason, risk.state_until) == (HALTED, "kill switch", None)
    cb.reset()  # not tripped: leaves the other halt alone
    assert risk.state is HALTED


def test_breaker_clears_when_the_state_is_changed_by_hand() -> None:
    cb, risk = breaker(cooldown_ns=MIN)
    cb.trip(DAY0, "x")
    risk.set_state(ACTIVE, "operator")
    assert not cb.tripped


def test_breaker_round_trip_restores_the_halt() -> None:
    cb, risk = breaker(max_drawdown_pct=20.0, max_consecutive_failures=5, cooldown_ns=30 * MIN)
    cb.on_equity(DAY0, R("100000"))
    cb.record_failure(DAY0, "timeout")
    cb.on_equity(DAY0 + MIN, R("79000"))
    assert cb.tripped
    saved_cb = json.loads(json.dumps(cb.to_dict()))
    saved_risk = json.loads(json.dumps(risk.to_dict()))

    # a restart: a fresh risk engine, restored from what was saved
    risk2 = RiskEngine.from_dict(saved_risk, FakeView())
    cb2 = CircuitBreaker.from_dict(saved_cb, risk2)
    assert cb2.to_dict() == saved_cb
    assert risk2.to_dict() == saved_risk
    assert risk2.state is HALTED and cb2.tripped
    # restoring the breaker alone is enough to halt again
    risk3 = RiskEngine(FakeView())
    CircuitBreaker.from_dict(saved_cb, risk3)
    assert risk3.to_dict() == saved_risk
    # and the restored halt still ends after its cooldown
    until = DAY0 + 31 * MIN
    assert risk2.check(buy("0.1", ts=until - 1)) is not None
    assert risk2.check(buy("0.1", ts=until)) is None and not cb2.tripped
    with pytest.raises(ValueError):
        CircuitBreaker.from_dict({"tripped": True}, RiskEngine(FakeView()))


def test_breaker_from_config() -> None:
    cfg = RiskConfig.from_dict(
        {"circuit_breaker": {"daily_loss_pct": 3, "max_consecutive_failures": 4, "cooldown": "2h"}}
    ).circuit_breaker
    assert cfg is not None
    cb = CircuitBreaker.from_config(cfg, RiskEngine(FakeView()))
    assert (cb.daily_loss_pct, cb.max_consecutive_failures, cb.cooldown_ns) == (
        3.0,
        4,
        120 * MIN,
    )
    assert CircuitBreakerConfig(cooldown=None).cooldown_ns is None


def test_breaker_halts_an_engine_after_venue_rejections() -> None:
    """Reduce-only sells without a position pass risk but the venue rejects each one."""

    def send(s: Scripted, b: object) -> None:
        s.sell(BTC.id, "0.1", reduce_only=True)

    strat = Scripted({(i, BTC.id): send for i in range(5)})
    engine, journal = make_engine(strat)
    cb = CircuitBreaker(engine.risk, max_consecutive_failures=3, cooldown_ns=10 * MIN)
    engine.bus.subscribe(Event, cb.on_event)
    engine.run(bars(BTC.id, ["50000"] * 6))
    rejected = [e for e in journal.events() if isinstance(e, OrderRejected)]
    assert [e.client_order_id for e in rejected] == ["s-1", "s-2", "s-3"]
    assert [(d.client_order_id, d.code) for d in denials(journal)] == [
        ("s-4", "TRADING_HALTED"),
        ("s-5", "TRADING_HALTED"),
    ]
    assert "max_consecutive_failures 3" in denials(journal)[0].reason


# -- emergency stop ----------------------------------------------------------------------
def assert_every_order_was_risk_checked(journal: MemoryJournal) -> None:
    """Each OrderInitialized is followed (for its id) by OrderSubmitted or OrderDenied."""
    events = journal.events()
    for i, event in enumerate(events):
        if not isinstance(event, OrderInitialized):
            continue
        cid = event.client_order_id
        nxt = next(e for e in events[i + 1 :] if getattr(e, "client_order_id", None) == cid)
        assert isinstance(nxt, OrderSubmitted | OrderDenied), (cid, nxt)


def test_emergency_stop_cancels_and_flattens_through_the_risk_path() -> None:
    cfg = RiskConfig(
        max_order_qty={"BTCUSDT": "0.5", "*": "10"},
        max_orders_per_day=5,  # all used by the strategy
        check_balance=True,
    )
    results = []

    def stop(s: Scripted, b: object) -> None:
        results.append(
            emergency_stop(
                s.engine.orders, s.engine.portfolio, s.engine.instruments, s.engine.clock
            )
        )

    strat = Scripted(
        {
            (0, BTC.id): lambda s, b: s.buy(BTC.id, "0.5"),
            (0, ETH.id): lambda s, b: s.buy(ETH.id, "5"),
            (1, BTC.id): lambda s, b: s.buy(BTC.id, "0.5"),
            # working orders: a take-profit that locks BTC, and a resting bid
            (2, BTC.id): lambda s, b: s.sell(BTC.id, "0.5", order_type=LIMIT, price="60000"),
            (2, ETH.id): lambda s, b: s.buy(ETH.id, "1", order_type=LIMIT, price="2000"),
            (3, BTC.id): stop,
            (4, BTC.id): lambda s, b: s.buy(BTC.id, "0.1"),
        }
    )
    engine, journal = make_engine(strat, cfg, instruments=(BTC, ETH))
    engine.run(merge(bars(BTC.id, ["50000"] * 7), bars(ETH.id, ["3000"] * 7)))

    [result] = results
    assert result.state is HALTED and result.complete
    assert result.cancelled == ["s-4", "s-5"]
    flatten = result.flatten_orders
    assert [(o.client_order_id, o.instrument_id, int(o.side), o.quantity) for o in flatten] == [
        ("risk-1", BTC.id, -1, R("1")),  # above max_order_qty and max_orders_per_day
        ("risk-2", ETH.id, -1, R("5")),
    ]
    assert all(o.reduce_only and o.order_type is OrderType.MARKET for o in flatten)
    assert all(o.status is OrderStatus.FILLED for o in flatten)
    # nothing left: no open order, no position, at the engine and at the venue
    assert engine.orders.all_open() == []
    assert engine.venue.open_order_ids() == []
    assert all(p.qty == 0 for p in engine.portfolio.positions.values())
    assert engine.venue.position_qty(BTC.id) == engine.venue.position_qty(ETH.id) == 0
    # trading stays halted: the strategy's next order is denied
    assert [(d.client_order_id, d.code) for d in denials(journal)] == [("s-6", "TRADING_HALTED")]
    assert engine.risk.state is HALTED
    assert_every_order_was_risk_checked(journal)
    kinds = [type(e).__name__ for e in journal.events()]
    assert "CancelAllOrders" in kinds
    # the cancels are journaled before the flatten orders
    first_flatten = next(
        i
        for i, e in enumerate(journal.events())
        if isinstance(e, OrderInitialized) and e.client_order_id == "risk-1"
    )
    assert kinds.index("CancelAllOrders") < first_flatten


def test_emergency_stop_in_a_margin_account_buys_back_shorts() -> None:
    def stop(s: Scripted, b: object) -> None:
        e = s.engine
        loss_rule = e.risk.rule("DAILY_LOSS_LIMIT")
        assert loss_rule is not None  # equity is down 10 % on the day: adding is denied
        assert loss_rule.check(buy("0.001", ts=e.clock.now()), e.risk.view) is not None
        res = emergency_stop(e.orders, e.portfolio, e.instruments, e.clock, state=REDUCING)
        assert res.complete and [int(o.side) for o in res.flatten_orders] == [-1, 1]

    strat = Scripted(
        {
            (0, BTC.id): lambda s, b: s.buy(BTC.id, "1"),
            (0, ETH.id): lambda s, b: s.sell(ETH.id, "10"),
            (2, BTC.id): stop,
            (3, BTC.id): lambda s, b: s.buy(BTC.id, "0.1"),
        }
    )
    cfg = RiskConfig(max_gross_exposure_pct=100.0, daily_loss_pct=1.0, check_balance=True)
    engine, journal = make_engine(
        strat, cfg, instruments=(BTC, ETH), account_type=AccountType.MARGIN
    )
    # prices fall on the day: the daily loss limit is hit, yet the flatten passes
    engine.run(
        merge(
            bars(BTC.id, ["50000", "50000", "45000", "45000", "45000"]),
            bars(ETH.id, ["3000", "3000", "3500", "3500", "3500"]),
        )
    )
    assert engine.orders.all_open() == []
    assert all(p.qty == 0 for p in engine.portfolio.positions.values())
    assert engine.risk.state is REDUCING
    assert [(d.client_order_id, d.code) for d in denials(journal)] == [("s-3", "REDUCING_ONLY")]
    assert_every_order_was_risk_checked(journal)


def test_emergency_stop_reports_denied_flattens() -> None:
    """A flatten below the instrument's minimum notional is denied, and reported."""
    dusty = inst("DOGEUSDT", "DOGE", min_notional="10")
    strat = Scripted({(0, dusty.id): lambda s, b: s.buy(dusty.id, "100")})
    engine, journal = make_engine(strat, instruments=(dusty,))
    engine.run(bars(dusty.id, ["0.5", "0.5", "0.05"]))  # 100 DOGE now worth 5
    res = emergency_stop(engine.orders, engine.portfolio, engine.instruments, engine.clock)
    assert not res.complete and res.flatten_orders == []
    assert [(o.instrument_id, o.status) for o in res.denied] == [(dusty.id, OrderStatus.DENIED)]
    assert denials(journal)[-1].code == "MIN_NOTIONAL"


def test_emergency_stop_refuses_to_leave_trading_active() -> None:
    engine, _ = make_engine(Scripted())
    with pytest.raises(ValueError):
        emergency_stop(
            engine.orders, engine.portfolio, engine.instruments, engine.clock, state=ACTIVE
        )
