"""The local exchange's Alpaca dialect, driven by unmodified alpaca-py clients over 127.0.0.1.

The server replays the real SPY and IBM minute bars of 2013-10-07 at 60x, starting
at 09:25 New York time, so the market opens five replayed minutes (5 s) in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.stream import TradingStream

from exchange_helpers import DATA, wait_until
from tradepilot.venues.exchange.accounts import AccountSpec
from tradepilot.venues.exchange.faults import FaultProfile
from tradepilot.venues.exchange.replay import load_bar_data
from tradepilot.venues.exchange.server import RunningExchange, start_exchange

BARS = DATA / "equities" / "lean_us_equity_minute_trade_bars.csv.gz"
CAROL = AccountSpec("carol", "carol-key", "carol-secret", {"USD": "100000"})
DAN = AccountSpec("dan", "dan-key", "dan-secret", {"USD": "1000"})
SKIP_TO_0925_NY = (5 * 60 + 25) * 60  # the day's data starts at 04:00 New York


@pytest.fixture(scope="module")
def exchange() -> Iterator[RunningExchange]:
    data = load_bar_data(BARS, ["SPY", "IBM"], day="2013-10-07", history_days=1)
    ex = start_exchange(data, [CAROL, DAN], dialect="alpaca", speed=60.0, skip_s=SKIP_TO_0925_NY)
    ex.server.api.rate_limit = 100_000  # the tests poll faster than Alpaca's 200 calls/min
    try:
        yield ex
    finally:
        ex.stop()


def _trading(ex: RunningExchange, spec: AccountSpec = CAROL) -> TradingClient:
    return TradingClient(spec.api_key, spec.secret, paper=True, url_override=ex.base_url)


def test_clock_calendar_assets_and_data_before_the_open(exchange: RunningExchange) -> None:
    tc = _trading(exchange)
    clock = tc.get_clock()
    assert clock.is_open is False
    assert clock.timestamp.date().isoformat() == "2013-10-07"
    assert clock.next_open.hour == 9 and clock.next_open.minute == 30
    assert clock.next_close.hour == 16
    cal = tc.get_calendar()
    assert [c.date.isoformat() for c in cal] == ["2013-10-07"]
    assert {a.symbol for a in tc.get_all_assets()} == {"SPY", "IBM"}
    assert float(tc.get_account().cash) == 100000
    dc = StockHistoricalDataClient(CAROL.api_key, CAROL.secret, url_override=exchange.base_url)
    bars = dc.get_stock_bars(StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Minute))
    spy = bars["SPY"]
    assert len(spy) > 100
    assert all(b.low <= min(b.open, b.close) <= b.high for b in spy)
    assert spy[-1].timestamp < clock.timestamp
    quote = dc.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="SPY"))["SPY"]
    assert quote.bid_price < quote.ask_price
    trade = dc.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="SPY"))["SPY"]
    assert trade.price == spy[-1].close


def test_orders_positions_and_trade_updates(exchange: RunningExchange) -> None:
    tc = _trading(exchange)
    updates: list[Any] = []

    async def on_update(data: Any) -> None:
        updates.append(data)

    stream = TradingStream(
        CAROL.api_key, CAROL.secret, paper=True, url_override=f"{exchange.ws_url}/stream"
    )
    stream.subscribe_trade_updates(on_update)
    runner = threading.Thread(target=stream.run, daemon=True)
    runner.start()
    try:
        # sent while the market is closed: accepted and held until the open
        order = tc.submit_order(
            MarketOrderRequest(
                symbol="SPY", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                client_order_id="held-1",
            )
        )  # fmt: skip
        assert order.status == OrderStatus.ACCEPTED
        assert tc.get_order_by_client_id("held-1").id == order.id
        assert wait_until(lambda: tc.get_clock().is_open, timeout=20)
        assert wait_until(
            lambda: tc.get_order_by_id(order.id).status == OrderStatus.FILLED, timeout=20
        )
        filled = tc.get_order_by_id(order.id)
        assert float(filled.filled_qty) == 10
        # it met the market at the open of a bar after it was released (no look-ahead)
        dc = StockHistoricalDataClient(CAROL.api_key, CAROL.secret, url_override=exchange.base_url)
        bars = dc.get_stock_bars(
            StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Minute)
        )["SPY"]
        opens = {b.open for b in bars if b.timestamp.hour * 60 + b.timestamp.minute >= 13 * 60 + 30}
        assert float(filled.filled_avg_price) in opens
        position = tc.get_open_position("SPY")
        assert float(position.qty) == 10
        assert position.avg_entry_price == str(filled.filled_avg_price)
        cash = Decimal(tc.get_account().cash)
        assert cash == Decimal(100000) - Decimal(10) * Decimal(str(filled.filled_avg_price))
        # a resting limit, cancelled
        limit = tc.submit_order(
            LimitOrderRequest(
                symbol="SPY", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                limit_price=100,
            )
        )  # fmt: skip
        assert limit.status == OrderStatus.NEW
        open_ids = [o.id for o in tc.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))]
        assert limit.id in open_ids
        tc.cancel_order_by_id(limit.id)
        assert tc.get_order_by_id(limit.id).status == OrderStatus.CANCELED
        # a trailing stop waits for its trigger
        trail = tc.submit_order(
            TrailingStopOrderRequest(
                symbol="SPY", qty=5, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
                trail_percent=5,
            )
        )  # fmt: skip
        assert trail.status == OrderStatus.NEW and trail.hwm is not None
        tc.cancel_order_by_id(trail.id)
        # an oco exit: a take-profit limit and a stop on the same shares
        oco = tc.submit_order(
            LimitOrderRequest(
                symbol="SPY", qty=5, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
                limit_price=400, order_class=OrderClass.OCO,
                take_profit=TakeProfitRequest(limit_price=400),
                stop_loss=StopLossRequest(stop_price=100),
            )
        )  # fmt: skip
        assert oco.order_class == OrderClass.OCO and len(oco.legs or []) == 1
        assert float(tc.get_open_position("SPY").qty_available) == 5  # one lock for both
        tc.cancel_order_by_id(oco.id)
        assert tc.get_order_by_id(oco.id).status == OrderStatus.CANCELED
        assert all(
            tc.get_order_by_id(leg.id).status == OrderStatus.CANCELED for leg in oco.legs or []
        )
        # a bracket: the exit legs wait until the entry fills
        bracket = tc.submit_order(
            MarketOrderRequest(
                symbol="IBM", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                order_class=OrderClass.BRACKET, take_profit=TakeProfitRequest(limit_price=400),
                stop_loss=StopLossRequest(stop_price=100),
            )
        )  # fmt: skip
        assert wait_until(lambda: bool(tc.get_order_by_id(bracket.id).legs), timeout=20)
        legs = tc.get_order_by_id(bracket.id).legs or []
        assert sorted(str(leg.type.value) for leg in legs) == ["limit", "stop"]
        # closing the position sells at the next bar
        close = tc.close_position("IBM")
        assert close.side == OrderSide.SELL
        assert wait_until(lambda: not [p for p in tc.get_all_positions() if p.symbol == "IBM"])
        assert all(tc.get_order_by_id(leg.id).status == OrderStatus.CANCELED for leg in legs)
        assert wait_until(lambda: any(u.event == "fill" for u in updates), timeout=10)
        events = [(u.event, u.order.symbol) for u in updates]
        assert ("fill", "SPY") in events and ("canceled", "SPY") in events
        fill = next(u for u in updates if u.event == "fill" and u.order.id == order.id)
        assert fill.qty == 10 and fill.price == float(filled.filled_avg_price)
    finally:
        stream.stop()
        runner.join(10)


def test_alpaca_errors(exchange: RunningExchange) -> None:
    poor = _trading(exchange, DAN)
    assert wait_until(lambda: poor.get_clock().is_open, timeout=20)
    with pytest.raises(APIError) as info:
        poor.submit_order(
            LimitOrderRequest(
                symbol="SPY", qty=100, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                limit_price=160,
            )
        )  # fmt: skip
    assert info.value.status_code == 403
    assert "insufficient buying power" in str(info.value)
    with pytest.raises(APIError) as info:
        poor.submit_order(
            LimitOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                limit_price=160.001,
            )
        )  # fmt: skip
    assert info.value.status_code == 422
    with pytest.raises(APIError) as info:
        poor.get_order_by_id("00000000-0000-0000-0000-000000000000")
    assert info.value.status_code == 404
    with pytest.raises(APIError) as info:
        poor.get_open_position("SPY")
    assert info.value.status_code == 404
    bad = TradingClient(DAN.api_key, "wrong", paper=True, url_override=exchange.base_url)
    with pytest.raises(APIError) as info:
        bad.get_account()
    assert info.value.status_code == 403
    assert float(poor.get_account().cash) == 1000
    assert poor.get_orders() == []


def test_rate_limit_429(exchange: RunningExchange) -> None:
    api = exchange.server.api
    headers = {"APCA-API-KEY-ID": DAN.api_key, "APCA-API-SECRET-KEY": DAN.secret}
    api.rate_limit = 5
    api.calls.clear()
    try:
        codes = [
            httpx.get(f"{exchange.base_url}/v2/clock", headers=headers).status_code
            for _ in range(8)
        ]
    finally:
        api.rate_limit = 100_000
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    r = httpx.get(f"{exchange.base_url}/v2/nowhere", headers=headers)
    assert r.status_code == 404 and set(r.json()) == {"code", "message"}


def test_stop_orders_ioc_and_day_orders_expiring_at_the_close() -> None:
    data = load_bar_data(BARS, ["SPY"], day="2013-10-07")
    skip_to_1557 = (11 * 60 + 57) * 60  # 04:00 -> 15:57 New York
    ex = start_exchange(
        data, [CAROL], dialect="alpaca", speed=30.0, skip_s=skip_to_1557,
        faults=FaultProfile.from_dict(
            {"rules": [{"kind": "http_5xx", "at": [1], "paths": ["/v2/calendar"]}]}
        ),
    )  # fmt: skip
    try:
        ex.server.api.rate_limit = 100_000
        tc = _trading(ex)
        assert tc.get_clock().is_open
        last = float(tc.get_account().cash)
        assert last == 100000
        day = tc.submit_order(
            LimitOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
                limit_price=100,
            )
        )  # fmt: skip
        gtc = tc.submit_order(
            LimitOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                limit_price=100,
            )
        )  # fmt: skip
        stop = tc.submit_order(
            StopOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                stop_price=250,
            )
        )  # fmt: skip
        stop_limit = tc.submit_order(
            StopLimitOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
                stop_price=250, limit_price=251,
            )
        )  # fmt: skip
        assert stop.status == stop_limit.status == OrderStatus.NEW
        ioc = tc.submit_order(
            LimitOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.IOC,
                limit_price=100,
            )
        )  # fmt: skip
        assert wait_until(lambda: not tc.get_clock().is_open, timeout=20)
        # on minute bars an ioc meets the market at the next bar, at the latest the close
        assert tc.get_order_by_id(ioc.id).status == OrderStatus.EXPIRED
        assert wait_until(
            lambda: tc.get_order_by_id(day.id).status == OrderStatus.EXPIRED, timeout=10
        )
        assert tc.get_order_by_id(gtc.id).status == OrderStatus.NEW
        with pytest.raises(APIError) as info:  # closed: ioc is refused
            tc.submit_order(
                LimitOrderRequest(
                    symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.IOC,
                    limit_price=100,
                )
            )  # fmt: skip
        assert info.value.status_code == 422
        with pytest.raises(APIError) as info:  # the injected gateway error
            tc.get_calendar()
        assert info.value.status_code == 503
        assert [c.date.isoformat() for c in tc.get_calendar()] == ["2013-10-07"]
        hits = httpx.get(f"{ex.base_url}/_tp/faults").json()
        assert hits == {"http_5xx": 1}
    finally:
        ex.stop()
