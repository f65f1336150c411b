"""Shared set-up of the service tests: a real journal, keys of every scope, a running server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tradepilot.api.app import ServiceSettings, create_app
from tradepilot.api.keys import KeyStore
from tradepilot.api.routes import Control
from tradepilot.api.server import ServiceThread
from tradepilot.api.source import SessionView
from tradepilot.app.build import RunSpec
from tradepilot.app.session import run_backtest


@dataclass
class Keys:
    read: str
    trade: str
    admin: str
    store: KeyStore


def make_keys(path: Path | None = None) -> Keys:
    store = KeyStore([], path)
    secrets = {
        scope: store.create(scope, f"{scope} key")[1] for scope in ("read", "trade", "admin")
    }
    store.save()
    return Keys(secrets["read"], secrets["trade"], secrets["admin"], store)


def backtest_journal(path: Path) -> Path:
    """A real run: momentum on the bundled BTC/USDT minute bars, two days, fills and all."""
    spec = RunSpec(strategy="momentum", start="2021-05-18", end="2021-05-20", fee_bps="7.5")
    run_backtest(spec, path)
    return path


@contextmanager
def serving(
    journal: Path | str,
    keys: Keys,
    control: Control | None = None,
    settings: ServiceSettings | None = None,
) -> Iterator[tuple[str, SessionView]]:
    view = SessionView.open(journal)
    try:
        with ServiceThread(create_app(view, keys.store, control, settings)) as server:
            yield server.url, view
    finally:
        view.close()  # after the server has stopped: no request still reads it


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
