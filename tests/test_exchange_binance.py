"""The local exchange's Binance dialect, driven by the unmodified ccxt client over 127.0.0.1.

The server replays the real spot BTCUSDT L2 session of 2024-08-08 at 5x; every
account trades on its own simulated venue against that recorded book.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import httpx
import pytest

from exchange_helpers import ALICE, BOB, btc_data, ccxt_options, point_ccxt, signed, state
from tradepilot.venues.exchange.server import RunningExchange, start_exchange


@pytest.fixture(scope="module")
def exchange() -> Iterator[RunningExchange]:
    ex = start_exchange(btc_data(), [ALICE, BOB], dialect="binance", speed=5.0)
    try:
        time.sleep(0.3)  # the snapshot and the first updates
        yield ex
    finally:
        ex.stop()


@pytest.fixture
def client(exchange: RunningExchange) -> ccxt.binance:
    c = ccxt.binance({"apiKey": ALICE.api_key, "secret": ALICE.secret, "options": ccxt_options()})
    point_ccxt(c, exchange.base_url)
    c.load_markets()
    return c


def _balances(base_url: str, account: str = "alice") -> dict[str, Any]:
    bal: dict[str, Any] = state(base_url)["accounts"][account]["balances"]
    return bal


def _open(base_url: str, account: str = "alice") -> list[int]:
    ids: list[int] = state(base_url)["accounts"][account]["open_orders"]
    return ids


def test_public_endpoints(exchange: RunningExchange, client: ccxt.binance) -> None:
    assert "BTC/USDT" in client.markets
    market = client.market("BTC/USDT")
    assert market["precision"]["price"] == 0.01
    assert market["precision"]["amount"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0
    assert client.fetch_time() > 0
    book = client.fetch_order_book("BTC/USDT", 50)
    assert len(book["bids"]) == 50 and len(book["asks"]) == 50
    assert book["bids"][0][0] < book["asks"][0][0]
    assert book["nonce"] > 0
    trades = client.fetch_trades("BTC/USDT", limit=20)
    assert 0 < len(trades) <= 20
    assert all(50_000 < t["price"] < 70_000 for t in trades)
    ohlcv = client.fetch_ohlcv("BTC/USDT", "1m", limit=10)
    assert ohlcv and all(len(row) == 6 for row in ohlcv)
    o, h, lo, c = ohlcv[-1][1:5]
    assert lo <= min(o, c) <= max(o, c) <= h
    ticker = client.fetch_ticker("BTC/USDT")
    assert ticker["bid"] is not None and ticker["ask"] is not None
    assert ticker["bid"] < ticker["ask"]


def test_balance_and_market_order_fills_exactly(
    exchange: RunningExchange, client: ccxt.binance
) -> None:
    before = client.fetch_balance()
    assert before["total"]["USDT"] == 100000 or before["total"]["USDT"] > 0
    order = client.create_order("BTC/USDT", "market", "buy", 0.002)
    assert order["status"] == "closed"
    assert order["filled"] == 0.002
    fetched = client.fetch_order(order["id"], "BTC/USDT")
    assert fetched["status"] == "closed" and fetched["filled"] == 0.002
    trades = client.fetch_my_trades("BTC/USDT")
    mine = [t for t in trades if t["order"] == order["id"]]
    assert sum(Decimal(str(t["amount"])) for t in mine) == Decimal("0.002")
    cost = sum(Decimal(t["info"]["quoteQty"]) for t in mine)
    fee = sum(Decimal(t["info"]["commission"]) for t in mine)
    after = client.fetch_balance()
    usdt_before = Decimal(str(before["total"]["USDT"]))
    usdt_after = Decimal(str(after["total"]["USDT"]))
    assert usdt_before - usdt_after == cost + fee
    assert Decimal(str(after["total"]["BTC"])) - Decimal(str(before["total"]["BTC"])) == Decimal(
        "0.002"
    )
    # fees are 10 bps of the notional, charged in the quote asset
    assert fee == (cost * Decimal("0.001")).quantize(Decimal("0.000000001"))


def test_limit_order_lifecycle(exchange: RunningExchange, client: ccxt.binance) -> None:
    bid = client.fetch_order_book("BTC/USDT", 5)["bids"][0][0]
    price = round(bid * 0.9, 2)
    order = client.create_order(
        "BTC/USDT", "limit", "buy", 0.001, price, {"newClientOrderId": "life-1"}
    )
    assert order["status"] == "open" and order["clientOrderId"] == "life-1"
    open_orders = client.fetch_open_orders("BTC/USDT")
    assert [o["id"] for o in open_orders] == [order["id"]]
    locked = Decimal(_balances(exchange.base_url)["USDT"]["locked"])
    assert locked == (Decimal(str(price)) * Decimal("0.001") * Decimal("1.001")).quantize(
        Decimal("0.000000001")
    )
    by_cid = client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "life-1"})
    assert by_cid["id"] == order["id"]
    canceled = client.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert client.fetch_open_orders("BTC/USDT") == []
    assert Decimal(_balances(exchange.base_url)["USDT"]["locked"]) == 0
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(order["id"], "BTC/USDT")
    everything = client.fetch_orders("BTC/USDT")
    assert order["id"] in [o["id"] for o in everything]


def test_order_types_and_time_in_force(exchange: RunningExchange, client: ccxt.binance) -> None:
    book = client.fetch_order_book("BTC/USDT", 5)
    bid, ask = book["bids"][0][0], book["asks"][0][0]
    # IOC far from the market: nothing fills, the order expires
    ioc = client.create_order(
        "BTC/USDT", "limit", "buy", 0.001, round(bid * 0.95, 2), {"timeInForce": "IOC"}
    )
    assert ioc["status"] == "expired" and ioc["filled"] == 0
    # FOK through the book: fills in full at once
    fok = client.create_order(
        "BTC/USDT", "limit", "buy", 0.001, round(ask * 1.01, 2), {"timeInForce": "FOK"}
    )
    assert fok["status"] == "closed" and fok["filled"] == 0.001
    # LIMIT_MAKER that would cross is refused; one that rests is accepted
    with pytest.raises(ccxt.InvalidOrder):
        client.create_order("BTC/USDT", "LIMIT_MAKER", "buy", 0.001, round(ask * 1.01, 2))
    maker = client.create_order("BTC/USDT", "LIMIT_MAKER", "buy", 0.001, round(bid * 0.97, 2))
    assert maker["status"] == "open"
    client.cancel_order(maker["id"], "BTC/USDT")
    # stop-loss and take-profit limits wait for their trigger
    stop = client.create_order(
        "BTC/USDT", "STOP_LOSS_LIMIT", "sell", 0.001, round(bid * 0.8, 2),
        {"stopPrice": round(bid * 0.81, 2), "timeInForce": "GTC"},
    )  # fmt: skip
    assert stop["status"] == "open"
    tp = client.create_order(
        "BTC/USDT", "TAKE_PROFIT_LIMIT", "sell", 0.001, round(ask * 1.2, 2),
        {"stopPrice": round(ask * 1.19, 2), "timeInForce": "GTC"},
    )  # fmt: skip
    assert tp["status"] == "open"
    assert Decimal(_balances(exchange.base_url)["BTC"]["locked"]) == Decimal("0.002")
    with pytest.raises(ccxt.InvalidOrder):  # would trigger immediately
        client.create_order(
            "BTC/USDT", "STOP_LOSS_LIMIT", "sell", 0.001, round(ask * 1.05, 2),
            {"stopPrice": round(ask * 1.05, 2), "timeInForce": "GTC"},
        )  # fmt: skip
    for o in (stop, tp):
        client.cancel_order(o["id"], "BTC/USDT")
    assert Decimal(_balances(exchange.base_url)["BTC"]["locked"]) == 0


def test_unified_stop_loss_and_take_profit_params(
    exchange: RunningExchange, client: ccxt.binance
) -> None:
    book = client.fetch_order_book("BTC/USDT", 5)
    bid, ask = book["bids"][0][0], book["asks"][0][0]
    sl = client.create_order(
        "BTC/USDT",
        "limit",
        "sell",
        0.001,
        round(bid * 0.8, 2),
        {"stopLossPrice": round(bid * 0.81, 2)},
    )
    tp = client.create_order(
        "BTC/USDT",
        "limit",
        "sell",
        0.001,
        round(ask * 1.2, 2),
        {"takeProfitPrice": round(ask * 1.19, 2)},
    )
    assert client.fetch_order(sl["id"], "BTC/USDT")["info"]["type"] == "STOP_LOSS_LIMIT"
    fetched = client.fetch_order(tp["id"], "BTC/USDT")
    assert fetched["info"]["type"] == "TAKE_PROFIT_LIMIT"
    assert fetched["triggerPrice"] == round(ask * 1.19, 2)
    for o in (sl, tp):
        client.cancel_order(o["id"], "BTC/USDT")


def test_max_num_orders(exchange: RunningExchange) -> None:
    base = exchange.base_url
    api = exchange.server.api
    bid = Decimal(httpx.get(f"{base}/api/v3/ticker/bookTicker?symbol=BTCUSDT").json()["bidPrice"])
    order = {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.001", "price": str((bid * Decimal("0.9")).quantize(Decimal("0.01"))),
    }  # fmt: skip
    api.max_num_orders = 2
    try:
        codes = [signed(base, "POST", "/api/v3/order", order).status_code for _ in range(3)]
        r = signed(base, "POST", "/api/v3/order", order)
        assert codes == [200, 200, 400]
        assert r.json() == {"code": -1013, "msg": "Filter failure: MAX_NUM_ORDERS"}
    finally:
        api.max_num_orders = 200
        signed(base, "DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})


def test_response_types(exchange: RunningExchange) -> None:
    base = exchange.base_url
    bid = Decimal(httpx.get(f"{base}/api/v3/ticker/bookTicker?symbol=BTCUSDT").json()["bidPrice"])
    price = str((bid * Decimal("0.9")).quantize(Decimal("0.01")))
    common = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    ack = signed(
        base,
        "POST",
        "/api/v3/order",
        {**common, "quantity": "0.001", "price": price, "newOrderRespType": "ACK"},
    ).json()
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    result = signed(
        base,
        "POST",
        "/api/v3/order",
        {**common, "quantity": "0.001", "price": price, "newOrderRespType": "RESULT"},
    ).json()
    assert result["status"] == "NEW" and "fills" not in result
    full = signed(
        base, "POST", "/api/v3/order", {**common, "quantity": "0.001", "price": price}
    ).json()
    assert full["fills"] == []
    test = signed(
        base, "POST", "/api/v3/order/test", {**common, "quantity": "0.001", "price": price}
    )
    assert test.status_code == 200 and test.json() == {}
    r = signed(base, "DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert r.status_code == 200 and len(r.json()) == 3
    assert all(o["status"] == "CANCELED" for o in r.json())


def _code(r: httpx.Response) -> tuple[int, int]:
    return r.status_code, int(r.json()["code"])


def test_errors_are_binance_errors_and_change_nothing(exchange: RunningExchange) -> None:
    base = exchange.base_url
    before = state(base)["accounts"]
    bid = Decimal(httpx.get(f"{base}/api/v3/ticker/bookTicker?symbol=BTCUSDT").json()["bidPrice"])
    price = str((bid * Decimal("0.9")).quantize(Decimal("0.01")))
    order = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": price,
    }
    assert _code(signed(base, "POST", "/api/v3/order", order, secret="wrong")) == (400, -1022)
    old = int(time.time() * 1000) - 60_000
    assert _code(signed(base, "POST", "/api/v3/order", order, timestamp=old)) == (400, -1021)
    ahead = int(time.time() * 1000) + 5_000
    assert _code(signed(base, "POST", "/api/v3/order", order, timestamp=ahead)) == (400, -1021)
    assert _code(signed(base, "POST", "/api/v3/order", order, key="nobody")) == (401, -2015)
    assert _code(signed(base, "POST", "/api/v3/order", order, key="")) == (401, -2014)
    r = signed(base, "POST", "/api/v3/order", {**order, "quantity": "0.000015"})
    assert _code(r) == (400, -1013) and r.json()["msg"] == "Filter failure: LOT_SIZE"
    r = signed(
        base, "POST", "/api/v3/order", {**order, "price": str(Decimal(price) + Decimal("0.005"))}
    )
    assert _code(r) == (400, -1013) and r.json()["msg"] == "Filter failure: PRICE_FILTER"
    r = signed(base, "POST", "/api/v3/order", {**order, "quantity": "0.00001"})
    assert _code(r) == (400, -1013) and r.json()["msg"] == "Filter failure: NOTIONAL"
    r = signed(base, "POST", "/api/v3/order", {**order, "price": "1.00", "quantity": "6"})
    assert r.json()["msg"] == "Filter failure: PERCENT_PRICE_BY_SIDE"
    r = signed(base, "POST", "/api/v3/order", {**order, "symbol": "NOPE"})
    assert _code(r) == (400, -1121)
    r = signed(base, "POST", "/api/v3/order", {k: v for k, v in order.items() if k != "side"})
    assert _code(r) == (400, -1102)
    r = signed(base, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 999999})
    assert _code(r) == (400, -2013)
    r = signed(base, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 999999})
    assert _code(r) == (400, -2011)
    # bob has 50 USDT: 0.001 BTC at 90% of the bid needs about 55
    r = signed(base, "POST", "/api/v3/order", order, account=BOB)
    assert _code(r) == (400, -2010)
    assert r.json()["msg"] == "Account has insufficient balance for requested action."
    after = state(base)["accounts"]
    for name in ("alice", "bob"):
        assert after[name]["balances"] == before[name]["balances"]
        assert after[name]["open_orders"] == before[name]["open_orders"]
        assert after[name]["orders"] == before[name]["orders"]
    # a duplicate client order id among open orders is refused, and changes nothing
    ok = signed(base, "POST", "/api/v3/order", {**order, "newClientOrderId": "dup-1"})
    assert ok.status_code == 200
    mid = state(base)["accounts"]["alice"]
    dup = signed(base, "POST", "/api/v3/order", {**order, "newClientOrderId": "dup-1"})
    assert _code(dup) == (400, -2010) and dup.json()["msg"] == "Duplicate order sent."
    assert state(base)["accounts"]["alice"]["balances"] == mid["balances"]
    assert state(base)["accounts"]["alice"]["open_orders"] == mid["open_orders"]
    signed(base, "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "dup-1"})
    # garbage never produces a traceback
    r = httpx.post(
        f"{base}/api/v3/order", content=b"\xff\xfe", headers={"X-MBX-APIKEY": "alice-key"}
    )
    assert r.status_code in (400, 401) and "code" in r.json()
    r = httpx.get(f"{base}/api/v3/depth?symbol=BTCUSDT&limit=abc")
    assert _code(r) == (400, -1100)


def test_request_weight_header_and_429(exchange: RunningExchange) -> None:
    base = exchange.base_url
    r = httpx.get(f"{base}/api/v3/ping")
    used = int(r.headers["X-MBX-USED-WEIGHT-1M"])
    assert used > 0
    api = exchange.server.api
    api.weight_limit = used + 20
    try:
        statuses = [
            httpx.get(f"{base}/api/v3/depth?symbol=BTCUSDT&limit=100").status_code for _ in range(6)
        ]
        assert 429 in statuses
        r = httpx.get(f"{base}/api/v3/ping")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert r.json()["code"] == -1003
    finally:
        api.weight_limit = 6000
        api.limited.clear()


def test_async_ccxt_client(exchange: RunningExchange) -> None:
    async def run() -> None:
        c = ccxt_async.binance(
            {"apiKey": ALICE.api_key, "secret": ALICE.secret, "options": ccxt_options()}
        )
        point_ccxt(c, exchange.base_url)
        try:
            await c.load_markets()
            book = await c.fetch_order_book("BTC/USDT", 10)
            assert book["bids"][0][0] < book["asks"][0][0]
            assert await c.fetch_trades("BTC/USDT", limit=5)
            assert await c.fetch_ohlcv("BTC/USDT", "1m", limit=5)
            bal = await c.fetch_balance()
            assert bal["total"]["USDT"] > 0
            bid = book["bids"][0][0]
            o = await c.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2))
            assert (await c.fetch_order(o["id"], "BTC/USDT"))["status"] == "open"
            assert [x["id"] for x in await c.fetch_open_orders("BTC/USDT")] == [o["id"]]
            await c.cancel_order(o["id"], "BTC/USDT")
            m = await c.create_order("BTC/USDT", "market", "sell", 0.001)
            assert m["status"] == "closed"
            mine = await c.fetch_my_trades("BTC/USDT")
            assert m["id"] in [t["order"] for t in mine]
        finally:
            await c.close()

    asyncio.run(asyncio.wait_for(run(), 60))


def test_garbage_requests_get_binance_errors_never_a_traceback(exchange: RunningExchange) -> None:
    """Random parameters on every endpoint: each answer is 2xx or a Binance error body."""
    rng = random.Random(11)
    paths = [
        ("GET", p)
        for p in (
            "ping", "time", "exchangeInfo", "depth", "trades", "aggTrades", "klines",
            "ticker/bookTicker", "ticker/24hr", "avgPrice", "order", "openOrders",
            "allOrders", "myTrades", "account", "nothing",
        )
    ]  # fmt: skip
    paths += [("POST", "order"), ("POST", "order/test"), ("DELETE", "order"), ("PATCH", "order")]
    values = ["", "abc", "-1", "0", "1e5", "NaN", "9" * 25, "0.001", "BTCUSDT", '["BTCUSDT"]']
    keys = [
        "symbol", "limit", "orderId", "origClientOrderId", "startTime", "interval", "side",
        "type", "timeInForce", "quantity", "price", "stopPrice", "quoteOrderQty", "symbols",
    ]  # fmt: skip
    for _ in range(120):
        method, path = rng.choice(paths)
        params = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 8))}
        r = signed(exchange.base_url, method, f"/api/v3/{path}", params)
        assert r.status_code < 500, (method, path, params, r.text)
        if r.status_code >= 400:
            assert set(r.json()) == {"code", "msg"}, (method, path, params, r.text)
    signed(exchange.base_url, "DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
