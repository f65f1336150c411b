"""Backtest and paper sessions: build an engine from a run specification and drive it.

Both modes build the same :class:`~tradepilot.engine.kernel.Engine` with the same
strategy and venue objects; a paper session only adds a pacer (market time runs
``speed`` times faster than wall time), a cycle log and signal handling.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tradepilot.app.reconcile import ReconciliationReport, reconcile
from tradepilot.app.resume import VerifyingJournal
from tradepilot.app.summary import RunSummary, summarize
from tradepilot.core.time import NS_PER_SECOND, iso, parse_time
from tradepilot.data.catalog import DEFAULT_DATASET, Dataset, find
from tradepilot.data.loaders import BarSeries, TradeSeries
from tradepilot.engine.kernel import FLATTEN_STRATEGY_ID, Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.events import OrderInitialized, SessionStarted
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import (
    Journal,
    NullJournal,
    PersistentJournal,
    SqliteJournal,
    open_journal,
)
from tradepilot.risk.engine import TradingState
from tradepilot.strategy import registry
from tradepilot.venues.sim.models import FillModel


@dataclass
class RunSpec:
    """What to run: data, strategy, money, costs. Serialised into the journal's first record."""

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
class Prepared:
    dataset: Dataset
    instrument: Instrument
    series: BarSeries | TradeSeries
    engine: Engine


def prepare(spec: RunSpec, journal: Journal | None = None, mode: str = "backtest") -> Prepared:
    """Load the data, build the strategy and the engine. Raises ValueError on bad input."""
    ds = find(spec.dataset)
    inst = ds.instrument(spec.fee_bps)
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
    strategy = registry.build(spec.strategy, inst.id, spec.params)
    if fixed.to_raw(spec.capital) <= 0:
        raise ValueError("capital must be positive")
    if spec.latency_ms < 0 or spec.jitter_ms < 0:
        raise ValueError("latency cannot be negative")
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
    )
    engine = Engine([inst], [strategy], config, journal=journal or NullJournal())
    return Prepared(ds, inst, series, engine)


def fresh_journal(path: str | Path | None) -> Journal:
    """A new journal at ``path`` (an existing file there is replaced)."""
    if path is None:
        return NullJournal()
    p = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{p}{suffix}").unlink(missing_ok=True)
    return SqliteJournal(p)


def run_backtest(
    spec: RunSpec,
    journal_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Prepared, RunSummary]:
    """Run a backtest to the end of its data; the journal (if any) is rewritten."""
    journal = fresh_journal(journal_path)
    prepared = prepare(spec, journal)
    total = len(prepared.series)
    prepared.engine.run(
        prepared.series,
        progress=(lambda n: progress(n, total)) if progress else None,
        config_json=spec.canonical_json(),
    )
    journal.close()
    return prepared, summarize(prepared.engine)


class ReplayPacer:
    """Holds replayed data back so market time runs ``speed`` times faster than wall time.

    This is the edge where a paper session meets the wall clock; the engine itself
    still reads time only from its own clock.
    """

    def __init__(self, speed: float, sleep: Callable[[float], None] = time.sleep) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._sleep = sleep
        self._origin: tuple[int, float] | None = None

    def __call__(self, ts: int) -> None:
        now = time.monotonic()
        if self._origin is None:
            self._origin = (ts, now)
            return
        data0, wall0 = self._origin
        wait = (ts - data0) / NS_PER_SECOND / self.speed - (now - wall0)
        if wait > 0:
            self._sleep(wait)


@dataclass
class CycleRecord:
    timestamp: str
    portfolio_value: str
    return_pct: float
    position: str
    price: str | None
    signal: str | None
    confidence: float | None
    momentum_pct: float | None
    trades: int
    open_orders: int
    extra: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class PaperOptions:
    """How a paper session runs; journaled with the spec so ``--resume`` can rebuild it."""

    speed: float = 600.0
    duration_ns: int | None = None
    cycle_ns: int = 300 * NS_PER_SECOND
    flatten_on_stop: bool = False

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.cycle_ns <= 0:
            raise ValueError("cycle must be positive")
        if self.duration_ns is not None and self.duration_ns <= 0:
            raise ValueError("duration must be positive")


def paper_config_json(spec: RunSpec, options: PaperOptions) -> str:
    return json.dumps(
        {"spec": asdict(spec), "paper": asdict(options)}, sort_keys=True, separators=(",", ":")
    )


