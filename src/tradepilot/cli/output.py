"""Output and errors shared by every command: one console pair, one error path, one format."""

from __future__ import annotations

import math
from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Print a one-line error and exit with status 2 (no traceback)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def fmt(value: object, digits: int = 2, suffix: str = "") -> str:
    """A number with thousands separators, ``-`` for missing or non-finite values.

    Never prints ``-0.00``: a value that rounds to zero prints as zero.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    shown = value + 0.0 if round(value, digits) else 0.0
    return f"{shown:,.{digits}f}{suffix}"
