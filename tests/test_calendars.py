"""NYSE early closes by rule, and DAY orders on equities expiring at the session's close."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

from sim_helpers import IID, Scripted, run
from tradepilot.core.calendars import nyse, nyse_early_closes
from tradepilot.data.loaders import load_bars
from tradepilot.model.enums import AssetClass, OrderSide, OrderStatus, OrderType, TimeInForce
from tradepilot.model.events import OrderExpired
from tradepilot.model.instrument import Instrument
from tradepilot.venues.sim.intake import day_order_expiry

MINUTE_BARS = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "equities"
    / "lean_us_equity_minute_trade_bars.csv.gz"
)
ONE = time(13, 0)


def ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp()) * 1_000_000_000


def equity(symbol: str = "BTCUSDT") -> Instrument:
    return Instrument.create(
        symbol, "SIM", symbol, "USD", "0.01", "1", asset_class=AssetClass.EQUITY
    )


def test_early_closes_of_the_data_years_and_by_rule_for_the_future() -> None:
    # 2013: the year of the bundled minute data
    assert nyse_early_closes(2013) == {
        date(2013, 7, 3): ONE,
        date(2013, 11, 29): ONE,
        date(2013, 12, 24): ONE,
    }
    # a Friday 3 July or 24 December is the observed holiday, not an early close
    assert date(2015, 7, 3) not in nyse_early_closes(2015)
    assert date(2021, 12, 24) not in nyse_early_closes(2021)
    assert date(2003, 12, 26) in nyse_early_closes(2003)  # irregular, from the table
    # a future year, by the rule: Thursday 3 July, the Friday after Thanksgiving, Wednesday 24 Dec
    assert set(nyse_early_closes(2031)) == {
        date(2031, 7, 3),
        date(2031, 11, 28),
        date(2031, 12, 24),
    }
    cal = nyse(holidays=True)
    assert cal.is_open(ns("2013-11-29T12:59:00-05:00"))
    assert not cal.is_open(ns("2013-11-29T13:00:00-05:00"))
    assert cal.is_open(ns("2013-11-27T15:59:00-05:00"))
    assert nyse().is_open(ns("2013-11-29T14:00:00-05:00"))  # without holidays: none


def test_day_order_expiry_follows_the_session() -> None:
    spy = equity("SPY")
    # during an early-close session: 13:00 New York
    assert day_order_expiry(spy, ns("2013-11-29T10:00:00-05:00")) == ns("2013-11-29T13:00:00-05:00")
    # pre-market: that day's close
    assert day_order_expiry(spy, ns("2013-10-04T04:07:00-04:00")) == ns("2013-10-04T16:00:00-04:00")
    # Friday after the close: Monday's close
    assert day_order_expiry(spy, ns("2013-10-04T17:00:00-04:00")) == ns("2013-10-07T16:00:00-04:00")
    # the day before Thanksgiving, then Thanksgiving (closed): Friday's early close
    assert day_order_expiry(spy, ns("2013-11-28T10:00:00-05:00")) == ns("2013-11-29T13:00:00-05:00")
    # crypto trades around the clock: UTC midnight
    btc = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001")
    noon = ns("2024-01-02T12:00:00+00:00")
    assert day_order_expiry(btc, noon) == ns("2024-01-03T00:00:00+00:00")


def test_a_day_order_on_spy_expires_at_the_new_york_close_not_utc_midnight() -> None:
    bars = load_bars(MINUTE_BARS, IID, symbol="SPY").between(None, ns("2013-10-05T00:00:00+00:00"))
    inst = equity()
    strat = Scripted(
        {
            0: lambda s: s.submit(
                IID,
                OrderSide.BUY,
                "1",
                order_type=OrderType.LIMIT,
                price="100",
                time_in_force=TimeInForce.DAY,
            )
        }
    )
    engine = run(list(bars), strategies=[strat], instrument=inst, balances={"USD": "100000"})
    order = strat.placed[0]
    assert engine.orders.orders[order.client_order_id].status is OrderStatus.EXPIRED
    expired = next(
        e for e in engine.orders.orders[order.client_order_id].events if isinstance(e, OrderExpired)
    )
    close = ns("2013-10-04T16:00:00-04:00")  # 20:00 UTC
    # expired by the first bar at or after the close, hours before UTC midnight
    assert close <= expired.ts < close + 15 * 60 * 1_000_000_000
    assert datetime.fromtimestamp(expired.ts / 1e9, UTC).hour == 20
