"""``tradepilot exchange serve`` starts a real server that answers on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from exchange_helpers import BTC_SESSION, ETH_SESSION, wait_until
from tradepilot.venues.exchange.server import free_port


def test_cli_serves_binance(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        yaml.safe_dump(
            {"accounts": [{"name": "cli", "api_key": "cli-key", "secret_env": "CLI_SECRET"}]}
        )
    )
    port = free_port()
    env = {**os.environ, "CLI_SECRET": "cli-secret"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "tradepilot.cli", "exchange", "serve", "--dialect", "binance"]
    cmd += ["--data", str(BTC_SESSION), "--data", str(ETH_SESSION)]
    cmd += ["--port", str(port), "--speed", "2"]
    cmd += ["--accounts", str(accounts)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1).json() == {}
            except httpx.HTTPError:
                return False

        assert wait_until(up, timeout=60, step=0.2), "server did not start"
        info = httpx.get(f"http://127.0.0.1:{port}/api/v3/exchangeInfo").json()
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
        eth = httpx.get(f"http://127.0.0.1:{port}/api/v3/depth?symbol=ETHUSDT&limit=5").json()
        assert 1000 < float(eth["bids"][0][0]) < float(eth["asks"][0][0]) < 5000
        time.sleep(0.2)
        r = httpx.get(f"http://127.0.0.1:{port}/api/v3/account", headers={"X-MBX-APIKEY": "x"})
        assert r.json()["code"] == -2015
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=10)[0].decode()
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0].decode()
    assert "cli-secret" not in out
    assert "cli-key" in out
