"""Run configurations: one YAML file describes a whole run, in backtest or paper mode.

A configuration names the data (bundled/imported data sets or CSV files, one or
more instruments), the account, the market calendar and cycle, the strategies
with their capital allocations, gates, sizing, exits or rebalancing targets, and
the risk limits (:class:`tradepilot.risk.config.RiskConfig` keys). See
``docs/signals.md`` and ``examples/configs/`` for the keys.

:class:`ConfigSession` builds one :class:`~tradepilot.engine.kernel.Engine` from it
and runs the data through it. Backtest and paper differ only in pacing (a paper
session replays market time ``speed`` times faster than wall time, flushes the
journal every item and stops cleanly on SIGINT/SIGTERM): the same objects make
the same decisions, and both write the same cycle log when asked to. Several
instruments are merged into one time-ordered stream (ties in instrument order).

Units in the strategy sections: fractions (``0.02``) or percent strings
(``"2%"``), except keys ending in ``_pct``, which are in percent already (``1.78``
or ``"1.78%"``); durations as ``"5m"``, ``"24h"``; money as decimal strings. The risk
section keeps the risk module's own units (percent numbers: ``2.0`` = 2 %).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

import yaml

from tradepilot.app.sessions import CycleRecord, ReplayPacer
from tradepilot.app.summary import summarize
from tradepilot.core.time import NS_PER_MINUTE, iso, parse_duration
from tradepilot.data import catalog
from tradepilot.data.loaders import BarSeries, load_bars
from tradepilot.data.streams import merge_streams
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.enums import AccountType, AssetClass
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import Journal, NullJournal, SqliteJournal
from tradepilot.risk.config import RiskConfig
from tradepilot.strategy.allocation import CapitalAllocator
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.calendars import TradingCalendar, calendar_for, schedule_cycles
from tradepilot.strategy.exits import ExitConfig
from tradepilot.strategy.gates import GateConfig
from tradepilot.strategy.pipeline import PipelineConfig, SignalPipeline
from tradepilot.strategy.rebalance import (
    MomentumRotation,
    RebalanceConfig,
    RebalanceStrategy,
    StaticTargets,
    TargetModel,
)
from tradepilot.strategy.signal_strategy import MomentumSignalGenerator, SignalStrategy
from tradepilot.strategy.signals import FileSignalSource, parse_time
from tradepilot.strategy.sizing import SizingConfig

_T = TypeVar("_T")
KINDS = ("momentum", "rebalance", "signals")


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


def _as_percent(value: object, where: str) -> float:
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
            return _as_percent(value, where)
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


def _mapping(data: object, where: str) -> dict[str, Any]:
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
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML: {exc}") from None
    return parse_config(raw, p.resolve().parent)


def parse_config(raw: object, base_dir: Path | None = None) -> RunConfig:
    top = _mapping(raw, "configuration")
    _only(top, _TOP, "configuration")
    account = _mapping(top.get("account"), "account")
    _only(account, ("type", "currency", "capital", "fee_bps", "latency_ms"), "account")
    session = _mapping(top.get("session"), "session")
    _only(session, ("cycle", "duration", "speed"), "session")
    rng = _mapping(top.get("range"), "range")
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
    capital = str(account.get("capital", "100000"))
    try:
        capital_raw = fixed.to_raw(capital)
    except ValueError:
        raise ValueError(f"account.capital: not a number: {capital!r}") from None
    if capital_raw <= 0:
        raise ValueError("account.capital must be positive")
    latency_ms = _as_fraction(account.get("latency_ms", 0.0), "account.latency_ms")
    if latency_ms < 0:
        raise ValueError("account.latency_ms cannot be negative")
    fee = account.get("fee_bps")
    duration = session.get("duration")
    speed = _as_fraction(session.get("speed", 600), "session.speed")
    if speed <= 0:
        raise ValueError("session.speed must be positive")
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
        name=str(top.get("name", "run")),
        description=str(top.get("description", "")),
        market=market,
        holidays=holidays,
        account_type=account_type,
        currency=str(account.get("currency", "USDT")),
        capital=capital,
        fee_bps=None if fee is None else str(fee),
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
    d = _mapping(item, where)
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
)


def _strategy_spec(item: object, where: str) -> StrategySpec:
    d = _mapping(item, where)
    _only(d, _STRATEGY_KEYS, where)
    sid = d.get("id")
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"{where}.id is required")
    kind = str(d.get("kind", "momentum"))
    if kind not in KINDS:
        raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}")
    alloc = d.get("allocation")
    allocation = None if alloc is None else _as_fraction(alloc, f"{where}.allocation")
    instruments: list[str] = []
    for key in ("instrument", "instruments", "universe"):
        value = d.get(key)
        if isinstance(value, str):
            instruments.append(value)
        elif isinstance(value, list):
            instruments.extend(str(v) for v in value)
        elif value is not None:
            raise ValueError(f"{where}.{key} must be a symbol or a list of symbols")
    if kind in ("momentum", "rebalance") and not instruments:
        raise ValueError(f"{where}: a {kind} strategy needs its instrument(s)")
    gates = build_section(GateConfig, d.get("gates"), f"{where}.gates")
    sizing = build_section(SizingConfig, d.get("sizing"), f"{where}.sizing")
    exits = build_section(ExitConfig, d.get("exits"), f"{where}.exits")
    extra = _mapping(d.get("pipeline"), f"{where}.pipeline")
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
    try:
        pipeline = PipelineConfig(gates=gates, sizing=sizing, exits=exits, **options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}.pipeline: {exc}") from None
    cycle = d.get("cycle")
    rebalance = build_section(RebalanceConfig, d.get("rebalance"), f"{where}.rebalance")
    generator = _mapping(d.get("generator"), f"{where}.generator")
    _only(generator, ("threshold_pct", "lookback", "ttl"), f"{where}.generator")
    targets = _mapping(d.get("targets"), f"{where}.targets")
    if kind == "rebalance":
        _target_model(targets, [], f"{where}.targets")  # validates
    signals_file = d.get("signals_file")
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
    )


def _target_model(spec: Mapping[str, Any], universe: Sequence[str], where: str) -> TargetModel:
    model = str(spec.get("model", "static"))
    if model == "static":
        _only(spec, ("model", "weights"), where)
        weights = _mapping(spec.get("weights"), f"{where}.weights")
        return StaticTargets(
            {str(k): _as_fraction(v, f"{where}.weights.{k}") for k, v in weights.items()}
        )
    if model == "momentum_rotation":
        rest = {k: v for k, v in spec.items() if k != "model"}
        return build_section(MomentumRotation, rest, where)
    raise ValueError(f"{where}.model must be static or momentum_rotation")


# -- building a run -----------------------------------------------------------------------------
@dataclass
class BuiltRun:
    config: RunConfig
    instruments: list[Instrument]
    series: list[BarSeries]
    engine: Engine
    strategies: list[Strategy]
    calendar: TradingCalendar
    start_ns: int = 0

    def pipelines(self) -> dict[str, SignalPipeline]:
        out = {}
        for strat in self.strategies:
            pipeline = getattr(strat, "pipeline", None)
            if isinstance(pipeline, SignalPipeline):
                out[strat.strategy_id] = pipeline
        return out

    def data(self) -> Iterator[Any]:
        """The instruments' bars merged in time order (ties in instrument order)."""
        return merge_streams(*self.series)


