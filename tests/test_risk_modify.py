"""A modify is checked by the risk engine like a new order with the new terms.

The issue's case: a 0.1 BTC limit bid changed to 1.5 BTC at 48,000 filled despite
limits of 0.5 BTC per order, 10,000 of order value and 10 % position, and a price
moved 20 % away passed a 5 % price band. A denied modify leaves the working order
as it was, is journaled with the rule's code, and the strategy hears about it.
"""

from __future__ import annotations

import pytest

from sim_helpers import IID, Scripted, bar, journal_events, run
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.events import OrderFilled, OrderModifyDenied, OrderUpdated
from tradepilot.risk.config import RiskConfig

R = fixed.to_raw
LIMITS = RiskConfig(
    max_order_qty={"*": "0.5"},
    max_order_value="10000",
    max_position_pct=10,
    price_band_pct=5,
    max_orders_per_day=3,
)


def data() -> list[Bar]:
    """Four flat bars at 50,000, then one that trades down to 47,000 and two there."""
    flat = [bar(k, "50000", "50000", "50000", "50000") for k in range(4)]
    dip = [bar(4, "50000", "50000", "47000", "47000")]
    return flat + dip + [bar(k, "47000", "47000", "47000", "47000") for k in (5, 6)]


def modify_run(
    quantity: str | None, price: str | None, config: RiskConfig = LIMITS
) -> tuple[Scripted, list[object]]:
    strat = Scripted(
        {
            0: lambda s: s.buy(IID, "0.1", order_type=OrderType.LIMIT, price="47600"),
            2: lambda s: s.modify("s-1", quantity=quantity, price=price),
        }
    )
    engine = run(data(), strategies=[strat], risk=config)
    return strat, list(journal_events(engine))


@pytest.mark.parametrize(
    ("quantity", "price", "code"),
    [
        ("1.5", "48000", "MAX_ORDER_QTY"),
        ("0.3", "48000", "MAX_ORDER_VALUE"),  # 14,400 > 10,000
        (None, "60000", "PRICE_BAND"),  # +20 % from 50,000
    ],
)
def test_a_denied_modify_leaves_the_order_working_as_it_was(
    quantity: str | None, price: str | None, code: str
) -> None:
    strat, events = modify_run(quantity, price)
    denied = [e for e in events if isinstance(e, OrderModifyDenied)]
    assert [(d.client_order_id, d.code) for d in denied] == [("s-1", code)]
    assert denied[0].reason
    assert not [e for e in events if isinstance(e, OrderUpdated)]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(fixed.to_str(f.last_qty), fixed.to_str(f.last_px)) for f in fills] == [
        ("0.1", "47600")
    ]
    assert strat.placed[0].status is OrderStatus.FILLED
    assert any(isinstance(e, OrderModifyDenied) for e in strat.seen), "strategy not told"


def test_position_limit_counts_the_new_terms_not_the_old_and_new_together() -> None:
    # equity 100,000 USDT + 10 BTC at 50,000 = 600,000: 10 % is 60,000 of position
    cfg = RiskConfig(max_position_pct=10)
    _, events = modify_run("1.5", "48000", cfg)  # 72,000
    assert [e.code for e in events if isinstance(e, OrderModifyDenied)] == ["MAX_POSITION_VALUE"]
    # 1.2 at 48,000 is 57,600: inside, although old + new terms (1.3) would not be
    _, events = modify_run("1.2", "48000", cfg)
    assert not [e for e in events if isinstance(e, OrderModifyDenied)]
    assert sum(e.last_qty for e in events if isinstance(e, OrderFilled)) == R("1.2")


def test_a_modify_inside_the_limits_goes_through_and_counts_toward_order_rates() -> None:
    _, events = modify_run("0.2", "48000", RiskConfig(max_order_qty={"*": "0.5"}))
    assert not [e for e in events if isinstance(e, OrderModifyDenied)]
    updated = [e for e in events if isinstance(e, OrderUpdated)]
    assert [(fixed.to_str(u.quantity), fixed.to_str(u.price or 0)) for u in updated] == [
        ("0.2", "48000")
    ]
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert sum(f.last_qty for f in fills) == R("0.2")


def test_modify_counts_toward_the_daily_order_limit() -> None:
    strat = Scripted(
        {
            1: lambda s: s.buy(IID, "0.1", order_type=OrderType.LIMIT, price="47600"),
            2: lambda s: s.modify("s-1", price="47700"),
            3: lambda s: s.modify("s-1", price="47800"),  # the third order of the UTC day
        }
    )
    cfg = RiskConfig(max_orders_per_day=2)
    engine = run(data(), strategies=[strat], risk=cfg)
    denied = [e for e in journal_events(engine) if isinstance(e, OrderModifyDenied)]
    assert [d.code for d in denied] == ["ORDER_RATE_DAY"]
    assert strat.placed[0].avg_px == R("47700")
