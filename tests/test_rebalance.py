"""Target-portfolio rebalancing: the plan (drift threshold, never oversell, cash fit,
limits), the two-phase strategy (sells filled before buys are sent), market-hours
schedules and the NYSE calendar."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tradepilot.core.time import NS_PER_MINUTE, NS_PER_SECOND
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.enums import AssetClass
from tradepilot.model.events import OrderFilled, OrderInitialized
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy import signals as sig_mod
from tradepilot.strategy.calendars import (
    AlwaysOpen,
    next_cycle,
    nyse,
    nyse_holidays,
    schedule_cycles,
)
from tradepilot.strategy.rebalance import (
    HOLDING,
    MomentumRotation,
    RebalanceConfig,
    RebalanceStrategy,
    StaticTargets,
    clip_targets,
    plan_rebalance,
)

R = fixed.to_raw
S = fixed.to_str
MIN = NS_PER_MINUTE
NY = ZoneInfo("America/New_York")


def equity(symbol: str, fee: str = "0") -> Instrument:
    return Instrument.create(
        symbol, "SIM", symbol, "USD", "0.01", "1", maker_fee_bps=fee, taker_fee_bps=fee,
        asset_class=AssetClass.EQUITY,
    )  # fmt: skip


A, B, C = equity("AAA"), equity("BBB"), equity("CCC")
INSTRUMENTS = {i.id: i for i in (A, B, C)}


def plan(
    targets: dict[str, float],
    positions: dict[str, str],
    prices: dict[str, str],
    capital: str = "10000",
    cash: str = "10000",
    owned: dict[str, str] | None = None,
    **cfg: Any,
) -> Any:
    config = RebalanceConfig(**({"max_position": 1.0, "max_exposure": 1.0} | cfg))
    return plan_rebalance(
        targets,
        {k: R(v) for k, v in positions.items()},
        {k: R(v) for k, v in prices.items()},
        R(capital),
        R(cash),
        INSTRUMENTS,
        config,
        cash_account=True,
        owned=None if owned is None else {k: R(v) for k, v in owned.items()},
    )


def trades(items: list[Any]) -> list[tuple[str, int, str]]:
    return [(t.instrument_id, t.side, S(t.quantity)) for t in items]


# -- the plan -------------------------------------------------------------------------------------
def test_sells_come_first_and_buys_use_the_cash() -> None:
    # capital 10,000: AAA holds 100 x 10 = 10 %, target 0; BBB target 10 % at 20 -> 50
    p = plan({A.id: 0.0, B.id: 0.1}, {A.id: "100"}, {A.id: "10", B.id: "20"}, cash="9000")
    assert trades(p.sells) == [(A.id, -1, "100")]
    assert trades(p.buys) == [(B.id, 1, "50")]
    assert p.sells[0].reason == "weight 10.00% -> target 0.00%"


def test_drift_below_the_threshold_is_left_alone() -> None:
    # AAA at 105 x 10 = 10.5 % against a 10 % target: drift 0.5 % < 1 %
    p = plan({A.id: 0.1}, {A.id: "105"}, {A.id: "10"}, drift_threshold=0.01)
    assert p.is_empty
    assert p.holds == {A.id: "drift 0.50% < threshold 1.00%"}
    # at 12 % the drift is 2 %: sell back to 100
    p = plan({A.id: 0.1}, {A.id: "120"}, {A.id: "10"}, drift_threshold=0.01)
    assert trades(p.sells) == [(A.id, -1, "20")]


def test_never_sell_what_the_account_does_not_own() -> None:
    # the strategy holds 100 but only 60 are free to sell (the rest promised elsewhere)
    p = plan({A.id: 0.0}, {A.id: "100"}, {A.id: "10"}, owned={A.id: "60"})
    assert trades(p.sells) == [(A.id, -1, "60")]
    assert "never sell more than the 60 owned" in p.sells[0].reason
    p = plan({A.id: 0.0}, {A.id: "100"}, {A.id: "10"}, owned={A.id: "0"})
    assert not p.sells and p.holds[A.id] == "nothing owned to sell"


def test_buys_are_scaled_to_the_free_cash() -> None:
    # two buys of 2,000 each with 2,000 of cash: both halved
    p = plan({A.id: 0.2, B.id: 0.2}, {}, {A.id: "10", B.id: "10"}, cash="2000")
    assert trades(p.buys) == [(A.id, 1, "100"), (B.id, 1, "100")]
    assert "scaled to the free cash 2000" in p.buys[0].reason


def test_fees_count_when_buys_are_fitted_to_the_cash() -> None:
    fee = equity("FFF", fee="10")  # 10 bps
    INSTRUMENTS[fee.id] = fee
    try:
        p = plan({fee.id: 1.0}, {}, {fee.id: "10"}, capital="1000", cash="1000")
        # 100 shares would cost 1,000 + 1 of fee: scaled to 99
        assert trades(p.buys) == [(fee.id, 1, "99")]
    finally:
        del INSTRUMENTS[fee.id]


def test_trade_value_limits() -> None:
    p = plan({A.id: 0.5}, {}, {A.id: "10"}, max_trade_value="2000")
    assert trades(p.buys) == [(A.id, 1, "200")]
    p = plan({A.id: 0.005}, {}, {A.id: "10"}, min_trade_value="100", drift_threshold=0.0)
    assert not p.buys and p.holds[A.id] == "buy value 50 < minimum 100"


def test_targets_are_clipped_to_the_position_and_exposure_limits() -> None:
    assert clip_targets({"a": 0.3, "b": 0.05}, 0.1, 0.8) == {"a": 0.1, "b": 0.05}
    clipped = clip_targets({"a": 0.5, "b": 0.5}, 0.6, 0.8)
    assert clipped == {"a": pytest.approx(0.4), "b": pytest.approx(0.4)}
    p = plan({A.id: 0.5}, {}, {A.id: "10"}, max_position=0.1)
    assert trades(p.buys) == [(A.id, 1, "100")]


def test_held_instruments_outside_the_targets_are_sold() -> None:
    p = plan({A.id: 0.1}, {A.id: "100", C.id: "30"}, {A.id: "10", C.id: "10"})
    assert trades(p.sells) == [(C.id, -1, "30")]
    p = plan(
        {A.id: 0.1}, {A.id: "100", C.id: "30"}, {A.id: "10", C.id: "10"},
        liquidate_unlisted=False,
    )  # fmt: skip
    assert p.is_empty


def test_momentum_rotation_with_hysteresis() -> None:
    from tradepilot.strategy.indicators import MarketState

    model = MomentumRotation(lookback_ns=10 * MIN, top_n=1, top_weight=0.1, base_weight=0.05)
    states = {i: MarketState(i) for i in ("a", "b", "c")}

    def feed(t: int, prices: dict[str, float]) -> None:
        for iid, px in prices.items():
            raw = R(f"{px:.2f}")
            states[iid].on_bar(Bar(iid, t, t - MIN, raw, raw, raw, raw, 0))

    feed(MIN, {"a": 100, "b": 100, "c": 100})
    assert isinstance(model.targets(MIN, states, ["a", "b", "c"]), object)
    feed(11 * MIN, {"a": 103, "b": 101, "c": 100})
    assert model.targets(11 * MIN, states, ["a", "b", "c"]) == {"a": 0.1, "b": 0.05, "c": 0.05}
    feed(21 * MIN, {"a": 104, "b": 106, "c": 100})  # b overtakes a: a is still rank 2 -> kept
    assert model.targets(21 * MIN, states, ["a", "b", "c"])["a"] == 0.1
    feed(31 * MIN, {"a": 100, "b": 112, "c": 104})  # a falls to rank 3 -> rotated out
    assert model.targets(31 * MIN, states, ["a", "b", "c"]) == {"a": 0.05, "b": 0.1, "c": 0.05}


# -- the strategy ---------------------------------------------------------------------------------
def minute_bars(iid: str, prices: list[float], start: int) -> list[Bar]:
    out = []
    prev = prices[0]
    for k, px in enumerate(prices):
        o, c = R(f"{prev:.2f}"), R(f"{px:.2f}")
        out.append(Bar(iid, start + (k + 1) * MIN, start + k * MIN, o, max(o, c), min(o, c), c, 0))
        prev = px
    return out


class Switching:
    """Targets that change at given times (a scripted target model)."""

    def __init__(self, schedule: list[tuple[int, dict[str, float]]]) -> None:
        self.schedule = schedule

    def targets(self, now: int, market: Any, universe: Any) -> dict[str, float]:
        current: dict[str, float] = {}
        for ts, weights in self.schedule:
            if now >= ts:
                current = weights
        return dict(current)


def run_rebalancer(model: Any, start: int, minutes: int, **cfg: Any) -> tuple[Engine, Any]:
    strat = RebalanceStrategy(
        "rb",
        [A.id, B.id],
        model,
        RebalanceConfig(
            **({"drift_threshold": 0.01, "max_position": 1.0, "max_exposure": 1.0} | cfg)
        ),
        cycle_ns=5 * MIN,
        calendar=AlwaysOpen(),
    )
    engine = Engine.simulated(
        [A, B],
        [strat],
        EngineConfig(starting_balances={"USD": "10000"}, base_currency="USD"),
        journal=MemoryJournal(),
    )
    from tradepilot.data.streams import merge_streams

    a = minute_bars(A.id, [10.0 + 0.01 * (k % 3) for k in range(minutes)], start)
    b = minute_bars(B.id, [20.0] * minutes, start)
    engine.run(merge_streams(a, b))
    return engine, strat


def test_the_rebalancer_sells_first_and_buys_once_the_sells_have_filled() -> None:
    start = 28_333_335 * MIN  # a multiple of 5 minutes
    model = Switching([(0, {A.id: 0.5, B.id: 0.0}), (start + 20 * MIN, {A.id: 0.0, B.id: 0.5})])
    engine, strat = run_rebalancer(model, start, 40)
    journal = engine.journal
    assert isinstance(journal, MemoryJournal)
    events = [sig_mod.decode(p) for *_, p in journal.rows]
    inits = [e for e in events if isinstance(e, OrderInitialized)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(e.instrument_id, e.side) for e in inits] == [(A.id, 1), (A.id, -1), (B.id, 1)]
    sell_fill = next(f for f in fills if f.side < 0)
    buy_init = inits[2]
    assert sell_fill.ts <= buy_init.ts  # the buy was sent after the sell had filled
    seq = [type(e).__name__ + getattr(e, "client_order_id", "") for e in events]
    assert seq.index(f"OrderFilled{inits[1].client_order_id}") < seq.index(
        f"OrderInitialized{buy_init.client_order_id}"
    )
    # the cash the sell freed paid for the buy: 5,000 of BBB at 20 = 250 shares
    assert S(strat.pipeline.ledger.qty(B.id)) == "250" and strat.pipeline.ledger.qty(A.id) == 0
    assert strat.phase == "IDLE"


def test_cycles_with_nothing_to_do_say_holding() -> None:
    start = 28_333_335 * MIN
    model = StaticTargets({A.id: 0.2, B.id: 0.2})
    _, strat = run_rebalancer(model, start, 30)
    assert strat.rebalances == 1
    assert strat.reason == HOLDING
    assert strat.status()["reason"] == "holding: positions match targets"
    assert strat.pipeline.holds.to_dict()["AT_TARGET"] == strat.cycles - 1
    assert {k: S(v.qty) for k, v in strat.pipeline.ledger.positions.items()} == {
        A.id: "200",
        B.id: "100",
    }


# -- calendars ------------------------------------------------------------------------------------
def ns(text: str, tz: ZoneInfo = NY) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()) * NS_PER_SECOND


def test_nyse_regular_hours_in_new_york_time_across_daylight_saving() -> None:
    cal = nyse()
    assert cal.is_open(ns("2013-10-07T09:30:00"))  # EDT, 13:30 UTC
    assert not cal.is_open(ns("2013-10-07T09:29:59"))
    assert cal.is_open(ns("2013-10-07T15:59:59"))
    assert not cal.is_open(ns("2013-10-07T16:00:00"))
    assert cal.is_open(ns("2013-12-09T09:30:00"))  # EST, 14:30 UTC
    assert not cal.is_open(ns("2013-10-05T12:00:00"))  # Saturday
    assert cal.next_open(ns("2013-10-04T16:30:00")) == ns("2013-10-07T09:30:00")


def test_nyse_holidays_by_rule() -> None:
    assert date(2013, 11, 28) in nyse_holidays(2013)  # Thanksgiving
    assert date(2024, 3, 29) in nyse_holidays(2024)  # Good Friday
    assert date(2021, 12, 24) in nyse_holidays(2021)  # Christmas on a Saturday
    assert date(2022, 6, 20) in nyse_holidays(2022)  # Juneteenth observed on Monday
    assert date(2022, 12, 31) not in nyse_holidays(2022)  # New Year 2023 on a Sunday
    assert date(2023, 1, 2) in nyse_holidays(2023)
    assert len(nyse_holidays(2013)) == 9 and len(nyse_holidays(2024)) == 10
    cal = nyse(holidays=True)
    assert not cal.is_open(ns("2013-11-28T11:00:00"))
    assert nyse().is_open(ns("2013-11-28T11:00:00"))  # holidays are optional


def test_cycles_run_on_aligned_boundaries_in_market_hours_without_bursts() -> None:
    cal = nyse()
    assert next_cycle(ns("2013-10-07T09:31:10"), 5 * MIN, cal) == ns("2013-10-07T09:35:00")
    assert next_cycle(ns("2013-10-07T15:56:00"), 5 * MIN, cal) == ns("2013-10-08T09:30:00")
    assert next_cycle(ns("2013-10-04T17:00:00"), 5 * MIN, cal) == ns("2013-10-07T09:30:00")

    fired: list[int] = []
    engine = Engine.simulated(
        [A], [], EngineConfig(starting_balances={"USD": "1"}, base_currency="USD")
    )
    start = ns("2013-10-07T15:40:00")
    engine.clock.ts = start
    schedule_cycles(engine, 5 * MIN, cal, fired.append)
    # data at 15:40-15:59 and the next morning 09:30-09:41: the night is skipped, not replayed
    data = minute_bars(A.id, [10.0] * 20, start) + minute_bars(
        A.id, [10.0] * 12, ns("2013-10-08T09:30:00")
    )
    engine.run(data)
    labels = [datetime.fromtimestamp(t // NS_PER_SECOND, NY).strftime("%d %H:%M") for t in fired]
    assert labels == ["07 15:40", "07 15:45", "07 15:50", "07 15:55", "08 09:30", "08 09:35",
                      "08 09:40"]  # fmt: skip
