"""The session runner: one way to run a backtest, a paper session or a configuration.

A :class:`Session` takes a *plan* - a :class:`SpecPlan` (one registered strategy on
one data set: the ``backtest`` and ``paper`` commands) or a :class:`ConfigPlan` (a
YAML configuration: ``run-config``) - and :class:`SessionOptions` (mode, pacing,
duration, cycle, flatten on stop). Whatever the plan, it gets the same powers:

* **backtest** runs as fast as possible; **paper** replays market time ``speed``
  times faster than wall time, flushes the journal every item and stops cleanly on
  SIGINT/SIGTERM (closing positions through the risk engine with
  ``flatten_on_stop``);
* a **cycle log** (one JSON line per cycle, see :class:`CycleRecord`) and a **session
  report** (JSON);
* **resume** (``resume=True``): the plan and options come from the journal's
  ``SessionStarted``; the engine replays the session against its own journal,
  verifying every event (:mod:`tradepilot.app.resume`), reconciles with the venue
  once it has caught up, then carries on; the cycle log is continued.

A new session never replaces anything: it refuses an existing journal or cycle log
(``overwrite`` moves them aside), and opens its journal only once the plan is known
to be valid; while it runs it owns its journal exclusively, so a second writer is
refused at start (see :mod:`tradepilot.persistence.files`). A journal is a path or
a database URL, where ``session`` names the session.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from tradepilot import __version__
from tradepilot.analytics.market import PriceInput, market_from_series
from tradepilot.app.build import (
    BuiltRun,
    JournalSource,
    RunSpec,
    build_config_run,
    build_spec_run,
)
from tradepilot.app.config import RunConfig, parse_config
from tradepilot.app.reconcile import ReconciliationReport, reconcile
from tradepilot.app.resume import VerifyingJournal
from tradepilot.app.summary import RunSummary, summarize
from tradepilot.core.time import NS_PER_SECOND, iso, parse_time
from tradepilot.engine.kernel import FLATTEN_STRATEGY_ID, Engine
from tradepilot.model import fixed
from tradepilot.model.events import JOURNAL_FORMAT_VERSION, OrderInitialized, SessionStarted
from tradepilot.persistence.files import (
    JournalTarget,
    check_name,
    open_new_journal,
    open_resumed_journal,
)
from tradepilot.persistence.journal import (
    DEFAULT_SESSION,
    Journal,
    JournalError,
    PersistentJournal,
)
from tradepilot.persistence.setup import first_session_started
from tradepilot.risk.engine import TradingState
from tradepilot.strategy.calendars import schedule_cycles
from tradepilot.strategy.rebalance import RebalanceStrategy
from tradepilot.strategy.signal_strategy import SignalStrategy

MODES = ("backtest", "paper")


@dataclass(frozen=True)
class SessionOptions:
    """How a session runs; journaled with its plan so a resume rebuilds it.

    ``cycle_ns`` ``None`` writes no cycle log (a plain backtest).
    """

    mode: str = "backtest"
    speed: float = 600.0
    duration_ns: int | None = None
    cycle_ns: int | None = 300 * NS_PER_SECOND
    flatten_on_stop: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not self.speed > 0 or self.speed == float("inf"):
            raise ValueError("speed must be a positive number")
        if self.cycle_ns is not None and self.cycle_ns <= 0:
            raise ValueError("cycle must be positive")
        if self.duration_ns is not None and self.duration_ns <= 0:
            raise ValueError("duration must be positive")


class Plan(Protocol):
    """What a session runs: builds the engine and says how it is journaled."""

    def build(self, journal: JournalSource, options: SessionOptions) -> BuiltRun: ...

    def config_json(self, options: SessionOptions) -> str: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SpecPlan:
    """One registered strategy on one data set (the ``backtest`` and ``paper`` commands)."""

    spec: RunSpec

    def build(self, journal: JournalSource, options: SessionOptions) -> BuiltRun:
        return build_spec_run(self.spec, journal, options.mode, options.duration_ns)

    def config_json(self, options: SessionOptions) -> str:
        if options.mode == "backtest" and options.cycle_ns is None:
            return self.spec.canonical_json()  # a plain backtest journals the spec alone
        paper = {k: v for k, v in asdict(options).items() if k != "mode"}
        return _canonical({"spec": asdict(self.spec), "paper": paper, "mode": options.mode})

    def describe(self) -> dict[str, Any]:
        return {"spec": asdict(self.spec)}


@dataclass(frozen=True)
class ConfigPlan:
    """A YAML run configuration (``run-config``) with the command line's overrides."""

    config: RunConfig
    start: str | None = None
    end: str | None = None
    signals_file: str | None = None

    def build(self, journal: JournalSource, options: SessionOptions) -> BuiltRun:
        return build_config_run(
            self.config,
            journal,
            options.mode,
            self.start,
            self.end,
            options.duration_ns,
            self.signals_file,
        )

    def config_json(self, options: SessionOptions) -> str:
        run = {
            **asdict(options),
            "start": self.start,
            "end": self.end,
            "signals_file": self.signals_file,
            "base_dir": str(self.config.base_dir),
        }
        return _canonical({"config": self.config.raw, "run": run})

    def describe(self) -> dict[str, Any]:
        return {"name": self.config.name, "config": self.config.raw}