def _load(
    config: RunConfig,
) -> tuple[list[Instrument], list[BarSeries]]:
    instruments: list[Instrument] = []
    series: list[BarSeries] = []
    for spec in config.data:
        if spec.dataset is not None:
            ds = catalog.find(spec.dataset)
            inst = ds.instrument(config.fee_bps)
            loaded = ds.load_bars(inst.id) if ds.kind == "bars" else None
            if loaded is None:
                raise ValueError(f"data set {spec.dataset} holds trades; give bars")
            instruments.append(inst)
            series.append(loaded)
            continue
        assert spec.file is not None
        path = config.resolve(spec.file)
        fee = config.fee_bps or "0"
        for sym in spec.symbols:
            inst = Instrument.create(
                symbol=sym,
                venue=spec.venue,
                base=sym,
                quote=spec.quote,
                tick_size=spec.tick_size,
                lot_size=spec.lot_size,
                min_qty=spec.lot_size,
                min_notional=spec.min_notional,
                maker_fee_bps=fee,
                taker_fee_bps=fee,
                asset_class=AssetClass(spec.asset_class),
            )
            instruments.append(inst)
            series.append(load_bars(path, inst.id, symbol=sym, interval_ns=spec.interval_ns))
    ids = [i.id for i in instruments]
    if len(set(ids)) != len(ids):
        raise ValueError(f"data: instruments appear twice: {ids}")
    return instruments, series


