"""Seeded faults of the local exchange, hit by the unmodified ccxt clients.

Each fault class is provoked, seen by the client as the real venue's failure
would be (ccxt's exception classes), and counted in ``/_tp/faults``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import httpx
import pytest
import websockets

from exchange_helpers import ALICE, btc_data, ccxt_options, point_ccxt, signed
from tradepilot.venues.exchange.faults import FaultInjector, FaultProfile, FaultRule
from tradepilot.venues.exchange.server import RunningExchange, start_exchange

TIMEOUT = 60


def _profile(seed: int, *rules: dict[str, Any]) -> FaultProfile:
    return FaultProfile.from_dict({"seed": seed, "rules": list(rules)})


def _hits(ex: RunningExchange) -> dict[str, int]:
    body: dict[str, int] = httpx.get(f"{ex.base_url}/_tp/faults").json()
    return body


@pytest.fixture
def make_exchange() -> Iterator[Any]:
    started: list[RunningExchange] = []

    def make(profile: FaultProfile) -> RunningExchange:
        ex = start_exchange(btc_data(), [ALICE], dialect="binance", speed=4.0, faults=profile)
        started.append(ex)
        time.sleep(0.3)
        return ex

    yield make
    for ex in started:
        ex.stop()


def _client(ex: RunningExchange, **config: Any) -> ccxt.binance:
    c = ccxt.binance(
        {"apiKey": ALICE.api_key, "secret": ALICE.secret, "options": ccxt_options(), **config}
    )
    point_ccxt(c, ex.base_url)
    return c


def test_same_profile_and_seed_give_the_same_faults() -> None:
    rules = [
        {"kind": "http_5xx", "rate": 0.2},
        {"kind": "http_429", "every": 7, "count": 2},
        {"kind": "timeout", "at": [3, 11]},
    ]
    paths = [("GET", f"/api/v3/{p}") for p in ("depth", "trades", "order", "time")] * 25

    def run(seed: int) -> list[str]:
        inj = FaultInjector(_profile(seed, *rules))
        return [r.kind if (r := inj.on_request(m, p)) else "" for m, p in paths]

    assert run(42) == run(42)
    assert run(42) != run(43)
    fired = run(42)
    assert fired[2] == "timeout" and fired[10] == "timeout"
    burst = FaultInjector(_profile(0, {"kind": "http_429", "every": 7, "count": 2}))
    fired = [bool(burst.on_request("GET", "/api/v3/depth")) for _ in range(16)]
    assert [i + 1 for i, f in enumerate(fired) if f] == [7, 8, 14, 15]  # bursts of two
    with pytest.raises(ValueError):
        FaultRule(kind="meteor_strike")


def test_http_faults_reach_ccxt_as_the_venue_failures(make_exchange: Any) -> None:
    ex = make_exchange(
        _profile(
            1,
            {
                "kind": "http_429",
                "at": [1],
                "count": 2,
                "retry_after": 2,
                "paths": ["/api/v3/ticker"],
            },
            {"kind": "http_418", "at": [1], "paths": ["/api/v3/avgPrice"]},
            {"kind": "http_5xx", "at": [1], "status": 503, "paths": ["/api/v3/time"]},
            {"kind": "timeout", "at": [1], "delay_s": 2, "paths": ["/api/v3/openOrders"]},
            {"kind": "response_lost", "at": [1], "methods": ["POST"], "paths": ["/api/v3/order"]},
        )
    )
    c = _client(ex, timeout=1000)
    c.load_markets()
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection):  # ccxt's class for 429 (RateLimitExceeded)
            c.fetch_ticker("BTC/USDT")
    assert c.fetch_ticker("BTC/USDT")["bid"] is not None  # the burst is over
    r = httpx.get(f"{ex.base_url}/api/v3/avgPrice?symbol=BTCUSDT")
    assert r.status_code == 418 and r.json()["code"] == -1003 and "Retry-After" in r.headers
    with pytest.raises(ccxt.ExchangeNotAvailable):  # a gateway's 503 page
        c.fetch_time()
    with pytest.raises(ccxt.RequestTimeout):
        c.fetch_open_orders("BTC/USDT")
    bid = c.fetch_order_book("BTC/USDT", 5)["bids"][0][0]
    with pytest.raises(ccxt.NetworkError):
        c.create_order(
            "BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2), {"newClientOrderId": "lost-1"}
        )
    # executed, but the answer was lost: the order is at the venue
    time.sleep(1.5)
    open_orders = c.fetch_open_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in open_orders] == ["lost-1"]
    hits = _hits(ex)
    assert hits == {"http_429": 2, "http_418": 1, "http_5xx": 1, "timeout": 1, "response_lost": 1}
    log = httpx.get(f"{ex.base_url}/_tp/requests").json()
    assert sum(1 for r in log if r["fault"]) == 6


def test_clock_skew_rejects_signed_requests_until_the_client_adjusts(make_exchange: Any) -> None:
    ex = make_exchange(_profile(2, {"kind": "clock_skew", "offset_ms": -3000}))
    server_time = httpx.get(f"{ex.base_url}/api/v3/time").json()["serverTime"]
    assert abs(server_time - (time.time() * 1000 - 3000)) < 500
    c = _client(ex)
    c.load_markets()
    with pytest.raises(ccxt.InvalidNonce):
        c.fetch_balance()
    adjusted = _client(ex, options={**ccxt_options(), "adjustForTimeDifference": True})
    adjusted.load_markets()
    assert adjusted.fetch_balance()["total"]["USDT"] > 0
    assert _hits(ex)["clock_skew"] == 1


def test_stale_market_data(make_exchange: Any) -> None:
    ex = make_exchange(_profile(3, {"kind": "stale_data", "at": [2], "duration_s": 1.5}))
    url = f"{ex.base_url}/api/v3/depth?symbol=BTCUSDT&limit=20"
    first = httpx.get(url).json()
    time.sleep(0.8)
    stale = httpx.get(url).json()
    assert stale == first  # the book moved on, the answer did not
    time.sleep(1.6)
    fresh = httpx.get(url).json()
    assert fresh["lastUpdateId"] > first["lastUpdateId"]
    assert _hits(ex)["stale_data"] == 1


def test_ws_disconnect_and_stall(make_exchange: Any) -> None:
    ex = make_exchange(
        _profile(
            4,
            {"kind": "ws_stall", "at": [5], "duration_s": 1.5, "channel": "market"},
            {"kind": "ws_disconnect", "at": [40], "channel": "market"},
        )
    )

    async def run() -> tuple[float, bool, int]:
        c = ccxtpro.binance(
            {"apiKey": ALICE.api_key, "secret": ALICE.secret, "options": ccxt_options()}
        )
        point_ccxt(c, ex.base_url)
        longest = 0.0
        disconnected = False
        after = 0
        try:
            await c.load_markets()
            last = time.monotonic()
            end = time.monotonic() + 20
            while time.monotonic() < end and (not disconnected or after < 5):
                try:
                    await c.watch_trades("BTC/USDT")
                except ccxt.NetworkError:
                    disconnected = True
                    continue
                now = time.monotonic()
                longest = max(longest, now - last)
                last = now
                if disconnected:
                    after += 1  # ccxt.pro reconnected on the next watch
        finally:
            await c.close()
        return longest, disconnected, after

    longest, disconnected, after = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    assert longest >= 1.4
    assert disconnected and after >= 5
    hits = _hits(ex)
    assert hits["ws_stall"] == 1 and hits["ws_disconnect"] == 1


def test_duplicated_reordered_and_delayed_user_events(make_exchange: Any) -> None:
    ex = make_exchange(
        _profile(
            5,
            {"kind": "duplicate_event", "at": [1]},
            {"kind": "reorder_event", "at": [3]},
            {"kind": "delayed_fill", "at": [5], "delay_s": 2.0},
        )
    )
    key = httpx.post(
        f"{ex.base_url}/api/v3/userDataStream", headers={"X-MBX-APIKEY": ALICE.api_key}
    ).json()["listenKey"]

    async def run() -> list[tuple[float, dict[str, Any]]]:
        got: list[tuple[float, dict[str, Any]]] = []
        async with websockets.connect(f"{ex.ws_url}/ws/{key}") as ws:
            await asyncio.sleep(0.2)
            for side in ("BUY", "SELL", "BUY"):
                r = await asyncio.to_thread(
                    signed, ex.base_url, "POST", "/api/v3/order",
                    {"symbol": "BTCUSDT", "side": side, "type": "MARKET", "quantity": "0.001"},
                )  # fmt: skip
                assert r.status_code == 200, r.text
            start = time.monotonic()
            while time.monotonic() - start < 3.5:
                try:
                    msg = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                got.append((time.monotonic() - start, json.loads(msg)))
        return got

    got = asyncio.run(asyncio.wait_for(run(), TIMEOUT))
    reports = [m for _t, m in got if m["e"] == "executionReport"]
    keys = [(m["i"], m["x"], m["t"]) for m in reports]
    assert len(keys) > len(set(keys))  # a duplicate
    order_ids = [m["i"] for m in reports]
    assert order_ids != sorted(order_ids)  # out of order
    assert any(t > 1.2 for t, _m in got)  # a delayed event
    # every execution arrived at least once: nothing was lost
    assert {(i, x) for i, x, _t in keys} >= {(i, "TRADE") for i in (1, 2, 3)}
    hits = _hits(ex)
    assert hits["duplicate_event"] == 1 and hits["reorder_event"] == 1
    assert hits["delayed_fill"] == 1
