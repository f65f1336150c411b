"""What every execution algorithm shares: the base class, parameter handling, helpers.

An algorithm works one parent order through the :class:`ParentContext` it is given
(see :mod:`tradepilot.execution.algo_engine`): it reads the market and the parent's
fills from it and sends, cancels and modifies child orders through it. It never sees
the engine, the venue or the wall clock.

Parameters are a frozen dataclass per algorithm, subclassing :class:`AlgoParams`.
Construction checks the field types and then calls :meth:`AlgoParams.check`, so a bad
value raises ``ValueError`` before a parent exists. Prices and quantities are raw
fixed-point ints (``fixed.SCALE``) and durations integer nanoseconds; the mapping form
accepted by :func:`coerce_params` also takes human numbers (``"0.5"``) and durations
(``"5m"``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from tradepilot.core.time import parse_duration
from tradepilot.model import fixed
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import (
    Event,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderRejected,
)
from tradepilot.model.order import Order

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext

__all__ = [
    "DURATION",
    "FIXED",
    "AlgoParams",
    "Algorithm",
    "ParentStatus",
    "coerce_params",
    "event_reason",
    "params_to_dict",
    "params_to_json",
]

#: Field metadata: a raw fixed-point value (mapping form: an int is raw, text is human).
FIXED: Mapping[str, str] = types.MappingProxyType({"unit": "fixed"})
#: Field metadata: a duration in ns (mapping form: an int is ns, text like ``"5m"``).
DURATION: Mapping[str, str] = types.MappingProxyType({"unit": "duration"})

SLICE_ORDER_TYPES = ("market", "limit")


class ParentStatus(StrEnum):
    """Status of a parent order; DONE, CANCELLED and FAILED are final."""

    WORKING = "WORKING"
    FINISHING = "FINISHING"  # the end is decided; waiting for working children to close
    DONE = "DONE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (ParentStatus.DONE, ParentStatus.CANCELLED, ParentStatus.FAILED)


@dataclass(frozen=True, kw_only=True)
class AlgoParams:
    """Base of every parameters dataclass: type checks, then :meth:`check`."""

    def __post_init__(self) -> None:
        _check_types(self)
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` with a clear message for a bad combination of values."""


P = TypeVar("P", bound=AlgoParams)


class Algorithm(Generic[P]):
    """One parent order's logic. Override the hooks you need.

    The constructor validates what depends on the parent (its quantity, the
    instrument's tick and lot) and raises ``ValueError``; it must not send orders.
    ``on_start`` runs once the parent is recorded. Market-data hooks default to
    :meth:`on_market`. The engine checks :meth:`is_complete` after every callback.
    """

    name: ClassVar[str] = ""
    params_type: ClassVar[type[AlgoParams]] = AlgoParams

    def __init__(self, ctx: ParentContext, params: P) -> None:
        self.ctx = ctx
        self.params = params

    def describe(self) -> dict[str, Any]:
        """What goes into ``ParentOrderStarted.params`` (JSON-serialisable)."""
        return params_to_dict(self.params)

    # -- lifecycle and market data ------------------------------------------------------
    def on_start(self) -> None: ...

    def on_market(self) -> None:
        """Any market-data update for the parent's instrument (after it was applied)."""

    def on_bar(self, bar: Bar) -> None:
        self.on_market()

    def on_trade(self, tick: TradeTick) -> None:
        self.on_market()

    def on_quote(self, quote: QuoteTick) -> None:
        self.on_market()

    def on_book(self, update: BookSnapshot | BookDeltas) -> None:
        self.on_market()

    def on_timer(self, name: str) -> None: ...

    # -- child orders ---------------------------------------------------------------------
    def on_fill(self, order: Order, fill: OrderFilled) -> None: ...

    def on_order_event(self, order: Order, event: Event) -> None:
        """Any other child event (accepted, updated, modify rejected, ...)."""

    def on_child_closed(self, order: Order, event: Event) -> None:
        """A child reached a final status. By default a refused child fails the parent."""
        if order.status in (OrderStatus.DENIED, OrderStatus.REJECTED):
            self.ctx.fail(child_failure(order, event))

    def is_complete(self) -> bool:
        return self.ctx.filled >= self.ctx.quantity

    def progress(self) -> str:
        """How far the parent got, for reasons such as the end of a session."""
        ctx = self.ctx
        return f"{fixed.to_str(ctx.filled)} of {fixed.to_str(ctx.quantity)} filled"


# -- helpers for algorithms ---------------------------------------------------------------
def event_reason(event: Event) -> str:
    if isinstance(event, OrderDenied | OrderRejected | OrderCanceled):
        return event.reason
    return type(event).__name__


def child_failure(order: Order, event: Event) -> str:
    return f"child {order.client_order_id} {order.status.value}: {event_reason(event)}"


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def check_positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def check_fraction(name: str, value: float) -> None:
    """A randomisation amount: 0 (off) up to, not including, 1."""
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


# -- parameters: mapping form, type checks, JSON --------------------------------------------
def coerce_params(cls: type[P], given: object, algorithm: str) -> P:
    """Parameters for ``algorithm`` from an instance of ``cls``, a mapping or None."""
    if isinstance(given, cls):
        return given
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ValueError(
            f"{algorithm}: params must be a dict or {cls.__name__}, got {type(given).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in given if k not in fields)
    if unknown:
        raise ValueError(
            f"{algorithm}: unknown parameter(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(fields))})"
        )
    missing = sorted(
        name
        for name, f in fields.items()
        if name not in given
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )
    if missing:
        raise ValueError(f"{algorithm}: missing parameter(s) {', '.join(missing)}")
    values = {str(k): _convert(algorithm, str(k), v, fields[str(k)]) for k, v in given.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ValueError(f"{algorithm}: {exc}") from None


def _convert(algorithm: str, name: str, value: object, f: dataclasses.Field[Any]) -> object:
    unit = f.metadata.get("unit")
    if value is None or isinstance(value, int):  # bool is an int
        return value
    try:
        if unit == "fixed" and isinstance(value, str | Decimal | float):
            return fixed.to_raw(value)
        if unit == "duration" and isinstance(value, str):
            return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{algorithm}: {name}: {exc}") from None
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _check_types(params: AlgoParams) -> None:
    cls = type(params)
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if not _matches(value, hints[f.name]):
            raise ValueError(
                f"{f.name} must be {_describe(hints[f.name])}, got {type(value).__name__} {value!r}"
            )


def _matches(value: object, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(hint)
        return isinstance(value, tuple) and all(_matches(v, args[0]) for v in value)
    return isinstance(value, origin or hint)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))


def params_to_dict(params: AlgoParams) -> dict[str, Any]:
    return dataclasses.asdict(params)


def params_to_json(data: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces) for ``ParentOrderStarted.params``."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
