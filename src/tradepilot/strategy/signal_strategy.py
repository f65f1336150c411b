"""A strategy that hosts a signal pipeline: generators and files in, orders out.

:class:`SignalStrategy` wires a :class:`~tradepilot.strategy.pipeline.SignalPipeline`
into the engine: it feeds it every bar and trade (market state, exits, queued
signals), every fill and order event, runs its *generator* once per cycle (aligned
to the cycle length, only while the market calendar is open) and replays signal
files at their timestamps. Its ``status()`` is the pipeline's last decision with
its reason, which is what the paper session's cycle log prints.

:class:`MomentumSignalGenerator` is the one-hour momentum signal:
``momentum = close_now / close_one_hour_ago - 1`` (in % per hour), BUY when it is
positive and SELL when negative, with ``confidence = min(1, |momentum| / (1.5 *
threshold))``. The gates then decide (confidence >= 0.6, |momentum| >= 1.78 %/h...).

:class:`SignalMomentum` packages it with quarter-Kelly sizing and stop-loss /
take-profit / time exits behind one flat parameter class
(:class:`SignalMomentumParams`), so the strategy registry can build it by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.events import Event, OrderFilled
from tradepilot.strategy.allocation import CapitalAllocator
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.calendars import AlwaysOpen, TradingCalendar, schedule_cycles
from tradepilot.strategy.exits import ExitConfig
from tradepilot.strategy.gates import GateConfig, HoldCode
from tradepilot.strategy.pipeline import PipelineConfig, SignalPipeline
from tradepilot.strategy.signals import FileSignalSource, Signal, SignalAction
from tradepilot.strategy.sizing import SizingConfig


@dataclass(frozen=True, slots=True)
class Idle:
    """A generator's "no signal this cycle", with why."""

    code: str
    reason: str


class SignalGenerator(Protocol):
    def generate(self, now: int, pipeline: SignalPipeline) -> Sequence[Signal] | Idle:
        """The signals of one cycle (or why there are none)."""
        ...


@dataclass
class MomentumSignalGenerator:
    instrument_id: str
    threshold_pct: float = 1.78
    lookback_ns: int = NS_PER_HOUR
    ttl_ns: int | None = None

    def __post_init__(self) -> None:
        if self.threshold_pct <= 0 or self.lookback_ns <= 0:
            raise ValueError("threshold and lookback must be positive")

    def generate(self, now: int, pipeline: SignalPipeline) -> Sequence[Signal] | Idle:
        st = pipeline.market.get(self.instrument_id)
        mom = st.momentum_pct(self.lookback_ns) if st is not None else None
        if mom is None:
            hours = self.lookback_ns / NS_PER_HOUR
            return Idle(HoldCode.WARMING_UP, f"warming up: less than {hours:g} h of prices")
        confidence = min(1.0, abs(mom) / (1.5 * self.threshold_pct))
        return [
            Signal(
                instrument_id=self.instrument_id,
                action=SignalAction.BUY if mom >= 0 else SignalAction.SELL,
                confidence=confidence,
                expected_return=mom / 100.0,
                ttl_ns=self.ttl_ns,
                note=f"1 h momentum {mom:+.2f} %/h",
            )
        ]


