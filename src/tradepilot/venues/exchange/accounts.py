"""Accounts of the local exchange: API key, secret and starting balances.

Accounts come from a YAML file (``--accounts``) or from the environment, never
from the command line, and secrets are never logged::

    accounts:
      - name: alice
        api_key: alice-key
        secret: alice-secret          # or secret_env: ALICE_SECRET
        balances: {USDT: "100000", BTC: "1"}

Without a file, ``TP_EXCHANGE_API_KEY`` / ``TP_EXCHANGE_API_SECRET`` (and
optionally ``TP_EXCHANGE_BALANCES`` as ``USDT=100000,BTC=1``) define one account;
with neither, there is no account and the exchange does not start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradepilot.core.yamlfile import load_yaml

__all__ = ["DEFAULT_BALANCES", "AccountSpec", "load_accounts"]

DEFAULT_BALANCES: dict[str, str] = {"USDT": "100000", "BTC": "1", "ETH": "10", "USD": "100000"}


@dataclass(frozen=True)
class AccountSpec:
    """One trading account of the local exchange."""

    name: str
    api_key: str
    secret: str = field(repr=False)
    balances: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_BALANCES))

    def __post_init__(self) -> None:
        if not self.name or not self.api_key or not self.secret:
            raise ValueError("an account needs a name, an api_key and a secret")


def _from_mapping(item: Mapping[str, Any], env: Mapping[str, str]) -> AccountSpec:
    secret = item.get("secret")
    if secret is None and "secret_env" in item:
        secret = env.get(str(item["secret_env"]))
        if secret is None:
            raise ValueError(f"account {item.get('name')}: ${item['secret_env']} is not set")
    balances = item.get("balances") or DEFAULT_BALANCES
    return AccountSpec(
        name=str(item.get("name", "")),
        api_key=str(item.get("api_key", "")),
        secret=str(secret or ""),
        balances={str(k): str(v) for k, v in dict(balances).items()},
    )


def _parse_balances(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        if part.strip():
            ccy, _, amount = part.partition("=")
            out[ccy.strip().upper()] = amount.strip()
    return out


def load_accounts(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> list[AccountSpec]:
    """Accounts from ``path`` (YAML), else from the environment (else ``ValueError``)."""
    env = os.environ if env is None else env
    if path is not None:
        data = load_yaml(path)
        items = data.get("accounts") if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise ValueError(f"{path}: expected a list under 'accounts'")
        specs = [_from_mapping(item, env) for item in items]
    elif env.get("TP_EXCHANGE_API_KEY") and env.get("TP_EXCHANGE_API_SECRET"):
        balances = env.get("TP_EXCHANGE_BALANCES")
        specs = [
            AccountSpec(
                "default",
                env["TP_EXCHANGE_API_KEY"],
                env["TP_EXCHANGE_API_SECRET"],
                _parse_balances(balances) if balances else dict(DEFAULT_BALANCES),
            )
        ]
    else:
        raise ValueError(
            "no accounts: pass an accounts file (--accounts) or set TP_EXCHANGE_API_KEY and "
            "TP_EXCHANGE_API_SECRET"
        )
    names = [s.name for s in specs]
    keys = [s.api_key for s in specs]
    if len(set(names)) != len(names) or len(set(keys)) != len(keys):
        raise ValueError("account names and API keys must be unique")
    return specs