def config_plan(
    config: RunConfig,
    mode: str = "backtest",
    speed: float | None = None,
    duration_ns: int | None = None,
    cycle_ns: int | None = None,
    start: str | None = None,
    end: str | None = None,
    signals_file: str | None = None,
    flatten_on_stop: bool = False,
) -> tuple[ConfigPlan, SessionOptions]:
    """A configuration's plan and options, command-line values over the file's."""
    if duration_ns is None and mode == "paper":
        duration_ns = config.duration_ns
    signals = str(Path(signals_file).resolve()) if signals_file else None
    options = SessionOptions(
        mode,
        config.speed if speed is None else speed,
        duration_ns,
        cycle_ns or config.cycle_ns,
        flatten_on_stop,
    )
    return ConfigPlan(config, start, end, signals), options


def plan_of(started: SessionStarted) -> tuple[Plan, SessionOptions]:
    """The plan and options a session journaled in its ``SessionStarted``."""
    if started.format_version != JOURNAL_FORMAT_VERSION:
        raise ValueError(
            f"the session was journaled in format {started.format_version}; this tradepilot "
            f"resumes format {JOURNAL_FORMAT_VERSION} only: start a new session"
        )
    if started.package_version != __version__:
        raise ValueError(
            f"the session was journaled by tradepilot {started.package_version}, this is "
            f"{__version__}: resume it with the version that started it"
        )
    try:
        data = json.loads(started.config)
        if "config" in data and "run" in data:
            run = dict(data["run"])
            config = parse_config(data["config"], Path(run.pop("base_dir")))
            plan: Plan = ConfigPlan(
                config, run.pop("start"), run.pop("end"), run.pop("signals_file")
            )
            return plan, SessionOptions(**run)
        if "spec" in data:
            paper = data["paper"]
            return SpecPlan(RunSpec(**data["spec"])), SessionOptions(data["mode"], **paper)
        return SpecPlan(RunSpec(**data)), SessionOptions("backtest", cycle_ns=None)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the journal's session record cannot be read ({exc!r})") from None


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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


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


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Session:
    """Runs a plan as a backtest or a paper session, with a cycle log, report and resume.

    With ``resume=True`` the plan and options are read from the journal at
    ``journal_path``; a ``plan`` given too must describe the same run (the same
    specification or configuration), ``options`` are ignored. A new session refuses
    an existing journal or log unless ``overwrite`` (they are moved aside).
    """

    def __init__(
        self,
        plan: Plan | None,
        options: SessionOptions | None = None,
        *,
        journal_path: JournalTarget | None = None,
        log_path: str | Path | None = None,
        report_path: str | Path | None = None,
        on_cycle: Callable[[CycleRecord], None] | None = None,
        pacer: Callable[[int], None] | None = None,
        resume: bool = False,
        overwrite: bool = False,
        session: str = DEFAULT_SESSION,
    ) -> None:
        check_name(session, "session")
        self.resumed = resume
        self.reconciliation: ReconciliationReport | None = None
        self._reconcile_due = False
        self.verifier: VerifyingJournal | None = None
        self.log_path = Path(log_path) if log_path else None
        self._last_logged = -1
        journal: JournalSource
        if resume:
            plan, options, self.verifier = self._open_resume(journal_path, session, plan, options)
            journal = self.verifier
            if self.log_path is not None:
                self._last_logged = _last_logged_ts(self.log_path)
        else:
            if plan is None:
                raise ValueError("a new session needs a plan")
            options = options or SessionOptions()
            logs = [self.log_path] if self.log_path is not None else []
            target = journal_path

            def journal() -> Journal:
                return open_new_journal(target, session, logs, overwrite, options.mode == "paper")

        self.plan = plan
        self.options = options
        try:
            self.built = plan.build(journal, options)
        except BaseException:
            if self.verifier is not None:
                self.verifier.close()
            raise
        self.journal = self.built.engine.journal
        self.pacer = pacer
        if self.pacer is None and options.mode == "paper":
            self.pacer = ReplayPacer(options.speed)
        self.report_path = Path(report_path) if report_path else None
        self.on_cycle = on_cycle
        self.cycles = 0
        self.records: list[CycleRecord] = []
        self.stop_reason = self.built.end_reason
        self._log: TextIO | None = None

    @classmethod
    def from_config(
        cls,
        config: RunConfig,
        *,
        journal_path: JournalTarget | None = None,
        log_path: str | Path | None = None,
        report_path: str | Path | None = None,
        on_cycle: Callable[[CycleRecord], None] | None = None,
        pacer: Callable[[int], None] | None = None,
        overwrite: bool = False,
        **overrides: Any,
    ) -> Session:
        """A new session of a configuration; ``overrides`` as for :func:`config_plan`."""
        plan, options = config_plan(config, **overrides)
        return cls(
            plan,
            options,
            journal_path=journal_path,
            log_path=log_path,
            report_path=report_path,
            on_cycle=on_cycle,
            pacer=pacer,
            overwrite=overwrite,
            session=config.name,
        )

    @staticmethod
    def _open_resume(
        journal_path: JournalTarget | None,
        session: str,
        plan: Plan | None,
        options: SessionOptions | None,
    ) -> tuple[Plan, SessionOptions, VerifyingJournal]:
        if journal_path is None:
            raise ValueError("no session journal given: nothing to resume")
        inner = open_resumed_journal(journal_path, session)
        try:
            stored_plan, stored_options = _resumable(inner)
            if plan is not None and _canonical(plan.describe()) != _canonical(
                stored_plan.describe()
            ):
                raise ValueError(
                    "the configuration differs from the one the session was started with; "
                    "resume it unchanged, or start a new session"
                )
        except BaseException:
            inner.close()
            raise
        return stored_plan, stored_options, VerifyingJournal(inner)

    @property
    def engine(self) -> Engine:
        return self.built.engine

    @property
    def mode(self) -> str:
        return self.options.mode

    @property
    def cycle_ns(self) -> int | None:
        return self.options.cycle_ns

    @property
    def flatten_on_stop(self) -> bool:
        return self.options.flatten_on_stop

    # -- pacing and resume -----------------------------------------------------------------------
    def _pace(self, ts: int) -> None:
        """Wait for wall time - except while replaying what the journal already holds."""
        verifier = self.verifier
        if verifier is not None:
            if verifier.catching_up:
                engine = self.engine
                manual = verifier.next_manual_state()
                # re-apply an operator's change at the item boundary where it was journaled
                while manual is not None and manual.ts == engine.clock.now():
                    engine.set_trading_state(
                        TradingState(manual.state), manual.reason, manual.until_ns
                    )
                    manual = verifier.next_manual_state()
                return
            if self.reconciliation is None:
                self.reconciliation = reconcile(self.engine)
        if self.pacer is not None:
            self.pacer(ts)

    # -- cycle log -------------------------------------------------------------------------------
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
            held = sorted(pf.positions.items())
            position = " ".join(f"{i}:{fixed.to_str(p.qty)}" for i, p in held if p.qty) or "0"
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
        if ts <= self._last_logged:
            return  # logged before the interruption
        rec = self.record(ts)
        self.cycles += 1
        self.records.append(rec)
        if self._log is not None:
            self._log.write(rec.to_json() + "\n")
            if self.mode == "paper":
                self._log.flush()
        if self.on_cycle is not None:
            self.on_cycle(rec)

    def _schedule_cycles(self, cycle_ns: int) -> None:
        built = self.built
        if built.calendar is None:  # every interval from the first item
            built.engine.every(cycle_ns, self._cycle, built.start_ns + cycle_ns)
            return
        # on the calendar's boundaries, just after the strategies acted on them (+1 ns)
        schedule_cycles(
            built.engine,
            cycle_ns,
            built.calendar,
            self._cycle,
            offset_ns=1,
            first_ns=built.start_ns + 1,
        )

    # -- running ---------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.stop_reason = name
        self.engine.stop(name, flatten=self.flatten_on_stop)

    def run(self, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Run to the end of the data (or a stop signal); returns the session report."""
        engine = self.engine
        cycle_ns = self.options.cycle_ns
        if cycle_ns is not None:
            self._schedule_cycles(cycle_ns)
        previous: dict[signal.Signals, Any] = {}
        if self.mode == "paper":
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    previous[sig] = signal.signal(sig, self._on_signal)
                except ValueError:  # not the main thread
                    break
        total = len(self.built)
        wall0 = time.monotonic()
        try:
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                self._log = self.log_path.open("a")
            pace = self._pace if (self.pacer is not None or self.verifier is not None) else None
            engine.run(
                self.built.data(),
                progress=(lambda n: progress(n, total)) if progress else None,
                pacer=pace,
                flush_every_item=self.mode == "paper",
                config_json=self.plan.config_json(self.options),
            )
            if cycle_ns is not None:
                self._cycle(engine.clock.now())  # the final state, whatever the cycle phase
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.journal.close()
        report = self.report(time.monotonic() - wall0)
        if self.report_path is not None:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(json.dumps(report, indent=2, default=str))
        return report

    def summary(self) -> RunSummary:
        return summarize(self.engine, self.prices(), self.built.warnings)

    def prices(self) -> PriceInput:
        """The reference prices of the replayed data, per instrument (for the summary)."""
        return {s.instrument_id: market_from_series(s).prices for s in self.built.series}

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
        rec = self.reconciliation
        return {
            "name": built.name,
            "mode": self.mode,
            "resumed": self.resumed,
            "reconciliation": json.loads(rec.to_json()) if rec is not None else None,
            "stop_reason": self.stop_reason,
            **self.plan.describe(),
            "market_start": iso(built.start_ns),
            "market_end": iso(engine.clock.now()),
            "wall_seconds": round(wall_seconds, 3),
            "cycles": self.cycles,
            "summary": summarize(engine, self.prices(), built.warnings).to_dict(),
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


def _resumable(journal: PersistentJournal) -> tuple[Plan, SessionOptions]:
    """The plan of the session journaled in ``journal``, if it can be resumed."""
    try:
        started = first_session_started(journal)
    except JournalError:
        raise ValueError(
            "the journal does not start with a session record: nothing to resume"
        ) from None
    plan, options = plan_of(started)
    if any(
        isinstance(e, OrderInitialized) and e.strategy_id == FLATTEN_STRATEGY_ID
        for e in journal.events()
    ):
        raise ValueError("this session was closed out (flattened) when it stopped; start a new one")
    return plan, options


def run_backtest(
    spec: RunSpec,
    journal_path: JournalTarget | None = None,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    session: str = DEFAULT_SESSION,
) -> tuple[BuiltRun, RunSummary]:
    """Run a backtest to the end of its data into a new journal (a path or database URL).

    An existing journal is refused, or with ``overwrite`` moved aside (never deleted).
    """
    runner = Session(
        SpecPlan(spec),
        SessionOptions("backtest", cycle_ns=None),
        journal_path=journal_path,
        overwrite=overwrite,
        session=session,
    )
    runner.run(progress)
    return runner.built, runner.summary()


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
