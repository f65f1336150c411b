"""Shared set-up for the local-exchange tests: real data, accounts, signed raw requests.

Every test starts a real server on a free 127.0.0.1 port and talks to it with
unmodified client libraries (or, for error cases, with plain signed HTTP).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tradepilot.venues.exchange.accounts import AccountSpec
from tradepilot.venues.exchange.auth import binance_signature
from tradepilot.venues.exchange.clients import CCXT_BINANCE_OPTIONS, binance_urls
from tradepilot.venues.exchange.replay import ReplayData, load_book_data

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BTC_SESSION = DATA / "book" / "binance_spot_btcusdt_20240808"
ETH_SESSION = DATA / "book" / "binance_spot_ethusdt_20240808"

ALICE = AccountSpec("alice", "alice-key", "alice-secret", {"USDT": "100000", "BTC": "1"})
BOB = AccountSpec("bob", "bob-key", "bob-secret", {"USDT": "50", "BTC": "0"})


@cache
def btc_data() -> ReplayData:
    if not BTC_SESSION.is_dir():
        raise FileNotFoundError(f"shared data missing: {BTC_SESSION}")
    return load_book_data([BTC_SESSION])


@cache
def http() -> httpx.Client:
    """One pooled client for the tests' raw requests (a new client per request is slow)."""
    return httpx.Client(timeout=10)


def ccxt_options() -> dict[str, Any]:
    return dict(CCXT_BINANCE_OPTIONS)


def point_ccxt(exchange: Any, base_url: str) -> Any:
    exchange.urls["api"] = binance_urls(base_url, exchange.urls["api"])
    return exchange


def signed(
    base_url: str,
    method: str,
    path: str,
    params: dict[str, Any],
    account: AccountSpec = ALICE,
    *,
    key: str | None = None,
    secret: str | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    """A signed Binance request, the way the API documents it (signature over the query)."""
    p = dict(params)
    p["timestamp"] = timestamp if timestamp is not None else int(time.time() * 1000)
    query = urlencode(p)
    sig = binance_signature(secret if secret is not None else account.secret, query)
    url = f"{base_url}{path}?{query}&signature={sig}"
    headers = {"X-MBX-APIKEY": key if key is not None else account.api_key}
    return http().request(method, url, headers=headers)


def state(base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = http().get(f"{base_url}/_tp/state").json()
    return body


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False