def read_session_config(journal: PersistentJournal) -> tuple[RunSpec, PaperOptions]:
    """The spec and options a paper session journaled in its first record."""
    first = next(iter(journal.events()), None)
    if not isinstance(first, SessionStarted):
        raise ValueError("the journal does not start with a session record: nothing to resume")
    try:
        config = json.loads(first.config)
        return RunSpec(**config["spec"]), PaperOptions(**config["paper"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ValueError("the journal was not written by a paper session") from None


class PaperSession:
    """A continuous session on replayed data, paced by the clock, logged every cycle.

    ``resume=True`` continues the session journaled at ``journal_path``: the
    specification comes from the journal, the engine replays the session up to the
    journal's last complete batch (verifying every event, without waiting for the
    clock), reconciles with the venue, then carries on; the cycle log is continued.
    """

    def __init__(
        self,
        spec: RunSpec | None,
        options: PaperOptions | None,
        log_path: str | Path,
        journal_path: str | Path,
        report_path: str | Path | None = None,
        on_cycle: Callable[[CycleRecord], None] | None = None,
        resume: bool = False,
    ) -> None:
        self.log_path = Path(log_path)
        self.resumed = resume
        self.reconciliation: ReconciliationReport | None = None
        self._reconcile_due = False
        journal: Journal
        if resume:
            if not Path(journal_path).exists():
                raise ValueError(f"no session journal at {journal_path}")
            inner = open_journal(str(journal_path))
            spec, options = read_session_config(inner)
            if any(
                isinstance(e, OrderInitialized) and e.strategy_id == FLATTEN_STRATEGY_ID
                for e in inner.events()
            ):
                inner.close()
                raise ValueError(
                    "this session was closed out (flattened) when it stopped; start a new one"
                )
            self.verifier: VerifyingJournal | None = VerifyingJournal(inner, self._caught_up)
            journal = self.verifier
            self._last_logged = _last_logged_ts(self.log_path)
        else:
            if spec is None or options is None:
                raise ValueError("a new paper session needs a spec and options")
            journal = fresh_journal(journal_path)
            self.verifier = None
            self._last_logged = -1
            self.log_path.unlink(missing_ok=True)
        self.spec = spec
        self.options = options
        self.journal = journal
        self.prepared = prepare(spec, journal, mode="paper")
        series = self.prepared.series
        start = series.start_ns if isinstance(series, BarSeries) else int(series.ts[0])
        if options.duration_ns is not None:
            series = series.between(start, start + options.duration_ns + 1)
        self.series: Iterable[Any] = series
        self.start_ns = start
        self.pacer = ReplayPacer(options.speed)
        self.cycle_ns = options.cycle_ns
        self.report_path = (
            Path(report_path) if report_path else self.log_path.with_suffix(".report.json")
        )
        self.flatten_on_stop = options.flatten_on_stop
        self.on_cycle = on_cycle
        self.cycles = 0
        self.stop_reason = "end of data"
        self._log: TextIO | None = None

    def _caught_up(self) -> None:
        self._reconcile_due = True

    def _pace(self, ts: int) -> None:
        """Wait for wall time - except while replaying what the journal already holds."""
        if self._reconcile_due:
            self._reconcile_due = False
            self.reconciliation = reconcile(self.prepared.engine)
        verifier = self.verifier
        if verifier is not None and verifier.catching_up:
            engine = self.prepared.engine
            manual = verifier.next_manual_state()
            # re-apply an operator's change at the item boundary where it was journaled
            while manual is not None and manual.ts == engine.clock.now():
                engine.set_trading_state(TradingState(manual.state), manual.reason, manual.until_ns)
                manual = verifier.next_manual_state()
            return
        self.pacer(ts)

    # -- cycle log ------------------------------------------------------------------------
    def record(self, ts: int) -> CycleRecord:
        engine = self.prepared.engine
        pf = engine.portfolio
        iid = self.prepared.instrument.id
        equity = pf.equity()
        start_eq = pf.starting_equity or equity
        status = engine.strategies[0].status() if engine.strategies else {}
        price = pf.last_price(iid)
        extra = {
            k: v for k, v in status.items() if k not in ("signal", "confidence", "momentum_pct")
        }
        return CycleRecord(
            timestamp=iso(ts),
            portfolio_value=fixed.to_str(equity),
            return_pct=round((equity / start_eq - 1.0) * 100.0, 4) if start_eq else 0.0,
            position=fixed.to_str(pf.position_qty(iid)),
            price=fixed.to_str(price) if price is not None else None,
            signal=_opt_str(status.get("signal")),
            confidence=_opt_float(status.get("confidence")),
            momentum_pct=_opt_float(status.get("momentum_pct")),
            trades=pf.fill_count,
            open_orders=len(engine.orders.all_open()),
            extra=extra,
        )

    def _cycle(self, ts: int) -> None:
        if ts <= self._last_logged:
            return  # logged before the interruption
        rec = self.record(ts)
        self.cycles += 1
        if self._log is not None:
            self._log.write(rec.to_json() + "\n")
            self._log.flush()
        if self.on_cycle is not None:
            self.on_cycle(rec)

    # -- running ------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        self.stop_reason = name
        self.prepared.engine.stop(name, flatten=self.flatten_on_stop)

    def run(self) -> dict[str, Any]:
        engine = self.prepared.engine
        engine.every(self.cycle_ns, self._cycle, self.start_ns + self.cycle_ns)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        wall0 = time.monotonic()
        try:
            with self.log_path.open("a") as log:
                self._log = log
                engine.run(
                    self.series,
                    pacer=self._pace,
                    flush_every_item=True,
                    config_json=paper_config_json(self.spec, self.options),
                )
                self._cycle(engine.clock.now())  # the final state, whatever the cycle phase
                self._log = None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.journal.close()
        report = self.report(time.monotonic() - wall0)
        self.report_path.write_text(json.dumps(report, indent=2))
        return report

    def report(self, wall_seconds: float) -> dict[str, Any]:
        engine = self.prepared.engine
        summary = summarize(engine)
        rec = self.reconciliation
        return {
            "mode": "paper",
            "resumed": self.resumed,
            "reconciliation": json.loads(rec.to_json()) if rec is not None else None,
            "stop_reason": self.stop_reason,
            "spec": asdict(self.spec),
            "market_start": iso(self.start_ns),
            "market_end": iso(engine.clock.now()),
            "wall_seconds": round(wall_seconds, 3),
            "cycles": self.cycles,
            "summary": summary.to_dict(),
            "positions": {
                iid: pos.to_dict(engine.portfolio.last_price(iid))
                for iid, pos in engine.portfolio.positions.items()
            },
            "balances": engine.portfolio.account.snapshot(),
            "cycle_log": str(self.log_path),
        }


def _last_logged_ts(path: Path) -> int:
    """The time of the last complete cycle record (a torn last line is cut off)."""
    if not path.exists():
        return -1
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut != len(data):
        with path.open("r+b") as fh:
            fh.truncate(cut)
    lines = data[:cut].splitlines()
    if not lines:
        return -1
    return parse_time(json.loads(lines[-1])["timestamp"])


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