class SignalStrategy(Strategy):
    """Hosts a pipeline; optionally a generator run every cycle and signal files."""

    def __init__(
        self,
        strategy_id: str,
        config: PipelineConfig | None = None,
        generator: SignalGenerator | None = None,
        cycle_ns: int = 5 * NS_PER_MINUTE,
        calendar: TradingCalendar | None = None,
        allocator: CapitalAllocator | None = None,
        sources: Sequence[FileSignalSource] = (),
        primary_instrument: str | None = None,
    ) -> None:
        super().__init__(strategy_id)
        if cycle_ns <= 0:
            raise ValueError("the cycle must be positive")
        self.pipeline = SignalPipeline(self, config, allocator)
        self.generator = generator
        self.cycle_ns = cycle_ns
        self.calendar: TradingCalendar = calendar or AlwaysOpen()
        self.sources = list(sources)
        self.primary_instrument = primary_instrument or getattr(generator, "instrument_id", None)
        self.cycles = 0

    # -- engine callbacks ----------------------------------------------------------------------
    def on_start(self) -> None:
        self.pipeline.start()
        if self.generator is not None:
            schedule_cycles(self.engine, self.cycle_ns, self.calendar, self._cycle)
        for source in self.sources:
            self._schedule_source(source)

    def on_bar(self, bar: Bar) -> None:
        self.pipeline.on_bar(bar)

    def on_trade(self, tick: TradeTick) -> None:
        self.pipeline.on_trade(tick)

    def on_fill(self, fill: OrderFilled) -> None:
        self.pipeline.on_fill(fill)

    def on_order_event(self, event: Event) -> None:
        self.pipeline.on_order_event(event)

    def on_flatten(self, reason: str) -> None:
        self.pipeline.stop(reason)

    # -- cycles and sources ----------------------------------------------------------------------
    def _cycle(self, ts: int) -> None:
        self.cycles += 1
        generator = self.generator
        if generator is None:
            return
        result = generator.generate(ts, self.pipeline)
        if isinstance(result, Idle):
            self.pipeline.note_hold(result.code, result.reason)
            return
        for signal in result:
            self.pipeline.handle(signal, "strategy")

    def _schedule_source(self, source: FileSignalSource) -> None:
        due = source.next_ts
        if due is None:
            return
        self.engine.schedule(max(due, 0), lambda: self._poll(source))

    def _poll(self, source: FileSignalSource) -> None:
        pipeline = self.pipeline
        for record in source.due(self.engine.clock.now()):
            if record.signal is not None:
                pipeline.submit(record.signal, source.name)
            else:
                pipeline.reject_malformed(record.error or "unreadable", source.name)
        pipeline.process()
        self._schedule_source(source)

    # -- reporting ---------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        out = self.pipeline.status()
        iid = self.primary_instrument
        if iid is not None:
            st = self.pipeline.market.get(iid)
            if "momentum_pct" not in out and st is not None:
                mom = st.momentum_pct(self.pipeline.config.gates.momentum_lookback_ns)
                if mom is not None:
                    out["momentum_pct"] = round(mom, 4)
            levels = self.pipeline.exits.describe(iid)
            if levels:
                out["exits"] = levels
        out["holds"] = self.pipeline.holds.total
        return out


# -- the registry-friendly momentum strategy ------------------------------------------------------
@dataclass(frozen=True)
class SignalMomentumParams:
    """Flat parameters (the registry converts ``key=value`` text by these types)."""

    instrument_id: str
    threshold_pct: float = 1.78
    min_confidence: float = 0.6
    reversal_confidence: float = 0.8
    lookback_ns: int = NS_PER_HOUR
    cycle_ns: int = 5 * NS_PER_MINUTE
    kelly_fraction: float = 0.25
    win_rate: float = 0.55
    avg_win: float = 0.05
    avg_loss: float = 0.02
    cvar_budget: float = 0.02
    cvar_alpha: float = 0.95
    cvar_horizon_ns: int = NS_PER_HOUR
    max_position: float = 0.5
    heat: float = 0.02
    stop_loss: float = 0.02
    stop_atr_mult: float = 1.0
    take_profit: float = 0.05
    max_hold_ns: int = 24 * NS_PER_HOUR
    min_trade_value: str = "10"

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            gates=GateConfig(
                min_confidence=self.min_confidence,
                min_momentum_pct=self.threshold_pct,
                momentum_lookback_ns=self.lookback_ns,
                reversal_confidence=self.reversal_confidence,
            ),
            sizing=SizingConfig(
                method="kelly",
                kelly_fraction=self.kelly_fraction,
                win_rate=self.win_rate,
                avg_win=self.avg_win,
                avg_loss=self.avg_loss,
                cvar_budget=self.cvar_budget,
                cvar_alpha=self.cvar_alpha,
                cvar_horizon_ns=self.cvar_horizon_ns,
                max_position=self.max_position,
                heat=self.heat,
                min_trade_value=self.min_trade_value,
            ),
            exits=ExitConfig(
                stop_loss=self.stop_loss,
                stop_atr_mult=self.stop_atr_mult,
                take_profit=self.take_profit,
                max_hold_ns=self.max_hold_ns,
            ),
            history_ns=max(24 * NS_PER_HOUR, self.lookback_ns, self.cvar_horizon_ns),
        )


class SignalMomentum(SignalStrategy):
    """One-hour momentum through the full signal pipeline (gates, Kelly + CVaR, exits)."""

    strategy_id = "signal_momentum"

    def __init__(
        self,
        params: SignalMomentumParams,
        strategy_id: str | None = None,
        allocator: CapitalAllocator | None = None,
        calendar: TradingCalendar | None = None,
        sources: Sequence[FileSignalSource] = (),
    ) -> None:
        self.params = params
        super().__init__(
            strategy_id or type(self).strategy_id,
            params.pipeline_config(),
            MomentumSignalGenerator(
                params.instrument_id, params.threshold_pct, params.lookback_ns, params.cycle_ns
            ),
            cycle_ns=params.cycle_ns,
            calendar=calendar,
            allocator=allocator,
            sources=sources,
            primary_instrument=params.instrument_id,
        )
        if fixed.to_raw(params.min_trade_value) < 0:
            raise ValueError("min_trade_value cannot be negative")
