"""``tradepilot service``: run a session unattended under systemd, and ask a running service.

``install`` writes a systemd unit (and optionally a timer) that runs a configuration as a
paper session, restarts it on failure and continues it with ``--resume`` once its journal
exists, so a crash or reboot never starts the session over. Secrets come from an
environment file, never from the unit. ``status`` asks a running ``tradepilot serve``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from tradepilot.cli.output import console, fail

service_app = typer.Typer(
    help="Run sessions unattended (systemd) and query a running service.", no_args_is_help=True
)

USER_UNITS = Path("~/.config/systemd/user")
ENV_FILE = Path("~/.config/tradepilot/env")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def unit_text(
    name: str,
    config: Path,
    workdir: Path,
    executable: str,
    env_file: Path,
) -> str:
    """The ``.service`` unit: resume when the journal exists, else start the session."""
    journal = workdir / "runs" / f"{name}.db"
    run = [executable, "run-config", str(config), "--paper", "--session", name, "--quiet"]
    start = " ".join(shlex.quote(a) for a in run)
    script = (
        f"if [ -e {shlex.quote(str(journal))} ]; then exec {start} --resume; else exec {start}; fi"
    )
    lines = [
        "[Unit]",
        f"Description=tradepilot session {name}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"WorkingDirectory={workdir}",
        f"EnvironmentFile=-{env_file}",
        f"ExecStart=/bin/sh -c {shlex.quote(script)}",
        "Restart=on-failure",
        "RestartSec=10",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=120",
        "NoNewPrivileges=true",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def timer_text(name: str, on_calendar: str) -> str:
    return "\n".join(
        [
            "[Unit]",
            f"Description=start tradepilot session {name} on schedule",
            "",
            "[Timer]",
            f"OnCalendar={on_calendar}",
            "Persistent=true",
            f"Unit=tradepilot-{name}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


@service_app.command("install")
def install(
    config: Annotated[Path, typer.Argument(help="Run configuration (YAML).")],
    name: Annotated[str, typer.Option(help="Session name (letters, digits, . _ -).")],
    directory: Annotated[
        Path, typer.Option(help="Folder the unit writes the unit files to.")
    ] = USER_UNITS,
    workdir: Annotated[Path, typer.Option(help="Working directory of the session.")] = Path("."),
    env_file: Annotated[
        Path, typer.Option(help="Environment file with secrets (not written here).")
    ] = ENV_FILE,
    schedule: Annotated[
        str | None,
        typer.Option(
            help="systemd OnCalendar to start it, e.g. 'Mon..Fri 09:25 America/New_York'."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing unit files.")] = False,
) -> None:
    """Write a systemd user unit that runs CONFIG as a paper session, restarting with --resume."""
    if not _NAME.match(name):
        fail(f"session name {name!r}: use letters, digits, '.', '_' or '-' (no separators)")
    if not config.is_file():
        fail(f"no configuration at {config}")
    if schedule is not None and (not schedule.strip() or "\n" in schedule):
        fail("--schedule must be one systemd OnCalendar expression")
    exe = shutil.which("tradepilot") or f"{sys.executable} -m tradepilot.cli"
    directory = directory.expanduser()
    unit = directory / f"tradepilot-{name}.service"
    files = {unit: unit_text(name, config.resolve(), workdir.resolve(), exe, env_file.expanduser())}
    if schedule is not None:
        files[directory / f"tradepilot-{name}.timer"] = timer_text(name, schedule.strip())
    existing = [str(p) for p in files if p.exists()]
    if existing and not overwrite:
        fail(f"{', '.join(existing)} exists; choose another --name or pass --overwrite")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
    except OSError as exc:
        fail(f"cannot write to {directory}: {exc.strerror or exc}")
    for path in files:
        console.print(f"wrote {path}")
    what = f"tradepilot-{name}.timer" if schedule else f"tradepilot-{name}.service"
    console.print(
        f"enable it with: systemctl --user daemon-reload && systemctl --user enable --now {what}"
    )


@service_app.command("status")
def status(
    url: Annotated[
        str, typer.Option(help="Base URL of `tradepilot serve`.")
    ] = "http://127.0.0.1:8000",
    key_env: Annotated[
        str, typer.Option(help="Environment variable holding a read key.")
    ] = "TRADEPILOT_API_KEY",
) -> None:
    """Ask a running service for its session's status."""
    import httpx

    key = os.environ.get(key_env, "")
    if not key:
        fail(f"set ${key_env} to an API key with the read scope")
    try:
        res = httpx.get(
            f"{url.rstrip('/')}/api/v1/status",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {type(exc).__name__}")
    if res.status_code != 200:
        detail = (
            res.json().get("detail", res.text)
            if res.headers.get("content-type", "").endswith("json")
            else res.text
        )
        fail(f"{url} answered {res.status_code}: {detail}")
    body = res.json()
    session = body.get("session") or {}
    state = (body.get("trading_state") or {}).get("state", "ACTIVE")
    console.print(
        f"{session.get('mode', '?')} session, "
        f"{'running' if body['running'] else 'stopped'}, {state}; "
        f"{body['orders']} orders ({body['open_orders']} open), {body['fills']} fills, "
        f"realised PnL {body['realized_pnl']}"
    )


def register(app: typer.Typer) -> None:
    """Add ``service`` to ``app``."""
    app.add_typer(service_app, name="service")
