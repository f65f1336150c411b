"""Strategies the CLI can run by name, with their parameters given as ``key=value`` text."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tradepilot.core.time import parse_duration
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.examples.ema_cross import EmaCross, EmaCrossParams
from tradepilot.strategy.examples.entry_size import RUN_EQUITY_FRACTION
from tradepilot.strategy.examples.maker import Maker, MakerParams
from tradepilot.strategy.examples.momentum import Momentum, MomentumParams
from tradepilot.strategy.signal_strategy import SignalMomentum, SignalMomentumParams

_REGISTRY: dict[str, tuple[type[Any], Callable[[Any], Strategy]]] = {
    "ema_cross": (EmaCrossParams, EmaCross),
    "maker": (MakerParams, Maker),
    "momentum": (MomentumParams, Momentum),
    "signal_momentum": (SignalMomentumParams, SignalMomentum),
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def parse_params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parameter {pair!r} must look like key=value")
        out[key.strip()] = value.strip()
    return out


def _convert(field: dataclasses.Field[Any], text: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    try:
        if field.name.endswith("_ns"):
            return parse_duration(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            value = float(text)
            if value != value:
                raise ValueError
            return value
        if kind == "Decimal":
            dec = Decimal(text)
            if not dec.is_finite():
                raise ValueError
            return dec
    except (ValueError, InvalidOperation):
        raise ValueError(f"parameter {field.name}: {text!r} is not a valid {kind}") from None
    return text


def run_params(name: str, params: Mapping[str, str]) -> dict[str, str]:
    """``params`` with the run commands' default size: a share of equity per entry.

    Applies to strategies sized by ``quantity`` or ``equity_fraction`` when neither is
    given, so the default backtest trades a meaningful amount of its capital.
    """
    out = dict(params)
    entry = _REGISTRY.get(name)
    if entry is None:
        return out
    fields = {f.name for f in dataclasses.fields(entry[0])}
    if "equity_fraction" in fields and not {"quantity", "equity_fraction"} & set(out):
        out["equity_fraction"] = RUN_EQUITY_FRACTION
    return out


def build(name: str, instrument_id: str, params: Mapping[str, str]) -> Strategy:
    """Instantiate a registered strategy; unknown names or parameters raise ValueError."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(names())})")
    params_cls, strategy_cls = _REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) for {name}: {', '.join(unknown)} "
            f"(known: {', '.join(f for f in fields if f != 'instrument_id')})"
        )
    kwargs = {k: _convert(fields[k], v) for k, v in params.items()}
    return strategy_cls(params_cls(instrument_id=instrument_id, **kwargs))
