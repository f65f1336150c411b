"""The simulated venue enforces a real exchange's filters, and the algorithms respect them."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest

from sim_helpers import IID, MIDNIGHT, SEC, Scripted, make_instrument, run, trade
from tradepilot.app.compare import CompareSpec, algorithm_names, run_compare
from tradepilot.model import fixed
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType
from tradepilot.model.events import OrderAccepted, OrderInitialized, OrderRejected
from tradepilot.persistence.journal import read_events
from tradepilot.venues.sim.filters import ExchangeFilters

BINANCE = ExchangeFilters.binance_spot()
T = MIDNIGHT


def burst(n: int, **kwargs: Any) -> Any:
    def action(s: Scripted) -> None:
        for _ in range(n):
            s.placed.append(s.submit(IID, OrderSide.BUY, "0.001", **kwargs))

    return action


def rejections(engine: Any) -> list[str]:
    return [
        e.reason
        for o in engine.orders.orders.values()
        for e in o.events
        if isinstance(e, OrderRejected)
    ]


def test_no_limits_by_default() -> None:
    strat = Scripted({0: burst(60, order_type=OrderType.LIMIT, price="50")})
    engine = run([trade(T, "100"), trade(T + SEC, "100")], strategies=[strat])
    assert rejections(engine) == []


def test_order_rate_limit_per_window() -> None:
    strat = Scripted(
        {
            0: burst(51, order_type=OrderType.LIMIT, price="50"),
            1: burst(1, order_type=OrderType.LIMIT, price="50"),
        }
    )
    engine = run(
        [trade(T, "100"), trade(T + 11 * SEC, "100")],
        strategies=[strat],
        exchange_filters=ExchangeFilters(max_orders=50),
    )
    reasons = rejections(engine)
    assert reasons == ["Too many new orders: more than 50 in 10 s"]
    assert strat.placed[50].status is OrderStatus.REJECTED
    assert strat.placed[51].status is OrderStatus.ACCEPTED  # the window has passed


def test_open_orders_limit() -> None:
    strat = Scripted({0: burst(4, order_type=OrderType.LIMIT, price="50")})
    engine = run(
        [trade(T, "100")], strategies=[strat], exchange_filters=ExchangeFilters(max_open_orders=3)
    )
    assert rejections(engine) == ["Filter failure: MAX_NUM_ORDERS: 3 orders already open"]


@pytest.mark.parametrize(
    ("price", "ok"), [("499", True), ("501", False), ("21", True), ("19", False)]
)
def test_percent_price_band(price: str, ok: bool) -> None:
    strat = Scripted({1: burst(1, order_type=OrderType.LIMIT, price=price)})
    engine = run(
        [trade(T, "100"), trade(T + SEC, "100")],
        strategies=[strat],
        balances={"USDT": "1000000", "BTC": "10"},
        exchange_filters=BINANCE,
    )
    reasons = rejections(engine)
    assert (reasons == []) is ok, reasons
    if not ok:
        assert reasons[0].startswith("Filter failure: PERCENT_PRICE_BY_SIDE")


def test_minimum_notional_is_refused_with_the_venue_reason() -> None:
    inst = make_instrument(min_notional="5")
    strat = Scripted(
        {
            1: lambda s: s.submit(
                IID, OrderSide.BUY, "0.001", order_type=OrderType.LIMIT, price="100"
            )
        }
    )
    engine = run(
        [trade(T, "100"), trade(T + SEC, "100")], strategies=[strat], instrument=inst, check=False
    )
    order = next(iter(engine.orders.orders.values()))
    assert order.status in (OrderStatus.DENIED, OrderStatus.REJECTED)
    assert "notional" in order.events[-1].reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_orders": 0},
        {"max_open_orders": -1},
        {"price_up": 0.5},
        {"price_down": 1.5},
        {"price_up": float("nan")},
        {"rate_window_ns": 0},
    ],
)
def test_bad_filter_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ExchangeFilters(**bad)


# -- the acceptance run: compare --quantity 20 --duration 5m on the real L2 session --


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    out = tmp_path_factory.mktemp("filters")
    return run_compare(CompareSpec(quantity="20", algorithms=tuple(algorithm_names()), out_dir=out))


def test_every_child_order_is_inside_the_venue_filters(compared: list[Any]) -> None:
    for r in compared:
        events = read_events(r.journal)
        children = [e for e in events if isinstance(e, OrderInitialized)]
        assert children, r.algorithm
        assert not [e for e in events if isinstance(e, OrderRejected)], r.algorithm
        accepted = [e.ts for e in events if isinstance(e, OrderAccepted)]
        window: deque[int] = deque()
        for ts in accepted:  # at most 50 new orders in any 10 s
            window.append(ts)
            while window[0] <= ts - 10 * SEC:
                window.popleft()
            assert len(window) <= 50, r.algorithm
        for c in children:
            assert c.quantity >= fixed.to_raw("0.00001")
            ref = c.price or r.parent.arrival_px * 1e9  # market children: about the arrival
            assert c.quantity / 1e9 * ref / 1e9 >= 5.0 * 0.99, (r.algorithm, c)
        # POV's default no longer sprays thousands of $4 orders
        if r.algorithm == "pov":
            assert len(children) <= 100


def test_participation_never_exceeds_the_market_unflagged(compared: list[Any]) -> None:
    for r in compared:
        p = r.parent
        assert p is not None and p.status == "DONE", r.algorithm
        assert p.participation != p.participation or p.participation <= 1.0, r.algorithm


def test_small_slices_are_merged_up_to_the_venue_minimum(tmp_path: Any) -> None:
    # 0.001 BTC in 20 TWAP slices would be 0.00005 BTC (~$3) each, below the $5 minimum
    spec = CompareSpec(
        quantity="0.001", algorithms=("twap",), out_dir=tmp_path, params={"twap": {"slices": 20}}
    )
    (r,) = run_compare(spec)
    children = [e for e in read_events(r.journal) if isinstance(e, OrderInitialized)]
    assert 1 < len(children) < 20
    assert all(c.quantity >= fixed.to_raw("0.00009") for c in children[:-1])
    assert r.parent.filled == pytest.approx(0.001)
