"""``tradepilot exchange serve`` starts a real server that answers on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from exchange_helpers import BTC_SESSION, ETH_SESSION, wait_until
from tradepilot.venues.exchange.accounts import load_accounts
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


def test_accounts_from_file_env_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "accounts:\n  - {name: a, api_key: ka, secret: sa, balances: {USDT: '5'}}\n"
        "  - {name: b, api_key: kb, secret_env: B_SECRET}\n"
    )
    specs = load_accounts(path, env={"B_SECRET": "sb"})
    assert [(s.name, s.api_key, s.secret) for s in specs] == [("a", "ka", "sa"), ("b", "kb", "sb")]
    assert specs[0].balances == {"USDT": "5"}
    assert "sa" not in repr(specs[0])
    with pytest.raises(ValueError):
        load_accounts(path, env={})  # B_SECRET missing
    env = {
        "TP_EXCHANGE_API_KEY": "k",
        "TP_EXCHANGE_API_SECRET": "s",
        "TP_EXCHANGE_BALANCES": "USD=7",
    }
    (one,) = load_accounts(None, env=env)
    assert (one.api_key, one.balances) == ("k", {"USD": "7"})
    with pytest.raises(ValueError, match="no accounts"):
        load_accounts(None, env={})
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        "accounts:\n  - {name: a, api_key: k, secret: s}\n  - {name: b, api_key: k, secret: t}\n"
    )
    with pytest.raises(ValueError, match="unique"):
        load_accounts(dup, env={})
