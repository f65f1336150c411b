"""WebSocket streams of the local exchange's Binance dialect, with ccxt.pro and raw sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxtpro
import httpx
import pytest
import websockets

from exchange_helpers import ALICE, btc_data, ccxt_options, point_ccxt, signed
from tradepilot.model import fixed
from tradepilot.venues.exchange.server import RunningExchange, start_exchange

TIMEOUT = 60


@pytest.fixture(scope="module")
def exchange() -> Iterator[RunningExchange]:
    ex = start_exchange(btc_data(), [ALICE], dialect="binance", speed=4.0)
    try:
        time.sleep(0.3)
        yield ex
    finally:
        ex.stop()


def _pro(ex: RunningExchange) -> Any:
    c = ccxtpro.binance(
        {"apiKey": ALICE.api_key, "secret": ALICE.secret, "options": ccxt_options()}
    )
    return point_ccxt(c, ex.base_url)


def _server_book(
    ex: RunningExchange, depth: int
) -> tuple[int, list[list[float]], list[list[float]]]:
    def read() -> tuple[int, list[list[float]], list[list[float]]]:
        book = ex.core.symbols["BTCUSDT"].book
        assert book is not None
        bids = [[fixed.to_float(p), fixed.to_float(q)] for p, q in book.levels(1, depth)]
        asks = [[fixed.to_float(p), fixed.to_float(q)] for p, q in book.levels(-1, depth)]
        return book.update_id, bids, asks

    return ex.call(read)


def _pause(ex: RunningExchange, paused: bool) -> None:
    def set_paused() -> None:
        ex.core.replay.paused = paused

    ex.call(set_paused)


def test_watch_order_book_stays_equal_to_the_server_book(exchange: RunningExchange) -> None:
    async def run() -> int:
        c = _pro(exchange)
        checks = 0
        try:
            await c.load_markets()
            await c.watch_order_book("BTC/USDT")
            for _ in range(3):
                end = time.monotonic() + 1.5
                updates = 0
                while time.monotonic() < end:
                    await c.watch_order_book("BTC/USDT")
                    updates += 1
                assert updates > 3
                _pause(exchange, True)
                uid, bids, asks = _server_book(exchange, 50)
                ob = (
                    await c.watch_order_book("BTC/USDT")
                    if c.orderbooks["BTC/USDT"]["nonce"] < uid
                    else c.orderbooks["BTC/USDT"]
                )
                while ob["nonce"] < uid:
                    ob = await c.watch_order_book("BTC/USDT")
                assert ob["nonce"] == uid
                assert ob["bids"][:50] == bids
                assert ob["asks"][:50] == asks
                checks += 1
                _pause(exchange, False)
        finally:
            _pause(exchange, False)
            await c.close()
        return checks

    assert asyncio.run(asyncio.wait_for(run(), TIMEOUT)) == 3


def test_watch_trades(exchange: RunningExchange) -> None:
    async def run() -> list[dict[str, Any]]:
        c = _pro(exchange)
        got: list[dict[str, Any]] = []
        try:
            await c.load_markets()
            while len(got) < 20:
                got.extend(await c.watch_trades("BTC/USDT"))
        finally:
            await c.close()
        return got

    trades = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    ids = [int(t["id"]) for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    recorded = {
        t[0]: t for t in exchange.call(lambda: list(exchange.core.symbols["BTCUSDT"].trades))
    }
    for t in trades:
        _tid, _ms, px, qty, maker = recorded[int(t["id"])]
        assert Decimal(t["info"]["p"]) == fixed.to_decimal(px)
        assert Decimal(t["info"]["q"]) == fixed.to_decimal(qty)
        assert t["side"] == ("sell" if maker else "buy")


def test_watch_ticker_and_ohlcv(exchange: RunningExchange) -> None:
    async def run() -> tuple[dict[str, Any], list[list[float]], dict[str, Any]]:
        c = _pro(exchange)
        try:
            await c.load_markets()
            ticker = await c.watch_ticker("BTC/USDT")
            ohlcv = await c.watch_ohlcv("BTC/USDT", "1m")
            bid_ask = await c.watch_bids_asks(["BTC/USDT"])
        finally:
            await c.close()
        return ticker, ohlcv, bid_ask

    ticker, ohlcv, bid_ask = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    assert ticker["symbol"] == "BTC/USDT" and ticker["last"] > 0
    assert ticker["low"] <= ticker["last"] <= ticker["high"]
    o, h, lo, c = ohlcv[-1][1:5]
    assert lo <= min(o, c) <= max(o, c) <= h
    assert bid_ask["BTC/USDT"]["bid"] < bid_ask["BTC/USDT"]["ask"]


def test_watch_orders_and_balance(exchange: RunningExchange) -> None:
    async def run() -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        c = _pro(exchange)
        statuses: list[str] = []
        try:
            await c.load_markets()
            # every watch is registered before the action whose events it waits for
            orders = asyncio.ensure_future(c.watch_orders("BTC/USDT"))
            await asyncio.sleep(0.5)
            bid = (await c.fetch_order_book("BTC/USDT", 5))["bids"][0][0]
            o = await c.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2))
            statuses.append((await orders)[-1]["status"])
            await asyncio.sleep(0.5)  # the order's own balance update is delivered
            orders = asyncio.ensure_future(c.watch_orders("BTC/USDT"))
            balance = asyncio.ensure_future(c.watch_balance())
            await asyncio.sleep(0.2)
            await c.cancel_order(o["id"], "BTC/USDT")
            statuses.append((await orders)[-1]["status"])
            after_cancel = json.loads(json.dumps(await balance))  # ccxt reuses the object
            await asyncio.sleep(0.5)
            orders = asyncio.ensure_future(c.watch_orders("BTC/USDT"))
            balance = asyncio.ensure_future(c.watch_balance())
            await asyncio.sleep(0.2)
            m = await c.create_order("BTC/USDT", "market", "buy", 0.001)
            filled = await orders
            bal = json.loads(json.dumps(await balance))
            assert filled[-1]["id"] == m["id"]
            statuses.append(filled[-1]["status"])
            return statuses, after_cancel, bal
        finally:
            await c.close()

    statuses, after_cancel, bal = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    assert statuses == ["open", "canceled", "closed"]
    assert after_cancel["USDT"]["used"] == 0
    assert Decimal(str(bal["BTC"]["total"])) - Decimal(
        str(after_cancel["BTC"]["total"])
    ) == Decimal("0.001")


def test_raw_diff_stream_chains_with_the_rest_snapshot(exchange: RunningExchange) -> None:
    async def run() -> int:
        streams = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@kline_1m/btcusdt@bookTicker"
        url = f"{exchange.ws_url}/stream?streams={streams}"
        seen: set[str] = set()
        chained = 0
        async with websockets.connect(url) as ws:
            snap = httpx.get(f"{exchange.base_url}/api/v3/depth?symbol=BTCUSDT&limit=1000").json()
            last = snap["lastUpdateId"]
            prev_u: int | None = None
            end = time.monotonic() + 5
            while time.monotonic() < end and (chained < 10 or len(seen) < 4):
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                seen.add(msg["stream"])
                data = msg["data"]
                if msg["stream"] != "btcusdt@depth@100ms" or data["u"] <= last:
                    continue
                if prev_u is None:
                    assert data["U"] <= last + 1 <= data["u"]
                else:
                    assert data["U"] == prev_u + 1
                prev_u = data["u"]
                chained += 1
        assert seen == {
            "btcusdt@depth@100ms",
            "btcusdt@trade",
            "btcusdt@kline_1m",
            "btcusdt@bookTicker",
        }
        return chained

    assert asyncio.run(asyncio.wait_for(run(), TIMEOUT)) >= 10


def test_listen_key_stream(exchange: RunningExchange) -> None:
    r = httpx.post(
        f"{exchange.base_url}/api/v3/userDataStream", headers={"X-MBX-APIKEY": ALICE.api_key}
    )
    key = r.json()["listenKey"]
    assert len(key) == 60

    async def run() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        async with websockets.connect(f"{exchange.ws_url}/ws/{key}") as ws:
            await asyncio.sleep(0.2)
            res = await asyncio.to_thread(
                signed, exchange.base_url, "POST", "/api/v3/order",
                {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.001"},
            )  # fmt: skip
            assert res.status_code == 200, res.text
            while not any(e.get("X") == "FILLED" for e in events) or not any(
                e["e"] == "outboundAccountPosition" for e in events
            ):
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            dep = await asyncio.to_thread(
                httpx.post, f"{exchange.base_url}/_tp/deposit",
                json={"account": "alice", "asset": "USDT", "amount": "25"},
            )  # fmt: skip
            assert dep.status_code == 200
            while events[-1]["e"] != "balanceUpdate":
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        return events

    events = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    kinds = [e["e"] for e in events]
    assert "executionReport" in kinds and "outboundAccountPosition" in kinds
    assert events[-1] == {**events[-1], "e": "balanceUpdate", "a": "USDT", "d": "25.00000000"}
    r = httpx.delete(
        f"{exchange.base_url}/api/v3/userDataStream?listenKey={key}",
        headers={"X-MBX-APIKEY": ALICE.api_key},
    )
    assert r.status_code == 200