def _instrument_id(name: str, instruments: Sequence[Instrument], where: str) -> str:
    for inst in instruments:
        if name in (inst.id, inst.symbol):
            return inst.id
    raise ValueError(f"{where}: unknown instrument {name!r} (have {[i.id for i in instruments]})")


def build_run(
    config: RunConfig,
    journal: Journal | None = None,
    mode: str = "backtest",
    start: str | None = None,
    end: str | None = None,
    duration_ns: int | None = None,
    signals_file: str | None = None,
) -> BuiltRun:
    """Load the data and build the engine, strategies and risk limits of a run."""
    instruments, series = _load(config)
    start_text = start or config.start
    end_text = end or config.end
    lo = parse_time(start_text) if start_text else None
    hi = parse_time(end_text) if end_text else None
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError("the end of the range must be after its start")
    first = min(int(s.ts_open[0]) for s in series if len(s))
    begin = lo if lo is not None else first
    if duration_ns is not None:
        if duration_ns <= 0:
            raise ValueError("duration must be positive")
        hi = begin + duration_ns if hi is None else min(hi, begin + duration_ns)
    series = [s.between(lo, hi) for s in series]
    if not any(len(s) for s in series):
        raise ValueError("no data in the requested range")
    calendar = calendar_for(config.market, config.holidays)
    quote = instruments[0].quote
    engine_cfg = EngineConfig(
        starting_balances={config.currency: config.capital},
        base_currency=config.currency,
        account_type=config.account_type,
        latency_ns=int(config.latency_ms * 1_000_000),
        mode=mode,
        risk=RiskConfig.from_dict(config.risk) if config.risk else None,
    )
    if quote != config.currency:
        raise ValueError(
            f"account.currency {config.currency} differs from the quote currency {quote}"
        )
    allocator = None
    if any(s.allocation is not None for s in config.strategies):
        allocator = CapitalAllocator()
        for s in config.strategies:
            if s.allocation is None:
                raise ValueError(f"strategy {s.id}: give every strategy an allocation, or none")
            allocator.register(s.id, s.allocation)
    takes_file = next((i for i, s in enumerate(config.strategies) if s.kind != "rebalance"), None)
    if signals_file and takes_file is None:
        raise ValueError("--signals needs a momentum or signals strategy to replay them into")
    strategies: list[Strategy] = []
    for i, spec in enumerate(config.strategies):
        where = f"strategies[{i}]"
        ids = [_instrument_id(n, instruments, where) for n in spec.instruments]
        cycle = spec.cycle_ns or config.cycle_ns
        file = signals_file if (signals_file and i == takes_file) else spec.signals_file
        sources = [FileSignalSource(config.resolve(file))] if file else []
        if spec.kind == "rebalance":
            targets = dict(spec.targets)
            if "weights" in targets:
                targets["weights"] = {
                    _instrument_id(k, instruments, where): v
                    for k, v in _mapping(targets["weights"], f"{where}.targets.weights").items()
                }
            strategies.append(
                RebalanceStrategy(
                    spec.id,
                    ids,
                    _target_model(targets, ids, f"{where}.targets"),
                    spec.rebalance,
                    spec.pipeline,
                    cycle,
                    calendar,
                    allocator,
                )
            )
            continue
        generator = None
        if spec.kind == "momentum":
            g = spec.generator
            generator = MomentumSignalGenerator(
                ids[0],
                _as_percent(g.get("threshold_pct", spec.pipeline.gates.min_momentum_pct), where),
                parse_duration(str(g.get("lookback", "1h"))),
                parse_duration(str(g["ttl"])) if g.get("ttl") is not None else cycle,
            )
        strategies.append(
            SignalStrategy(
                spec.id,
                spec.pipeline,
                generator,
                cycle,
                calendar,
                allocator,
                sources,
                ids[0] if ids else None,
            )
        )
    engine = Engine(instruments, strategies, engine_cfg, journal=journal)
    return BuiltRun(config, instruments, series, engine, strategies, calendar, begin)


