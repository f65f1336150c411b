"""``tradepilot serve`` (the REST/WebSocket service and dashboard over a session's journal)
and ``tradepilot keys`` (its API keys)."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tradepilot.api.keys import SCOPES, KeyFileError, KeyStore, check_scope
from tradepilot.cli.output import console, err, fail

DEFAULT_KEYS = Path("runs/api-keys.json")
KeysOpt = Annotated[Path, typer.Option("--keys", help="API key file (hashed keys, mode 0600).")]

keys_app = typer.Typer(help="Create, list and revoke the service's API keys.", no_args_is_help=True)


def _store(path: Path) -> KeyStore:
    try:
        return KeyStore.load(path)
    except KeyFileError as exc:
        fail(str(exc))


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help=f"One of: {', '.join(SCOPES)}.")] = "read",
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
    keys: KeysOpt = DEFAULT_KEYS,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    try:
        check_scope(scope)
    except KeyFileError as exc:
        fail(str(exc))
    store = _store(keys)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    key, secret = store.create(scope, label, created)
    try:
        store.save()
    except OSError as exc:
        fail(f"cannot write the key file {keys}: {exc.strerror or exc}")
    err.print(f"created key {key.key_id} ({scope}); it is shown once:")
    print(secret)


@keys_app.command("list")
def keys_list(keys: KeysOpt = DEFAULT_KEYS) -> None:
    """List the keys (ids, scopes, labels; never the keys themselves)."""
    table = Table(title=f"API keys in {keys}")
    for col in ("id", "scope", "created", "label"):
        table.add_column(col)
    for key in _store(keys):
        table.add_row(key.key_id, key.scope, key.created, key.label)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, keys: KeysOpt = DEFAULT_KEYS) -> None:
    """Revoke a key by its id."""
    store = _store(keys)
    if not store.revoke(key_id):
        fail(f"no key {key_id!r} in {keys}")
    store.save()
    console.print(f"revoked {key_id}")


def serve(
    journal: Annotated[str, typer.Argument(help="Journal file or PostgreSQL URL of the session.")],
    session: Annotated[str | None, typer.Option(help="Session name (PostgreSQL).")] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback unless you choose).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    keys: KeysOpt = DEFAULT_KEYS,
    cors: Annotated[
        list[str] | None,
        typer.Option(help="Allowed browser origin (repeatable); CORS is off by default."),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.0, max=1e6, help="Requests a second per key.")
    ] = 50.0,
    alerts: Annotated[
        Path | None, typer.Option(help="YAML with an `alerts:` section (webhook, telegram).")
    ] = None,
) -> None:
    """Serve a session's journal: REST API, event stream, metrics and dashboard."""
    import uvicorn

    from tradepilot.api.alerts import AlertFollower, describe, notifiers_from_config
    from tradepilot.api.app import ServiceSettings, create_app
    from tradepilot.api.source import SessionView
    from tradepilot.app.logs import bind
    from tradepilot.core.yamlfile import load_yaml
    from tradepilot.persistence.integrity import JournalError

    store = _store(keys)
    if len(store) == 0:
        fail(f"no API keys in {keys}: create one with `tradepilot keys create --scope admin`")
    if not Path(journal).exists() and "://" not in journal:
        fail(f"no journal at {journal}")
    try:
        view = SessionView.open(journal, session)
    except (JournalError, ValueError, OSError) as exc:
        fail(f"cannot open the journal {journal}: {exc}")
    follower = None
    if alerts is not None:
        try:
            raw = load_yaml(alerts)
            section = raw.get("alerts") if isinstance(raw, dict) else None
            if not isinstance(section, dict):
                raise ValueError(f"{alerts} has no `alerts:` mapping")
            notifiers = notifiers_from_config(section, os.environ)
        except ValueError as exc:
            view.close()
            fail(str(exc))
        follower = AlertFollower(view, notifiers, after_seq=view.last_seq()).start()
        err.print(f"alerts: {describe(notifiers)}")
    bind(session=view.queries.journal.session, service=f"{host}:{port}")
    logging.getLogger("tradepilot.api").info("service starting (read-only) on %s:%d", host, port)
    settings = ServiceSettings(rate_per_key=rate, cors_origins=list(cors or []))
    app = create_app(view, store, None, settings)
    err.print(f"serving {journal} on http://{host}:{port}/ (read-only); Ctrl-C stops")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", ws="websockets-sansio")
    finally:
        if follower is not None:
            follower.stop()
        view.close()


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``keys`` to ``app``."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
