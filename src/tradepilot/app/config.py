"""Run configurations: one YAML file describes a whole run (see ``docs/signals.md``).

A configuration names the data (bundled/imported data sets or CSV files, one or
more instruments), the account, the market calendar and cycle, the strategies
with their capital allocations, gates, sizing, exits or rebalancing targets and
their execution algorithm, and the risk limits
(:class:`tradepilot.risk.config.RiskConfig` keys). :func:`load_config` reads and
validates it into a :class:`RunConfig`; :mod:`tradepilot.app.build` turns that
into an engine and :mod:`tradepilot.app.session` runs it.

Units in the strategy sections: fractions (``0.02``) or percent strings
(``"2%"``), except keys ending in ``_pct``, which are in percent already (``1.78``
or ``"1.78%"``); durations as ``"5m"``, ``"24h"``; money as decimal strings. The risk
section keeps the risk module's own units (percent numbers: ``2.0`` = 2 %).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tradepilot.app import checks
from tradepilot.core.time import NS_PER_MINUTE, parse_duration
from tradepilot.core.yamlfile import load_yaml
from tradepilot.model.enums import AccountType
from tradepilot.persistence.files import check_name
from tradepilot.risk.config import RiskConfig
from tradepilot.strategy.calendars import calendar_for
from tradepilot.strategy.exits import ExitConfig
from tradepilot.strategy.gates import GateConfig
from tradepilot.strategy.ml import source as ensemble_source
from tradepilot.strategy.pipeline import PipelineConfig
from tradepilot.strategy.rebalance import (
    MomentumRotation,
    RebalanceConfig,
    StaticTargets,
    TargetModel,
)
from tradepilot.strategy.sizing import SizingConfig

_T = TypeVar("_T")
KINDS = ("momentum", "rebalance", "signals", "ensemble")


# -- reading sections ---------------------------------------------------------------------------
def _as_fraction(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"{where}: not a number: {value!r}") from None
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(f"{where}: expected a number, got {value!r}")


def as_percent(value: object, where: str) -> float:
    """A number already in percent: ``1.78`` or ``"1.78%"`` -> 1.78."""
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    return _as_fraction(value, where)


def _convert(f: dataclasses.Field[Any], value: object, where: str) -> object:
    kind = str(f.type)
    if value is None:
        if "None" not in kind:
            raise ValueError(f"{where}: a value is required")
        return None
    if f.name.endswith("_ns"):
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a duration, got {value!r}")
        if isinstance(value, int):
            return value
        return parse_duration(str(value))
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind.startswith("float"):
        if f.name.endswith("_pct"):  # in percent already (1.78 = 1.78 %)
            return as_percent(value, where)
        return _as_fraction(value, where)
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if kind.startswith("str"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{where}: expected text, got {value!r}")
        return str(value)
    return value


def build_section(cls: type[_T], data: Mapping[str, Any] | None, where: str) -> _T:
    """A config dataclass from a YAML mapping; ``key`` also fills a field ``key_ns``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, object] = {}
    if data is not None and not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping")
    for key, value in (data or {}).items():
        name = key if key in fields else f"{key}_ns" if f"{key}_ns" in fields else None
        if name is None:
            known = ", ".join(sorted(k.removesuffix("_ns") for k in fields))
            raise ValueError(f"{where}: unknown key {key!r} (known: {known})")
        kwargs[name] = _convert(fields[name], value, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _duration(value: object, where: str) -> int:
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def as_mapping(data: object, where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping")
    return dict(data)


def _only(data: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )


# -- the configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """A bundled/imported data set by name, or a bar file (one or several symbols)."""

    dataset: str | None = None
    file: str | None = None
    symbols: tuple[str, ...] = ()
    venue: str = "SIM"
    quote: str = "USD"
    tick_size: str = "0.01"
    lot_size: str = "1"
    min_notional: str = "0"
    asset_class: str = "EQUITY"
    interval_ns: int = NS_PER_MINUTE


@dataclass(frozen=True)
class StrategySpec:
    id: str
    kind: str
    allocation: float | None
    instruments: tuple[str, ...]
    cycle_ns: int | None
    pipeline: PipelineConfig
    generator: Mapping[str, Any] = field(default_factory=dict)
    targets: Mapping[str, Any] = field(default_factory=dict)
    rebalance: RebalanceConfig = field(default_factory=RebalanceConfig)
    signals_file: str | None = None
    ensemble: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    name: str
    market: str
    holidays: bool
    account_type: AccountType
    currency: str
    capital: str
    fee_bps: str | None
    data: tuple[DataSpec, ...]
    start: str | None
    end: str | None
    cycle_ns: int
    duration_ns: int | None
    speed: float
    latency_ms: float
    strategies: tuple[StrategySpec, ...]
    risk: Mapping[str, Any] | None
    base_dir: Path
    raw: Mapping[str, Any]
    description: str = ""

    def resolve(self, path: str) -> Path:
        """A path from the file: absolute, else relative to the config file, else to cwd."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        near = self.base_dir / p
        return near if near.exists() or not p.exists() else p

    def canonical_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True, separators=(",", ":"), default=str)


_TOP = (
    "name",
    "description",
    "market",
    "holidays",
    "account",
    "data",
    "range",
    "session",
    "strategies",
    "risk",
)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run configuration; raises ValueError with the key at fault."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such configuration file")
    return parse_config(load_yaml(p), p.resolve().parent)


def parse_config(raw: object, base_dir: Path | None = None) -> RunConfig:
    top = as_mapping(raw, "configuration")
    _only(top, _TOP, "configuration")
    account = as_mapping(top.get("account"), "account")
    _only(account, ("type", "currency", "capital", "fee_bps", "latency_ms"), "account")
    session = as_mapping(top.get("session"), "session")
    _only(session, ("cycle", "duration", "speed"), "session")
    rng = as_mapping(top.get("range"), "range")
    _only(rng, ("start", "end"), "range")
    data_items = top.get("data")
    if not isinstance(data_items, list) or not data_items:
        raise ValueError("data: give a list of data sets or files")
    data = tuple(_data_spec(item, f"data[{i}]") for i, item in enumerate(data_items))
    strategies_raw = top.get("strategies")
    if not isinstance(strategies_raw, list) or not strategies_raw:
        raise ValueError("strategies: give a list of strategies")
    cycle_ns = _duration(session.get("cycle", "5m"), "session.cycle")
    if cycle_ns <= 0:
        raise ValueError("session.cycle must be positive")
    strategies = tuple(
        _strategy_spec(item, f"strategies[{i}]") for i, item in enumerate(strategies_raw)
    )
    ids = [s.id for s in strategies]
    if len(set(ids)) != len(ids):
        raise ValueError(f"strategies: ids must be unique, got {ids}")
    try:
        account_type = AccountType(str(account.get("type", "CASH")).upper())
    except ValueError:
        raise ValueError("account.type must be CASH or MARGIN") from None
    capital = checks.capital(str(account.get("capital", "100000")), "account.capital")
    latency_ms = checks.latency_ms(
        _as_fraction(account.get("latency_ms", 0.0), "account.latency_ms"), "account.latency_ms"
    )
    fee = checks.fee_bps(account.get("fee_bps"), "account.fee_bps")
    duration = session.get("duration")
    speed = _as_fraction(session.get("speed", 600), "session.speed")
    if not 0 < speed < math.inf:
        raise ValueError(f"session.speed must be a positive number, not {speed!r}")
    risk = top.get("risk")
    if risk is not None:
        if not isinstance(risk, Mapping):
            raise ValueError("risk must be a mapping of RiskConfig keys")
        try:
            RiskConfig.from_dict(risk)  # validates
        except ValueError as exc:
            raise ValueError(f"risk: {exc}") from None
    market = str(top.get("market", "crypto"))
    calendar_for(market)  # validates
    holidays = top.get("holidays", False)
    if not isinstance(holidays, bool):
        raise ValueError("holidays must be true or false")
    return RunConfig(
        name=check_name(top.get("name", "run"), "name"),
        description=str(top.get("description", "")),
        market=market,
        holidays=holidays,
        account_type=account_type,
        currency=str(account.get("currency", "USDT")),
        capital=capital,
        fee_bps=fee,
        data=data,
        start=None if rng.get("start") is None else str(rng["start"]),
        end=None if rng.get("end") is None else str(rng["end"]),
        cycle_ns=cycle_ns,
        duration_ns=None if duration is None else _duration(duration, "session.duration"),
        speed=speed,
        latency_ms=latency_ms,
        strategies=strategies,
        risk=dict(risk) if risk is not None else None,
        base_dir=base_dir or Path.cwd(),
        raw=top,
    )


def _data_spec(item: object, where: str) -> DataSpec:
    d = as_mapping(item, where)
    known = {f.name for f in dataclasses.fields(DataSpec)} | {"interval", "symbol"}
    _only(d, known, where)
    if ("dataset" in d) == ("file" in d):
        raise ValueError(f"{where}: give exactly one of dataset and file")
    symbols = d.pop("symbols", None)
    if "symbol" in d:
        symbols = [d.pop("symbol")]
    if symbols is not None and (
        not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols)
    ):
        raise ValueError(f"{where}.symbols must be a list of symbols")
    if "file" in d and not symbols:
        raise ValueError(f"{where}: a file needs its symbols")
    spec = build_section(DataSpec, {k: v for k, v in d.items()}, where)
    return dataclasses.replace(spec, symbols=tuple(symbols or ()))


_STRATEGY_KEYS = (
    "id",
    "kind",
    "allocation",
    "instrument",
    "instruments",
    "universe",
    "cycle",
    "generator",
    "gates",
    "sizing",
    "exits",
    "pipeline",
    "targets",
    "rebalance",
    "signals_file",
    "ensemble",
    "execution",
)


def _strategy_spec(item: object, where: str) -> StrategySpec:
    d = as_mapping(item, where)
    _only(d, _STRATEGY_KEYS, where)
    sid = d.get("id")
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"{where}.id is required")
    kind = str(d.get("kind", "momentum"))
    if kind not in KINDS:
        raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}")
    alloc = d.get("allocation")
    allocation = None if alloc is None else _as_fraction(alloc, f"{where}.allocation")
    if allocation is not None and not 0 < allocation <= 1:
        raise ValueError(f"{where}.allocation must be a fraction in (0, 1], not {alloc!r}")
    instruments: list[str] = []
    for key in ("instrument", "instruments", "universe"):
        value = d.get(key)
        if isinstance(value, str):
            instruments.append(value)
        elif isinstance(value, list):
            instruments.extend(str(v) for v in value)
        elif value is not None:
            raise ValueError(f"{where}.{key} must be a symbol or a list of symbols")
    if kind in ("momentum", "rebalance", "ensemble") and not instruments:
        raise ValueError(f"{where}: a {kind} strategy needs its instrument(s)")
    gates = build_section(GateConfig, d.get("gates"), f"{where}.gates")
    sizing = build_section(SizingConfig, d.get("sizing"), f"{where}.sizing")
    exits = build_section(ExitConfig, d.get("exits"), f"{where}.exits")
    extra = as_mapping(d.get("pipeline"), f"{where}.pipeline")
    _only(extra, ("drift_threshold", "history", "atr_period", "journal"), f"{where}.pipeline")
    options: dict[str, Any] = {}
    if "drift_threshold" in extra:
        options["drift_threshold"] = _as_fraction(extra["drift_threshold"], f"{where}.pipeline")
    if "history" in extra:
        options["history_ns"] = parse_duration(str(extra["history"]))
    if "atr_period" in extra:
        options["atr_period"] = int(extra["atr_period"])
    if "journal" in extra:
        options["journal"] = bool(extra["journal"])
    execution = as_mapping(d.get("execution"), f"{where}.execution")
    _only(execution, ("algo", "params"), f"{where}.execution")
    if execution:
        options["algo"] = str(execution.get("algo", "direct"))
        options["algo_params"] = as_mapping(execution.get("params"), f"{where}.execution.params")
    try:
        pipeline = PipelineConfig(gates=gates, sizing=sizing, exits=exits, **options)
    except (TypeError, ValueError) as exc:
        section = "execution" if execution else "pipeline"
        raise ValueError(f"{where}.{section}: {exc}") from None
    cycle = d.get("cycle")
    rebalance = build_section(RebalanceConfig, d.get("rebalance"), f"{where}.rebalance")
    generator = as_mapping(d.get("generator"), f"{where}.generator")
    _only(generator, ("threshold_pct", "lookback", "ttl"), f"{where}.generator")
    targets = as_mapping(d.get("targets"), f"{where}.targets")
    if kind == "rebalance":
        target_model(targets, [], f"{where}.targets")  # validates
    signals_file = d.get("signals_file")
    ensemble = as_mapping(d.get("ensemble"), f"{where}.ensemble")
    if kind == "ensemble":
        ensemble_source.parse_config(ensemble, f"{where}.ensemble")  # validates
    elif ensemble:
        raise ValueError(f"{where}.ensemble is only for kind: ensemble")
    return StrategySpec(
        id=sid,
        kind=kind,
        allocation=allocation,
        instruments=tuple(instruments),
        cycle_ns=None if cycle is None else parse_duration(str(cycle)),
        pipeline=pipeline,
        generator=generator,
        targets=targets,
        rebalance=rebalance,
        signals_file=None if signals_file is None else str(signals_file),
        ensemble=ensemble,
    )


def target_model(spec: Mapping[str, Any], universe: Sequence[str], where: str) -> TargetModel:
    model = str(spec.get("model", "static"))
    if model == "static":
        _only(spec, ("model", "weights"), where)
        weights = as_mapping(spec.get("weights"), f"{where}.weights")
        return StaticTargets(
            {str(k): _as_fraction(v, f"{where}.weights.{k}") for k, v in weights.items()}
        )
    if model == "momentum_rotation":
        rest = {k: v for k, v in spec.items() if k != "model"}
        return build_section(MomentumRotation, rest, where)
    raise ValueError(f"{where}.model must be static or momentum_rotation")
