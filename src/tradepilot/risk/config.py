"""Risk limits as configuration, and the rules built from them.

Every limit is optional: ``None`` switches it off. Percentages are floats in
percent (``20.0`` = 20 %); money and quantities are decimal strings (``"50000"``,
``"0.5"``); durations are strings such as ``"1m"`` or ``"24h"`` (see
:func:`tradepilot.core.clock.parse_duration`). :meth:`RiskConfig.from_dict`
reads the same keys from YAML or JSON and refuses unknown keys.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar

from tradepilot.core.time import parse_duration
from tradepilot.model import fixed
from tradepilot.risk.engine import RiskRule
from tradepilot.risk.rules import (
    BalanceSufficient,
    DailyLossLimit,
    MaxCorrelatedExposure,
    MaxDrawdown,
    MaxGrossExposure,
    MaxOpenPositions,
    MaxOrderQuantity,
    MaxOrdersPerDay,
    MaxOrdersPerSecond,
    MaxOrdersPerSymbolPerDay,
    MaxOrderValue,
    MaxPositionValue,
    MaxSectorExposure,
    MaxTradeValue,
    MinTradeValue,
    PriceBand,
)

_T = TypeVar("_T")


def _money(key: str, value: object, allow_zero: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"{key} must be a decimal string, got {value!r}")
    try:
        raw = fixed.to_raw(value)
    except fixed.InvalidNumber:
        raise ValueError(f"{key} must be a decimal number, got {value!r}") from None
    if raw < 0 or (raw == 0 and not allow_zero):
        raise ValueError(f"{key} must be positive, got {value!r}")
    return str(value)


#: Exposure limits above 1,000 % of equity (10x) are typos, not limits.
MAX_EXPOSURE_PCT = 1000.0


def _pct(key: str, value: object, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number (percent), got {value!r}")
    pct = float(value)
    if not math.isfinite(pct) or pct <= 0 or (upper is not None and pct > upper):
        bound = f" and at most {upper:g}" if upper is not None else ""
        raise ValueError(f"{key} must be a percentage above 0{bound}, got {value!r}")
    return pct


def _count(key: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _duration(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{key} must be a duration such as '1m' or '24h', got {value!r}")
    try:
        ns = parse_duration(str(value))
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None
    return ns


def _str_map(key: str, value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise ValueError(f"{key}: keys must be non-empty strings, got {k!r}")
        if not isinstance(v, str | int | Decimal) or isinstance(v, bool):
            raise ValueError(f"{key}[{k}] must be a string, got {v!r}")
        out[k] = str(v)
    return MappingProxyType(out)


def _opt(value: _T | None, check: Any, key: str, *args: Any) -> _T | None:
    return None if value is None else check(key, value, *args)


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """When the circuit breaker trips, and how long it halts trading.

    ``cooldown`` is engine time; ``None`` halts until a manual reset.
    """

    max_drawdown_pct: float | None = None
    daily_loss_pct: float | None = None
    max_consecutive_failures: int | None = None
    cooldown: str | None = "1h"

    def __post_init__(self) -> None:
        for name in ("max_drawdown_pct", "daily_loss_pct"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _pct(name, value, 100.0))
        _opt(self.max_consecutive_failures, _count, "max_consecutive_failures")
        if self.cooldown is not None:
            if not isinstance(self.cooldown, str):
                raise ValueError(f"cooldown must be a duration such as '1h', got {self.cooldown!r}")
            _duration("cooldown", self.cooldown)

    @property
    def cooldown_ns(self) -> int | None:
        return None if self.cooldown is None else parse_duration(self.cooldown)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CircuitBreakerConfig:
        return _from_dict(cls, data, "circuit_breaker")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Pre-trade limits; ``None`` (the default) switches a limit off.

    See ``docs/risk.md`` for what each limit checks and the code of its denials.
    """

    # order size
    max_order_qty: Mapping[str, str] | None = None  # instrument id | symbol | "*" -> quantity
    max_order_value: str | None = None
    min_trade_value: str | None = None
    max_trade_value: str | None = None
    # exposure (percent of equity)
    max_position_pct: float | None = None
    max_gross_exposure_pct: float | None = None
    max_open_positions: int | None = None
    max_sector_exposure_pct: float | None = None
    sectors: Mapping[str, str] = field(default_factory=dict)  # instrument id | symbol -> sector
    max_correlated_exposure_pct: float | None = None
    correlation_threshold: float = 0.8
    correlation_window: int = 50
    correlation_min_periods: int = 20
    correlation_interval: str = "1m"
    # order rate (engine time)
    max_orders_per_second: int | None = None
    max_orders_per_day: int | None = None
    max_orders_per_symbol_per_day: int | None = None
    # prices and money
    price_band_pct: float | None = None
    check_balance: bool = False
    # losses
    daily_loss_pct: float | None = None
    max_drawdown_pct: float | None = None
    # the circuit breaker (not a rule: see tradepilot.risk.circuit_breaker)
    circuit_breaker: CircuitBreakerConfig | None = None

    def __post_init__(self) -> None:
        def norm(name: str, check: Any, *args: Any) -> None:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check(name, value, *args))

        if self.max_order_qty is not None:
            qty = _str_map("max_order_qty", self.max_order_qty)
            for k, v in qty.items():
                _money(f"max_order_qty[{k}]", v)
            object.__setattr__(self, "max_order_qty", qty)
        object.__setattr__(self, "sectors", _str_map("sectors", self.sectors))
        norm("max_order_value", _money)
        norm("min_trade_value", _money, True)
        norm("max_trade_value", _money)
        if (
            self.min_trade_value is not None
            and self.max_trade_value is not None
            and fixed.to_raw(self.min_trade_value) > fixed.to_raw(self.max_trade_value)
        ):
            raise ValueError("min_trade_value is above max_trade_value")
        for name in (
            "max_position_pct",
            "max_gross_exposure_pct",
            "max_sector_exposure_pct",
            "max_correlated_exposure_pct",
        ):
            norm(name, _pct, MAX_EXPOSURE_PCT)
        norm("price_band_pct", _pct, 100.0)
        norm("daily_loss_pct", _pct, 100.0)
        norm("max_drawdown_pct", _pct, 100.0)
        for name in (
            "max_open_positions",
            "max_orders_per_second",
            "max_orders_per_day",
            "max_orders_per_symbol_per_day",
        ):
            norm(name, _count)
        threshold = self.correlation_threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 < threshold <= 1
        ):
            raise ValueError(f"correlation_threshold must be in (0, 1], got {threshold!r}")
        object.__setattr__(self, "correlation_threshold", float(threshold))
        _count("correlation_min_periods", self.correlation_min_periods, 2)
        _count("correlation_window", self.correlation_window, self.correlation_min_periods)
        if not isinstance(self.correlation_interval, str):
            raise ValueError(
                f"correlation_interval must be a duration such as '1m', "
                f"got {self.correlation_interval!r}"
            )
        if _duration("correlation_interval", self.correlation_interval) <= 0:
            raise ValueError("correlation_interval must be positive")
        if not isinstance(self.check_balance, bool):
            raise ValueError(f"check_balance must be true or false, got {self.check_balance!r}")
        cb = self.circuit_breaker
        if cb is not None and not isinstance(cb, CircuitBreakerConfig):
            raise ValueError("circuit_breaker must be a CircuitBreakerConfig")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskConfig:
        """Build from a parsed YAML/JSON mapping; unknown keys raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"risk config must be a mapping, got {type(data).__name__}")
        values = dict(data)
        cb = values.get("circuit_breaker")
        if cb is not None and not isinstance(cb, CircuitBreakerConfig):
            if not isinstance(cb, Mapping):
                raise ValueError("circuit_breaker must be a mapping")
            values["circuit_breaker"] = CircuitBreakerConfig.from_dict(cb)
        return _from_dict(cls, values, "risk")

    def to_dict(self) -> dict[str, Any]:
        """Plain values with the keys of :meth:`from_dict` (None-valued keys included)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, CircuitBreakerConfig):
                value = value.to_dict()
            out[f.name] = value
        return out


