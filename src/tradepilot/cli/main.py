"""The ``tradepilot`` command: one module per command group, registered here."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tradepilot.app.logs import configure_logging
from tradepilot.cli import data, exchange, model, report, run, serve, service, signals
from tradepilot.cli.output import fail

app = typer.Typer(
    help="tradepilot: signals in, risk-checked orders out. Backtest, paper and live on one engine.",
    no_args_is_help=True,
    add_completion=False,
)
for group in (run, data, report, signals, serve, service, exchange, model):
    group.register(app)


@app.callback()
def _options(
    log_format: Annotated[
        str, typer.Option(help="auto (JSON unless on a terminal), json or console.")
    ] = "auto",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "WARNING",
) -> None:
    if log_format not in ("auto", "json", "console"):
        fail(f"--log-format must be auto, json or console, not {log_format!r}")
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level must be DEBUG, INFO, WARNING or ERROR, not {log_level!r}")
    configure_logging(log_format, level)  # type: ignore[arg-type]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
