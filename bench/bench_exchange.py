"""Local exchange throughput: orders through ccxt on loopback, and WebSocket market data.

Starts the Binance dialect in-process (a background thread) over the real spot
BTCUSDT L2 session in ``../shared/data``, then:

* **orders**: ``--orders`` round trips through the unmodified sync ccxt client
  (its client-side throttle off), alternating a resting LIMIT far from the market
  and its cancel (two signed requests each), with the server in a thread of the
  benchmark's process and then as ``tradepilot exchange serve`` in its own process;
  prints orders/s and the p50/p99 round trip of one request;
* **market data**: a raw WebSocket client subscribed to the diff-depth, trade and
  bookTicker streams while the session replays at ``--speed`` for ``--seconds``;
  prints messages/s received and how far the replay got.

Client and server share the machine (and, for the order loop, the Python
process's GIL with the server thread), so this is the cost of a local paper
venue seen from one client, not an exchange's capacity.

    python bench/bench_exchange.py [--orders 500] [--speed 50] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import ccxt  # noqa: E402
import httpx  # noqa: E402
import websockets  # noqa: E402

from tradepilot.venues.exchange.accounts import AccountSpec  # noqa: E402
from tradepilot.venues.exchange.clients import CCXT_BINANCE_OPTIONS, binance_urls  # noqa: E402
from tradepilot.venues.exchange.replay import load_book_data  # noqa: E402
from tradepilot.venues.exchange.server import free_port, start_exchange  # noqa: E402

SESSION = ROOT.parent / "shared" / "data" / "book" / "binance_spot_btcusdt_20240808"
ACCOUNT = AccountSpec("bench", "bench-key", "bench-secret", {"USDT": "10000000", "BTC": "10"})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Subprocess:
    """The server as ``tradepilot exchange serve`` in its own process (no shared GIL)."""

    def __init__(self, speed: float = 1.0) -> None:
        self.port = free_port()
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "TP_EXCHANGE_API_KEY": ACCOUNT.api_key,
            "TP_EXCHANGE_API_SECRET": ACCOUNT.secret,
            "TP_EXCHANGE_BALANCES": "USDT=10000000,BTC=10",
        }
        cmd = [sys.executable, "-m", "tradepilot.cli", "exchange", "serve", "--data", str(SESSION)]
        cmd += ["--port", str(self.port), "--speed", str(speed)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base_url}/api/v3/ping", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the exchange did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def bench_orders(n: int, separate: bool) -> None:
    ex: Any = (
        _Subprocess()
        if separate
        else start_exchange(load_book_data([SESSION]), [ACCOUNT], dialect="binance", speed=1.0)
    )
    where = "server in its own process" if separate else "server in a thread of this process"
    try:
        time.sleep(0.3)
        c = ccxt.binance(
            {
                "apiKey": ACCOUNT.api_key,
                "secret": ACCOUNT.secret,
                "options": dict(CCXT_BINANCE_OPTIONS),
                # ccxt's own throttle (about 10 ms per order request) would hide the server
                "enableRateLimit": False,
            }
        )
        c.urls["api"] = binance_urls(ex.base_url, c.urls["api"])
        c.load_markets()
        bid = c.fetch_order_book("BTC/USDT", 5)["bids"][0][0]
        price = round(bid * 0.9, 2)
        rtt: list[float] = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            o = c.create_order("BTC/USDT", "limit", "buy", 0.001, price)
            t1 = time.perf_counter()
            c.cancel_order(o["id"], "BTC/USDT")
            t2 = time.perf_counter()
            rtt += [t1 - t0, t2 - t1]
        elapsed = time.perf_counter() - start
        print(f"orders ({where}): {n} placed and cancelled through ccxt in {elapsed:.2f} s")
        print(f"  {n / elapsed:,.0f} orders/s ({2 * n / elapsed:,.0f} signed requests/s)")
        print(
            f"  round trip per request: p50 {statistics.median(rtt) * 1e3:.2f} ms, "
            f"p99 {pct(rtt, 0.99) * 1e3:.2f} ms, max {max(rtt) * 1e3:.2f} ms"
        )
    finally:
        ex.stop()


def bench_market_data(speed: float, seconds: float) -> None:
    """The server in its own process, so the client's decoding does not slow the replay."""
    ex = _Subprocess(speed)

    async def run() -> int:
        streams = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
        count = 0
        async with websockets.connect(
            f"{ex.ws_url}/stream?streams={streams}", max_queue=None
        ) as ws:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    msg = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                json.loads(msg)
                count += 1
        return count

    try:
        count = asyncio.run(run())
        replay = httpx.get(f"{ex.base_url}/_tp/state").json()["replay"]
        print(f"market data: replay at {speed:g}x for {seconds:g} s (server in its own process)")
        print(f"  {count / seconds:,.0f} WebSocket messages/s received ({count} in total)")
        print(f"  replayed {replay['position']:,} of {replay['total']:,} recorded items")
    finally:
        ex.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    bench_orders(args.orders, separate=False)
    bench_orders(args.orders, separate=True)
    bench_market_data(args.speed, args.seconds)


if __name__ == "__main__":
    main()
