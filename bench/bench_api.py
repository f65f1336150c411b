"""Service latency and throughput on loopback.

    python bench/bench_api.py [--requests N] [--rate R] [--clients C]

Serves a real backtest journal (bundled BTC/USDT data) with ``tradepilot serve`` in its
own process and measures, with a real HTTP client over 127.0.0.1:

* REST: ``GET /api/v1/orders/{id}`` paced at ``--rate`` requests a second (default
  1,000), latency p50/p99 of each request;
* REST: ``GET /api/v1/status`` likewise;
* WebSocket: ``--clients`` clients (default 10) each stream every journal event from
  ``after_seq=0``; events per second over all clients.

The machine is shared and noisy: compare numbers from one run, not across runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

try:
    import tradepilot  # noqa: F401
except ImportError:  # run from a checkout without installing: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
from websockets.sync.client import connect

from tradepilot.api.keys import KeyStore
from tradepilot.api.server import free_port
from tradepilot.app.build import RunSpec
from tradepilot.app.session import run_backtest


def _percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return qs[49], qs[98]


def paced(
    client: httpx.Client, paths: list[str], headers: dict[str, str], rate: float
) -> list[float]:
    """Send the requests at ``rate`` per second (open loop); return each latency in ms."""
    out: list[float] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    for i, path in enumerate(paths):
        due = start + i * interval
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        t0 = time.perf_counter()
        res = client.get(path, headers=headers)
        out.append((time.perf_counter() - t0) * 1e3)
        if res.status_code != 200:
            raise SystemExit(f"{path}: {res.status_code} {res.text[:200]}")
    return out


def stream(url: str, key: str, total: int, counts: list[int], i: int) -> None:
    with connect(f"{url.replace('http://', 'ws://')}/ws/events?after_seq=0&key={key}") as ws:
        while counts[i] < total:
            ws.recv(timeout=30)
            counts[i] += 1


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"the service did not start on {url}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--clients", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "bt.db"
        run_backtest(RunSpec(strategy="ema_cross", params={"fast": "2", "slow": "5"}), journal)
        keys = Path(tmp) / "keys.json"
        store = KeyStore.load(keys)
        _, key = store.create("read")
        store.save()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tradepilot.cli",
                "serve",
                str(journal),
                "--keys",
                str(keys),
                "--port",
                str(port),
                "--rate",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_up(url)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=url, timeout=30) as client:
                orders = client.get("/api/v1/orders?limit=1000", headers=headers).json()["items"]
                ids = [o["client_order_id"] for o in orders]
                total_events = client.get("/api/v1/status", headers=headers).json()["last_seq"]
                paced(client, ["/api/v1/status"] * 200, headers, args.rate)  # warm up
                one = paced(
                    client,
                    [f"/api/v1/orders/{ids[i % len(ids)]}" for i in range(args.requests)],
                    headers,
                    args.rate,
                )
                status = paced(client, ["/api/v1/status"] * args.requests, headers, args.rate)
            counts = [0] * args.clients
            threads = [
                threading.Thread(target=stream, args=(url, key, total_events, counts, i))
                for i in range(args.clients)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            ws_s = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"journal: {total_events:,} events, {len(ids):,} orders")
    for name, samples in (("GET /orders/{id}", one), ("GET /status", status)):
        p50, p99 = _percentiles(samples)
        print(
            f"{name:<18} at {args.rate:,.0f}/s: p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
            f"(n={len(samples):,})"
        )
    print(
        f"WebSocket: {args.clients} clients x {total_events:,} events in {ws_s:.2f} s = "
        f"{sum(counts) / ws_s:,.0f} events/s"
    )


if __name__ == "__main__":
    main()
