"""The ``tradepilot`` command: one module per command group, registered here."""

from __future__ import annotations

import sys

import typer

from tradepilot.cli import data, report, run, serve, signals

app = typer.Typer(
    help="tradepilot: signals in, risk-checked orders out. Backtest, paper and live on one engine.",
    no_args_is_help=True,
    add_completion=False,
)
for group in (run, data, report, signals, serve):
    group.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
