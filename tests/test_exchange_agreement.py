"""Fills reported through REST, the user-data stream and myTrades agree with the
simulated venue's own record and with the balances, to the last unit."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import httpx
import websockets

from exchange_helpers import ALICE, btc_data, signed, state
from tradepilot.venues.exchange.server import start_exchange

D = Decimal


def test_rest_stream_my_trades_and_venue_agree() -> None:
    ex = start_exchange(btc_data(), [ALICE], dialect="binance", speed=4.0)
    try:
        time.sleep(0.3)
        base = ex.base_url
        key = httpx.post(
            f"{base}/api/v3/userDataStream", headers={"X-MBX-APIKEY": ALICE.api_key}
        ).json()["listenKey"]

        def book() -> tuple[Decimal, Decimal]:
            t = httpx.get(f"{base}/api/v3/ticker/bookTicker?symbol=BTCUSDT").json()
            return D(t["bidPrice"]), D(t["askPrice"])

        async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            responses: list[dict[str, Any]] = []
            stream: list[dict[str, Any]] = []
            async with websockets.connect(f"{ex.ws_url}/ws/{key}") as ws:

                async def reader() -> None:
                    async for msg in ws:
                        stream.append(json.loads(msg))

                task = asyncio.create_task(reader())
                await asyncio.sleep(0.2)
                orders: list[dict[str, Any]] = [
                    {"side": "BUY", "type": "MARKET", "quantity": "0.25"},  # walks levels
                    {"side": "SELL", "type": "MARKET", "quantity": "0.1"},
                    {"side": "BUY", "type": "MARKET", "quoteOrderQty": "1000"},
                ]
                for _ in range(3):
                    bid, ask = await asyncio.to_thread(book)
                    orders.append(
                        {"side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
                         "quantity": "0.3", "price": str(ask + D("5"))}
                    )  # fmt: skip
                    orders.append(
                        {"side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                         "quantity": "0.05", "price": str(ask)}
                    )  # fmt: skip
                    orders.append(
                        {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                         "quantity": "0.05", "price": str(bid)}
                    )  # fmt: skip
                for o in orders:
                    r = await asyncio.to_thread(
                        signed, base, "POST", "/api/v3/order", {"symbol": "BTCUSDT", **o}
                    )
                    assert r.status_code == 200, r.text
                    responses.append(r.json())
                    await asyncio.sleep(0.3)
                await asyncio.sleep(3)  # resting orders meet the replayed flow
                await asyncio.to_thread(
                    signed, base, "DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"}
                )
                await asyncio.sleep(1)
                task.cancel()
            return responses, stream

        responses, stream = asyncio.run(asyncio.wait_for(run(), 90))
        ids = [r["orderId"] for r in responses]
        my_trades = signed(
            base, "GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "limit": 1000}
        ).json()
        by_trade = {t["id"]: t for t in my_trades}
        assert len(by_trade) == len(my_trades) >= len(orders_with_fills(responses))
        # 1. the user-data stream reports exactly the trades myTrades lists
        reports = [e for e in stream if e["e"] == "executionReport" and e["x"] == "TRADE"]
        assert sorted(e["t"] for e in reports) == sorted(by_trade)
        for e in reports:
            t = by_trade[e["t"]]
            assert (e["i"], e["L"], e["l"], e["n"], e["N"]) == (
                t["orderId"],
                t["price"],
                t["qty"],
                t["commission"],
                t["commissionAsset"],
            )
        # 2. the FULL responses' fills are myTrades' fills
        for r in responses:
            for f in r.get("fills", []):
                t = by_trade[f["tradeId"]]
                assert (f["price"], f["qty"], f["commission"]) == (
                    t["price"],
                    t["qty"],
                    t["commission"],
                )
        # 3. each order's executed quantity is the sum of its trades, in REST and the stream
        per_order: dict[int, Decimal] = defaultdict(D)
        for t in my_trades:
            per_order[t["orderId"]] += D(t["qty"])
        for oid in ids:
            o = signed(base, "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": oid}).json()
            assert D(o["executedQty"]) == per_order.get(oid, D(0))
            last = [e for e in stream if e["e"] == "executionReport" and e["i"] == oid][-1]
            assert D(last["z"]) == D(o["executedQty"]) and last["X"] == o["status"]
        # 4. the venue's own trade log holds the same executions
        venue = state(base)["accounts"]["alice"]
        vfills = [
            (f["client_order_id"], D(f["price"]), D(f["qty"]), D(f["fee"]))
            for f in venue["venue_fills"]
        ]
        ours = [
            (f"alice-{t['orderId']}", D(t["price"]), D(t["qty"]), D(t["commission"]))
            for t in sorted(my_trades, key=lambda t: t["id"])
        ]
        assert vfills == ours
        # 5. balances are the starting balances moved by exactly those trades
        usdt, btc = D(100000), D(1)
        for t in my_trades:
            sign = 1 if t["isBuyer"] else -1
            btc += sign * D(t["qty"])
            usdt -= sign * D(t["quoteQty"]) + D(t["commission"])
        account = signed(base, "GET", "/api/v3/account", {}).json()
        bal = {b["asset"]: (D(b["free"]), D(b["locked"])) for b in account["balances"]}
        assert bal["USDT"] == (usdt, 0) and bal["BTC"] == (btc, 0)
        assert D(venue["balances"]["USDT"]["total"]) == usdt
        assert D(venue["balances"]["BTC"]["total"]) == btc
        outbound = [e for e in stream if e["e"] == "outboundAccountPosition"][-1]
        final = {b["a"]: D(b["f"]) for b in outbound["B"]}
        assert final == {"BTC": btc, "USDT": usdt}
    finally:
        ex.stop()


def orders_with_fills(responses: list[dict[str, Any]]) -> list[int]:
    return [r["orderId"] for r in responses if r.get("fills")]
