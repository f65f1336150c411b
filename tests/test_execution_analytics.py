"""Execution analytics on hand-computed examples (tradepilot.analytics.execution)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradepilot.analytics.equity import equity_curve, starting_cash
from tradepilot.analytics.execution import (
    DIRECT,
    ExecutionReport,
    analyze_execution,
    summarize_executions,
)
from tradepilot.analytics.market import PriceSeries
from tradepilot.model.events import (
    Event,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderInitialized,
    OrderUpdated,
    ParentOrderFinished,
    ParentOrderStarted,
    SessionStarted,
    SessionStopped,
)
from tradepilot.model.fixed import to_raw

T = 1_700_000_000 * 10**9
SEC = 10**9
IID = "BTCUSDT.SIM"


def at(seconds: float) -> int:
    return T + round(seconds * SEC)


def init(
    cid: str,
    ts: float,
    side: int,
    qty: str,
    price: str | None = None,
    parent: str | None = None,
    strategy: str = "s1",
) -> OrderInitialized:
    return OrderInitialized(
        ts=at(ts),
        client_order_id=cid,
        instrument_id=IID,
        strategy_id=strategy,
        side=side,
        order_type="LIMIT" if price else "MARKET",
        quantity=to_raw(qty),
        price=to_raw(price) if price else None,
        parent_id=parent,
    )


def fill(cid: str, ts: float, side: int, qty: str, px: str, fee: str, n: int) -> OrderFilled:
    return OrderFilled(
        ts=at(ts),
        client_order_id=cid,
        instrument_id=IID,
        strategy_id="s1",
        trade_id=f"T{n}",
        side=side,
        last_qty=to_raw(qty),
        last_px=to_raw(px),
        fee=to_raw(fee),
        fee_currency="USDT",
        liquidity="TAKER",
    )


def two_child_buy() -> list[Event]:
    """Buy 2 over two children; 1.5 filled, the rest cancelled."""
    return [
        SessionStarted(at(0), "backtest", '{"capital":"1000"}'),
        ParentOrderStarted(
            ts=at(0),
            parent_id="P1",
            instrument_id=IID,
            strategy_id="s1",
            side=1,
            quantity=to_raw("2"),
            algorithm="twap",
            params="{}",
            arrival_px=to_raw("100.00"),
        ),
        init("P1-1", 1, 1, "1", price="100.10", parent="P1"),
        fill("P1-1", 2, 1, "1", "100.05", "0.10", 1),
        init("P1-2", 5, 1, "1", parent="P1"),
        fill("P1-2", 6, 1, "0.5", "100.20", "0.05", 2),
        OrderCanceled(at(7), "P1-2", "not enough liquidity"),
        ParentOrderFinished(at(8), "P1", "CANCELLED", to_raw("1.5"), to_raw("100.10")),
        SessionStopped(at(100), "end of data"),
    ]


MIDS = PriceSeries.of(
    [at(x) for x in (0, 1, 2, 3, 6, 7, 8, 12, 16, 70, 100)],
    [100.00, 100.02, 100.04, 100.10, 100.20, 100.30, 100.40, 100.10, 100.50, 99.90, 100.00],
)
TRADES = PriceSeries.of(
    [at(1.5), at(4), at(6), at(9)],
    [100.0, 100.2, 100.3, 101.0],
    [2.0, 3.0, 1.0, 5.0],
)


@pytest.fixture
def report() -> ExecutionReport:
    return analyze_execution(two_child_buy(), MIDS, TRADES)


def test_prices_and_slippage(report: ExecutionReport) -> None:
    (p,) = report.parents
    assert (p.parent_id, p.algorithm, p.side, p.status) == ("P1", "twap", 1, "CANCELLED")
    assert (p.n_children, p.n_fills) == (2, 2)
    assert p.arrival_px == 100.0 and p.arrival_source == "parent"
    assert p.decision_px == pytest.approx(100.02)  # mid when the first child was created
    assert p.end_px == pytest.approx(100.40)  # mid when the parent finished
    assert p.filled == 1.5 and p.quantity == 2.0
    assert p.avg_px == pytest.approx(100.10)  # (100.05 + 0.5 * 100.20) / 1.5
    assert p.fill_rate == 0.75
    assert p.slippage_bps == pytest.approx(10.0)  # bought 10 bps above arrival: a cost


def test_shortfall_components_sum_to_the_total(report: ExecutionReport) -> None:
    sf = report.parents[0].shortfall
    assert sf.delay == pytest.approx(0.03)  # 1.5 * (100.02 - 100.00)
    assert sf.trading == pytest.approx(0.12)  # 150.15 - 1.5 * 100.02
    assert sf.opportunity == pytest.approx(0.20)  # 0.5 * (100.40 - 100.00)
    assert sf.fees == pytest.approx(0.15)
    assert sf.total == pytest.approx(0.50)
    assert sf.delay + sf.trading + sf.opportunity + sf.fees == pytest.approx(sf.total, abs=1e-12)
    assert sf.arrival_notional == pytest.approx(200.0)
    assert sf.total_bps == pytest.approx(25.0)
    assert (sf.delay_bps, sf.trading_bps, sf.opportunity_bps, sf.fees_bps) == pytest.approx(
        (1.5, 6.0, 10.0, 7.5)
    )
    parts = sf.delay_bps + sf.trading_bps + sf.opportunity_bps + sf.fees_bps
    assert parts == pytest.approx(sf.total_bps)


def test_vwap_participation_and_times(report: ExecutionReport) -> None:
    p = report.parents[0]
    # trades from the first child (1 s) to the last fill (6 s): 2 @ 100.0, 3 @ 100.2, 1 @ 100.3
    assert p.vwap == pytest.approx(100.15)
    assert p.market_volume == pytest.approx(6.0)
    assert p.slippage_vwap_bps == pytest.approx((100.10 - 100.15) / 100.15 * 1e4)
    assert p.participation == pytest.approx(0.25)
    assert p.time_to_first_fill_ns == 2 * SEC
    assert p.time_to_last_fill_ns == 6 * SEC


def test_price_improvement_counts_limit_fills_only(report: ExecutionReport) -> None:
    p = report.parents[0]
    assert p.price_improvement == pytest.approx(0.05)  # limit 100.10, filled 100.05
    assert p.price_improvement_bps == pytest.approx(0.05 / 100.10 * 1e4)


def test_markouts(report: ExecutionReport) -> None:
    p = report.parents[0]
    # fill 1 (2 s, 1 @ 100.05): mids 100.10 (3 s), 100.10 (12 s), 100.50 (62 s -> as of 16 s)
    # fill 2 (6 s, 0.5 @ 100.20): mids 100.30 (7 s), 100.50 (16 s), 100.50 (66 s)
    notional = 150.15
    assert p.markout_bps(1 * SEC) == pytest.approx((0.05 + 0.05) / notional * 1e4)
    assert p.markout_bps(10 * SEC) == pytest.approx((0.05 + 0.15) / notional * 1e4)
    assert p.markout_bps(60 * SEC) == pytest.approx((0.45 + 0.15) / notional * 1e4)
    f1, f2 = report.fills
    assert f1.markouts_bps == pytest.approx(tuple(x / 100.05 * 1e4 for x in (0.05, 0.05, 0.45)))
    assert f2.slippage_bps == pytest.approx(20.0)
    assert f1.limit_px == pytest.approx(100.10) and math.isnan(f2.limit_px)


def test_markouts_beyond_the_series_are_left_out() -> None:
    short = PriceSeries.of([at(0), at(7)], [100.0, 100.3])
    p = analyze_execution(two_child_buy(), short).parents[0]
    # both fills covered at 1 s: (100.0 - 100.05) * 1 + (100.3 - 100.20) * 0.5 = 0
    assert p.markouts[0].notional == pytest.approx(150.15)
    assert p.markout_bps(1 * SEC) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(p.markout_bps(10 * SEC))
    assert math.isnan(p.vwap) and math.isnan(p.participation)  # no trades given


def test_without_market_data() -> None:
    p = analyze_execution(two_child_buy()).parents[0]
    assert p.arrival_px == 100.0
    assert p.decision_px == 100.0  # no series: no delay
    assert p.end_px == pytest.approx(100.20)  # last fill price of the instrument
    sf = p.shortfall
    assert sf.delay == 0.0
    assert sf.trading == pytest.approx(0.15)
    assert sf.opportunity == pytest.approx(0.5 * 0.20)
    assert sf.total == pytest.approx(0.15 + 0.10 + 0.15)
    assert all(math.isnan(m.bps) for m in p.markouts)


def test_a_sell_below_arrival_is_a_cost_and_a_rise_after_is_unfavourable() -> None:
    events: list[Event] = [
        init("s1-1", 10, -1, "2"),
        fill("s1-1", 10, -1, "2", "99.90", "0.2", 1),
    ]
    mids = PriceSeries.of([at(0), at(11), at(100)], [100.0, 100.1, 100.1])
    (p,) = analyze_execution(events, mids).parents
    assert p.algorithm == DIRECT and p.parent_id == "s1-1" and p.side == -1
    assert p.arrival_source == "prices" and p.arrival_px == 100.0
    assert p.slippage_bps == pytest.approx(10.0)  # sold 10 bps below arrival: a cost
    assert p.shortfall.trading == pytest.approx(0.2)
    assert p.shortfall.total == pytest.approx(0.4)
    assert p.markout_bps(SEC) == pytest.approx(-(100.1 - 99.9) / 99.9 * 1e4)  # price rose
    assert p.status == "FILLED"


def test_direct_orders_without_data_use_their_first_fill_and_denials_are_skipped() -> None:
    events: list[Event] = [
        init("s1-1", 0, 1, "1", price="50"),
        OrderUpdated(at(1), "s1-1", to_raw("1"), to_raw("51"), None),
        fill("s1-1", 2, 1, "0.4", "50.5", "0", 1),
        fill("s1-1", 3, 1, "0.6", "51", "0", 2),
        init("s1-2", 4, 1, "1"),
        OrderDenied(at(4), "s1-2", "MAX_NOTIONAL", "too big"),
    ]
    report = analyze_execution(events)
    (p,) = report.parents
    assert p.arrival_source == "first fill" and p.arrival_px == 50.5
    assert p.avg_px == pytest.approx(50.8)
    assert p.slippage_bps == pytest.approx((50.8 - 50.5) / 50.5 * 1e4)
    # the limit was raised to 51 before the fills: improvement 0.4 * 0.5 + 0.6 * 0
    assert p.price_improvement == pytest.approx(0.2)
    assert p.fill_rate == 1.0


def test_aggregation_weights_by_money() -> None:
    events = [
        *two_child_buy(),
        init("s2-1", 20, -1, "1", strategy="s2"),
        fill("s2-1", 20, -1, "1", "100.00", "0.1", 3),
    ]
    mids = PriceSeries.of(
        np.concatenate([MIDS.ts[:-2], [at(20), at(70), at(100)]]),
        np.concatenate([MIDS.price[:-2], [100.1, 99.9, 100.0]]),
    )
    report = analyze_execution(events, mids, TRADES)
    twap, direct = (report.parents[0], report.parents[1])
    assert direct.algorithm == DIRECT and direct.arrival_px == pytest.approx(100.1)
    by_algo = {s.key: s for s in report.by_algorithm}
    assert set(by_algo) == {"twap", DIRECT}
    assert by_algo["twap"].shortfall.total == pytest.approx(twap.shortfall.total)
    total = report.total
    assert total.parents == 2 and total.fills == 3
    assert total.shortfall.total == pytest.approx(twap.shortfall.total + direct.shortfall.total)
    assert total.shortfall.arrival_notional == pytest.approx(200.0 + 100.1)
    expected = (1.5 * 100.10 - 1.5 * 100.0) + (100.1 - 100.0)  # both costs
    assert total.slippage_bps == pytest.approx(expected / (150.0 + 100.1) * 1e4)
    assert total.fill_rate == pytest.approx(2.5 / 3.0)
    by_strategy = summarize_executions(report.parents, "strategy")
    assert [s.key for s in by_strategy] == ["s1", "s2"]


def test_equity_curve_marks_positions() -> None:
    events = two_child_buy()
    assert starting_cash(events) == 1000.0
    curve = equity_curve(events, MIDS, interval_ns=SEC)
    # after both fills: cash 1000 - 150.15 - 0.15, position 1.5 marked at the mid
    i = int(np.searchsorted(curve.ts, at(16)))
    assert curve.ts[i] == at(16)
    assert curve.equity[i] == pytest.approx(1000 - 150.15 - 0.15 + 1.5 * 100.50)
    assert curve.equity[-1] == pytest.approx(1000 - 150.30 + 1.5 * 100.0)
    assert curve.drawdown_is_fraction and curve.drawdown.max() <= 0.0
    # without prices, marks are fill prices
    plain = equity_curve(events)
    assert plain.equity[-1] == pytest.approx(1000 - 150.30 + 1.5 * 100.20)


def test_fills_against_the_parent_side_are_not_execution() -> None:
    """A bracket's exit leg (a sell child of a buy parent) is left out of the parent."""
    events = two_child_buy()
    events.insert(-1, init("P1-3", 30, -1, "1", parent="P1"))
    events.insert(-1, fill("P1-3", 31, -1, "1", "101", "0.1", 3))
    p = analyze_execution(events, MIDS, TRADES).parents[0]
    assert p.filled == 1.5 and p.n_fills == 2 and p.n_children == 3
    assert p.shortfall.total == pytest.approx(0.50)