# -- the session ----------------------------------------------------------------------------------
def fresh_journal(path: str | Path | None) -> Journal:
    """A new SQLite journal at ``path`` (a file already there is replaced), or none."""
    if path is None:
        return NullJournal()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{p}{suffix}").unlink(missing_ok=True)
    return SqliteJournal(p)


class ConfigSession:
    """Runs a configuration as a backtest or a paper session, with a cycle log."""

    def __init__(
        self,
        config: RunConfig,
        mode: str = "backtest",
        speed: float | None = None,
        duration_ns: int | None = None,
        cycle_ns: int | None = None,
        start: str | None = None,
        end: str | None = None,
        log_path: str | Path | None = None,
        journal_path: str | Path | None = None,
        report_path: str | Path | None = None,
        flatten_on_stop: bool = False,
        on_cycle: Callable[[CycleRecord], None] | None = None,
        signals_file: str | None = None,
        pacer: Callable[[int], None] | None = None,
    ) -> None:
        if mode not in ("backtest", "paper"):
            raise ValueError("mode must be backtest or paper")
        self.config = config
        self.mode = mode
        if duration_ns is None and mode == "paper":
            duration_ns = config.duration_ns
        self.journal = fresh_journal(journal_path)
        self.built = build_run(config, self.journal, mode, start, end, duration_ns, signals_file)
        self.cycle_ns = cycle_ns or config.cycle_ns
        if self.cycle_ns <= 0:
            raise ValueError("the cycle must be positive")
        self.speed = speed if speed is not None else config.speed
        self.pacer: Callable[[int], None] | None = pacer
        if self.pacer is None and mode == "paper":
            self.pacer = ReplayPacer(self.speed)
        self.log_path = Path(log_path) if log_path else None
        self.report_path = Path(report_path) if report_path else None
        self.flatten_on_stop = flatten_on_stop
        self.on_cycle = on_cycle
        self.cycles = 0
        self.records: list[CycleRecord] = []
        self.stop_reason = "end of data"
        self.overrides = {
            "mode": mode,
            "start": start,
            "end": end,
            "duration_ns": duration_ns,
            "cycle_ns": self.cycle_ns,
            "signals_file": signals_file,
        }
        self._log: TextIO | None = None

    @property
    def engine(self) -> Engine:
        return self.built.engine

    # -- cycle log ----------------------------------------------------------------------------
    def record(self, ts: int) -> CycleRecord:
        built = self.built
        engine = built.engine
        pf = engine.portfolio
        equity = pf.equity()
        start_eq = pf.starting_equity or equity
        primary = built.strategies[0]
        status = primary.status()
        iid = getattr(primary, "primary_instrument", None)
        if len(built.instruments) == 1:
            iid = built.instruments[0].id
        extra = {
            k: v for k, v in status.items() if k not in ("signal", "confidence", "momentum_pct")
        }
        if len(built.strategies) > 1:
            extra["strategies"] = {s.strategy_id: s.status() for s in built.strategies[1:]}
        if iid is not None:
            position = fixed.to_str(pf.position_qty(iid))
            px = pf.last_price(iid)
            price = fixed.to_str(px) if px is not None else None
        else:
            position = (
                " ".join(
                    f"{i}:{fixed.to_str(p.qty)}" for i, p in sorted(pf.positions.items()) if p.qty
                )
                or "0"
            )
            price = None
        confidence = status.get("confidence")
        momentum = status.get("momentum_pct")
        signal_value = status.get("signal")
        return CycleRecord(
            timestamp=iso(ts),
            portfolio_value=fixed.to_str(equity),
            return_pct=round((equity / start_eq - 1.0) * 100.0, 4) if start_eq else 0.0,
            position=position,
            price=price,
            signal=None if signal_value is None else str(signal_value),
            confidence=float(confidence) if isinstance(confidence, int | float) else None,
            momentum_pct=float(momentum) if isinstance(momentum, int | float) else None,
            trades=pf.fill_count,
            open_orders=len(engine.orders.all_open()),
            extra=extra,
        )

    def _cycle(self, ts: int) -> None:
        rec = self.record(ts)
        self.cycles += 1
        self.records.append(rec)
        if self._log is not None:
            self._log.write(rec.to_json() + "\n")
            if self.mode == "paper":
                self._log.flush()
        if self.on_cycle is not None:
            self.on_cycle(rec)

    # -- running ------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.stop_reason = name
        self.engine.stop(name, flatten=self.flatten_on_stop)

    def run(self) -> dict[str, Any]:
        built = self.built
        engine = built.engine
        # log each cycle just after the strategies acted on it (same boundary, +1 ns)
        schedule_cycles(
            engine,
            self.cycle_ns,
            built.calendar,
            self._cycle,
            offset_ns=1,
            first_ns=built.start_ns + 1,
        )
        previous: dict[signal.Signals, Any] = {}
        if self.mode == "paper":
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    previous[sig] = signal.signal(sig, self._on_signal)
                except ValueError:  # not the main thread
                    break
        wall0 = time.monotonic()
        log_file: TextIO | None = None
        try:
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                log_file = self.log_path.open("w")
                self._log = log_file
            engine.run(
                built.data(),
                pacer=self.pacer,
                flush_every_item=self.mode == "paper",
                config_json=json.dumps(
                    {"config": self.config.raw, "run": self.overrides},
                    sort_keys=True,
                    separators=(",", ":"),
                    default=str,
                ),
            )
            self._cycle(engine.clock.now())  # the final state
        finally:
            self._log = None
            if log_file is not None:
                log_file.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.journal.close()
        report = self.report(time.monotonic() - wall0)
        if self.report_path is not None:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(json.dumps(report, indent=2, default=str))
        return report

    def report(self, wall_seconds: float) -> dict[str, Any]:
        built = self.built
        engine = built.engine
        holds: dict[str, int] = {}
        signals: dict[str, Any] = {}
        for sid, pipeline in built.pipelines().items():
            summary = pipeline.summary()
            strat = next(s for s in built.strategies if s.strategy_id == sid)
            if isinstance(strat, RebalanceStrategy):
                summary["cycles"] = strat.cycles
                summary["rebalances"] = strat.rebalances
            elif isinstance(strat, SignalStrategy):
                summary["cycles"] = strat.cycles
            signals[sid] = summary
            for code, n in pipeline.holds.to_dict().items():
                holds[code] = holds.get(code, 0) + n
        return {
            "name": self.config.name,
            "mode": self.mode,
            "stop_reason": self.stop_reason,
            "market_start": iso(built.start_ns),
            "market_end": iso(engine.clock.now()),
            "wall_seconds": round(wall_seconds, 3),
            "cycles": self.cycles,
            "summary": summarize(engine).to_dict(),
            "signals": signals,
            "holds": dict(sorted(holds.items(), key=lambda kv: (-kv[1], kv[0]))),
            "positions": {
                iid: pos.to_dict(engine.portfolio.last_price(iid))
                for iid, pos in sorted(engine.portfolio.positions.items())
            },
            "balances": engine.portfolio.account.snapshot(),
            "risk_state": str(engine.risk.state),
            "cycle_log": str(self.log_path) if self.log_path else None,
        }
