"""Bounds on run settings that the command line and configurations share.

A latency of ``inf`` or ``1e308`` ms, or a negative fee (a fee that pays the trader
on every fill), is refused here with the setting's name, before anything runs.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from tradepilot.model import fixed

#: One hour: more is a typo, not a venue.
MAX_LATENCY_MS = 3_600_000.0
#: Starting capital above 1e15 (in fixed-point units) is a typo, and would overflow.
MAX_CAPITAL_RAW = 10**15 * 10**9
#: 10 %: more is a typo, not a fee schedule.
MAX_FEE_BPS = Decimal(1000)


def latency_ms(value: float, where: str) -> float:
    """``value`` if it is a finite latency in [0, one hour] ms."""
    if not math.isfinite(value) or not 0 <= value <= MAX_LATENCY_MS:
        raise ValueError(f"{where} must be between 0 and {MAX_LATENCY_MS:.0f} ms, not {value!r}")
    return value


def fee_bps(value: object, where: str) -> str | None:
    """``value`` as text if it is a fee in [0, 1000] bps (``None``: the data set's own)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number of bps, got {value!r}")
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{where}: not a number: {value!r}") from None
    if not number.is_finite() or not 0 <= number <= MAX_FEE_BPS:
        raise ValueError(f"{where} must be between 0 and {MAX_FEE_BPS} bps, not {value!r}")
    return text


def capital(text: str, where: str) -> str:
    """``text`` if it is a positive amount of at most 1e15."""
    try:
        raw = fixed.to_raw(text)
    except ValueError:
        raise ValueError(f"{where}: not a number: {text!r}") from None
    if not 0 < raw <= MAX_CAPITAL_RAW:
        raise ValueError(f"{where} must be positive and at most 1e15, not {text!r}")
    return text
