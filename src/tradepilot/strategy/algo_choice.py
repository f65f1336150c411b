"""Which execution algorithm works a signal's order, with which parameters.

A signal (``algo``, ``algo_params``), a strategy's configuration (``execution:
{algo, params}``, :attr:`PipelineConfig.algo
<tradepilot.strategy.pipeline.PipelineConfig.algo>`) or a strategy's own call
(:meth:`Strategy.execute <tradepilot.strategy.base.Strategy.execute>`) names it;
``direct`` (the default) sends one order straight through the risk engine. The
signal's choice wins over the configuration's; exits triggered by the exit policy
and CLOSE/reversal exits without an algorithm of their own go ``direct``, so a stop
is never slowed down by a schedule.

A bracket or OCO takes the signal's ``stop_loss`` and ``take_profit`` (and, for a
bracket, its ``price`` as a limit entry) unless its parameters give them; such a
parent manages its own exits, so the pipeline's exit policy leaves its position
alone. Every name and parameter is checked here - the same check for a signal, a
configuration and a call - so a bad one is refused with a reason before anything
is recorded or sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tradepilot.execution.algos import ALGORITHMS
from tradepilot.execution.algos.base import coerce_params

if TYPE_CHECKING:
    from tradepilot.strategy.signals import Signal

DIRECT = "direct"
#: Algorithms that place their own stop-loss / take-profit exits.
SELF_EXITING = frozenset({"bracket", "oco"})


def algo_names() -> list[str]:
    return [DIRECT, *sorted(ALGORITHMS)]


def check_algo(name: str, params: Mapping[str, Any] | None, default: bool = False) -> None:
    """Raise ValueError naming the problem with algorithm ``name`` and ``params``.

    ``default``: a strategy's default, which each signal completes - a bracket's or
    OCO's levels come from the signal, so only their names are checked here.
    """
    if name == DIRECT:
        if params:
            raise ValueError("direct orders take no algorithm parameters")
        return
    cls = ALGORITHMS.get(name)
    if cls is None:
        raise ValueError(f"unknown algorithm {name!r} (known: {', '.join(algo_names())})")
    if params is not None and not isinstance(params, Mapping):
        raise ValueError(f"{name}: algo_params must be a mapping, got {type(params).__name__}")
    if default and name in SELF_EXITING:
        known = {f.name for f in dataclasses.fields(cls.params_type)}
        unknown = sorted(str(k) for k in params or {} if k not in known)
        if unknown:
            names = ", ".join(sorted(known))
            raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)} (known: {names})")
        return
    coerce_params(cls.params_type, dict(params or {}), name)


def choose(
    signal: Signal,
    default_algo: str = DIRECT,
    default_params: Mapping[str, Any] | None = None,
    exit_order: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The algorithm and parameters for ``signal``'s order (checked; ValueError if bad)."""
    if signal.algo:
        name, params = signal.algo, dict(signal.algo_params or {})
    elif exit_order:
        name, params = DIRECT, {}
    else:
        name, params = default_algo, dict(default_params or {})
    if name in SELF_EXITING:
        for key, level in (("stop_loss", signal.stop_loss), ("take_profit", signal.take_profit)):
            if level is not None:
                params.setdefault(key, repr(level))
        if name == "bracket" and signal.price is not None:
            params.setdefault("entry_type", "limit")
            params.setdefault("entry_price", repr(signal.price))
    elif name != DIRECT and signal.price is not None:
        raise ValueError(
            f"a price makes a direct limit order or a bracket's limit entry; give {name} its "
            "own price parameters instead"
        )
    check_algo(name, params)
    return name, params
