"""Building a run: data, instruments, strategies and the engine, from a spec or a config.

Two descriptions of a run exist: a :class:`RunSpec` (one registered strategy on one
data set: the ``backtest`` and ``paper`` commands) and a
:class:`~tradepilot.app.config.RunConfig` (a YAML configuration: ``run-config``).
:func:`build_spec_run` and :func:`build_config_run` turn either into the same
:class:`BuiltRun`, which :class:`~tradepilot.app.session.Session` runs - in
backtest or paper mode, with a cycle log, a report and resume, whichever built it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tradepilot.app import checks
from tradepilot.app.config import RunConfig, as_mapping, as_percent, target_model
from tradepilot.core.time import NS_PER_SECOND, parse_duration, parse_time
from tradepilot.data import catalog
from tradepilot.data.catalog import DEFAULT_DATASET, Dataset
from tradepilot.data.loaders import BarSeries, TradeSeries, load_bars
from tradepilot.data.streams import merge_streams
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.execution.algo_engine import AlgoEngine
from tradepilot.model.enums import AssetClass
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import Journal, NullJournal
from tradepilot.risk.config import RiskConfig
from tradepilot.strategy import registry
from tradepilot.strategy.allocation import CapitalAllocator
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.calendars import TradingCalendar, calendar_for
from tradepilot.strategy.ml import source as ensemble_source
from tradepilot.strategy.pipeline import SignalPipeline
from tradepilot.strategy.rebalance import RebalanceStrategy
from tradepilot.strategy.signal_strategy import MomentumSignalGenerator, SignalStrategy
from tradepilot.strategy.signals import FileSignalSource
from tradepilot.venues.sim.models import FillModel


@dataclass
class RunSpec:
    """One registered strategy on one data set (``backtest``, ``paper``); journaled."""

    dataset: str = DEFAULT_DATASET
    strategy: str = "ema_cross"
    params: dict[str, str] = field(default_factory=dict)
    start: str | None = None
    end: str | None = None
    capital: str = "100000"
    fee_bps: str | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 0
    slippage_ticks: int = 0
    limit_fill: str = "touch"

    def canonical_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass
class BuiltRun:
    """A run ready to go: its engine and the data to feed it.

    ``calendar`` is the market calendar the cycles follow (a configuration's); a
    spec run has none and logs a cycle every interval from its first item.
    """

    name: str
    instruments: list[Instrument]
    series: list[BarSeries | TradeSeries]
    engine: Engine
    strategies: list[Strategy]
    calendar: TradingCalendar | None = None
    start_ns: int = 0
    dataset: Dataset | None = None
    warnings: tuple[str, ...] = ()  # why the run could silently do nothing
    end_reason: str = "end of data"  # why the replay ends if nothing stops it first

    @property
    def instrument(self) -> Instrument:
        """The first (for a spec run: the only) instrument."""
        return self.instruments[0]

    def pipelines(self) -> dict[str, SignalPipeline]:
        out = {}
        for strat in self.strategies:
            pipeline = getattr(strat, "pipeline", None)
            if isinstance(pipeline, SignalPipeline):
                out[strat.strategy_id] = pipeline
        return out

    def data(self) -> Iterable[Any]:
        """The instruments' data merged in time order (ties in instrument order)."""
        if len(self.series) == 1:
            return self.series[0]
        return merge_streams(*self.series)

    def __len__(self) -> int:
        return sum(len(s) for s in self.series)


#: A journal, or a function that opens one: called only once the run is known to be valid,
#: so a rejected run touches nothing on disk.
JournalSource = Journal | Callable[[], Journal] | None


def _opened(journal: JournalSource) -> Journal:
    return (journal() if callable(journal) else journal) or NullJournal()


PAPER_RECONCILE_NS = 5 * 60 * 1_000_000_000


def build_spec_run(
    spec: RunSpec,
    journal: JournalSource = None,
    mode: str = "backtest",
    duration_ns: int | None = None,
) -> BuiltRun:
    """Load the data, build the strategy and the engine. Raises ValueError on bad input."""
    ds = catalog.find(spec.dataset)
    inst = ds.instrument(checks.fee_bps(spec.fee_bps, "fee"))
    series: BarSeries | TradeSeries
    series = ds.load_bars(inst.id) if ds.kind == "bars" else ds.load_trades(inst.id)
    start = parse_time(spec.start) if spec.start else None
    end = parse_time(spec.end) if spec.end else None
    if start is not None and end is not None and end <= start:
        raise ValueError("the end of the date range must be after its start")
    if start is not None or end is not None:
        series = series.between(start, end)
    if len(series) == 0:
        raise ValueError("no data in the requested date range")
    first = series.start_ns if isinstance(series, BarSeries) else int(series.ts[0])
    end_reason = "end of data"
    if duration_ns is not None:
        if duration_ns <= 0:
            raise ValueError("duration must be positive")
        cut = series.between(first, first + duration_ns + 1)
        if len(cut) < len(series):
            end_reason = f"duration {_span(duration_ns)} reached"
        series = cut
    strategy = registry.build(spec.strategy, inst.id, spec.params)
    checks.capital(spec.capital, "capital")
    checks.latency_ms(spec.latency_ms, "latency")
    checks.latency_ms(spec.jitter_ms, "jitter")
    config = EngineConfig(
        starting_balances={inst.quote: spec.capital},
        base_currency=inst.quote,
        fill_model=FillModel(
            limit_fill=spec.limit_fill,  # type: ignore[arg-type]
            market_slippage_ticks=spec.slippage_ticks,
            bar_slippage_ticks=spec.slippage_ticks,
        ),
        latency_ns=int(spec.latency_ms * 1_000_000),
        latency_jitter_ns=int(spec.jitter_ms * 1_000_000),
        seed=spec.seed,
        mode=mode,
        # a paper session reconciles with its venue every few minutes (quiet when all agrees)
        reconcile_interval_ns=PAPER_RECONCILE_NS if mode == "paper" else None,
    )
    # a strategy's companions (its algorithm host) run in the engine before it
    engine = Engine.simulated(
        [inst], [*strategy.companions(), strategy], config, journal=_opened(journal)
    )
    return BuiltRun(
        f"{spec.strategy} on {ds.name}",
        [inst],
        [series],
        engine,
        [strategy],
        None,
        first,
        ds,
        data_warnings(strategy, ds),
        end_reason,
    )


def _span(ns: int) -> str:
    """A duration as the user would write it: ``24h``, ``90m``, ``45s``."""
    for unit, size in (("h", 3_600), ("m", 60)):
        if ns % (size * NS_PER_SECOND) == 0:
            return f"{ns // (size * NS_PER_SECOND)}{unit}"
    return f"{ns / NS_PER_SECOND:g}s"


_CALLBACKS = {"bars": ("on_bar",), "trades": ("on_trade", "on_quote", "on_book")}


def data_warnings(strategy: Strategy, dataset: Dataset) -> tuple[str, ...]:
    """Why a run would silently do nothing: the strategy never hears the data's kind."""
    heard = [
        name
        for names in _CALLBACKS.values()
        for name in names
        if getattr(type(strategy), name) is not getattr(Strategy, name)
    ]
    wanted = _CALLBACKS.get(dataset.kind, ())
    if not heard or any(name in heard for name in wanted):
        return ()
    kind = "bars" if dataset.kind == "bars" else "trade ticks"
    return (
        f"strategy {strategy.strategy_id} reacts to {', '.join(heard)} but data set "
        f"{dataset.name} holds {kind}: it will see none of them and place no orders",
    )


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


def build_config_run(
    config: RunConfig,
    journal: JournalSource = None,
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
                    for k, v in as_mapping(targets["weights"], f"{where}.targets.weights").items()
                }
            strategies.append(
                RebalanceStrategy(
                    spec.id,
                    ids,
                    target_model(targets, ids, f"{where}.targets"),
                    spec.rebalance,
                    spec.pipeline,
                    cycle,
                    calendar,
                    allocator,
                )
            )
            continue
        if spec.kind == "ensemble":
            strategies.append(
                ensemble_source.build_strategy(
                    spec.id,
                    ids[0],
                    spec.ensemble,
                    spec.pipeline,
                    cycle,
                    calendar,
                    allocator,
                    sources,
                    config.resolve,
                    where,
                )
            )
            continue
        generator = None
        if spec.kind == "momentum":
            g = spec.generator
            generator = MomentumSignalGenerator(
                ids[0],
                as_percent(g.get("threshold_pct", spec.pipeline.gates.min_momentum_pct), where),
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
    # the algorithm host works the parent orders of signals and strategies that name an
    # execution algorithm; first, so it sees each item before the strategies act on it
    algos = AlgoEngine()
    for strategy in strategies:
        strategy.algos = algos
        pipeline = getattr(strategy, "pipeline", None)
        if isinstance(pipeline, SignalPipeline):
            pipeline.algos = algos
    engine = Engine.simulated(
        instruments, [algos, *strategies], engine_cfg, journal=_opened(journal)
    )
    return BuiltRun(config.name, instruments, list(series), engine, strategies, calendar, begin)