def _from_dict(cls: type[_T], data: Mapping[str, Any], section: str) -> _T:
    if not isinstance(data, Mapping):
        raise ValueError(f"{section} config must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ValueError(
            f"unknown {section} config key(s): {', '.join(unknown)}; "
            f"valid keys: {', '.join(sorted(known))}"
        )
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"invalid {section} config: {exc}") from None


def build_rules(config: RiskConfig) -> list[RiskRule]:
    """The rules a configuration switches on, cheapest first."""
    rules: list[RiskRule] = []
    c = config
    if c.max_order_qty is not None:
        rules.append(MaxOrderQuantity({k: fixed.to_raw(v) for k, v in c.max_order_qty.items()}))
    if c.max_order_value is not None:
        rules.append(MaxOrderValue(fixed.to_raw(c.max_order_value)))
    if c.min_trade_value is not None:
        rules.append(MinTradeValue(fixed.to_raw(c.min_trade_value)))
    if c.max_trade_value is not None:
        rules.append(MaxTradeValue(fixed.to_raw(c.max_trade_value)))
    if c.price_band_pct is not None:
        rules.append(PriceBand(c.price_band_pct))
    if c.max_orders_per_second is not None:
        rules.append(MaxOrdersPerSecond(c.max_orders_per_second))
    if c.max_orders_per_day is not None:
        rules.append(MaxOrdersPerDay(c.max_orders_per_day))
    if c.max_orders_per_symbol_per_day is not None:
        rules.append(MaxOrdersPerSymbolPerDay(c.max_orders_per_symbol_per_day))
    if c.daily_loss_pct is not None:
        rules.append(DailyLossLimit(c.daily_loss_pct))
    if c.max_drawdown_pct is not None:
        rules.append(MaxDrawdown(c.max_drawdown_pct))
    if c.max_open_positions is not None:
        rules.append(MaxOpenPositions(c.max_open_positions))
    if c.max_position_pct is not None:
        rules.append(MaxPositionValue(c.max_position_pct))
    if c.max_gross_exposure_pct is not None:
        rules.append(MaxGrossExposure(c.max_gross_exposure_pct))
    if c.max_sector_exposure_pct is not None:
        rules.append(MaxSectorExposure(c.max_sector_exposure_pct, c.sectors))
    if c.max_correlated_exposure_pct is not None:
        rules.append(
            MaxCorrelatedExposure(
                c.max_correlated_exposure_pct,
                threshold=float(c.correlation_threshold),
                window=c.correlation_window,
                min_periods=c.correlation_min_periods,
                interval_ns=parse_duration(c.correlation_interval),
            )
        )
    if c.check_balance:
        rules.append(BalanceSufficient())
    return rules
