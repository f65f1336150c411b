"""Exits: stop-loss and take-profit (fixed and ATR multiples), trailing stop, time exit,
reversal exit, forced exit on a risk breach - as levels and through the engine."""

from __future__ import annotations

from typing import Any

import pytest

from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.risk.engine import TradingState
from tradepilot.strategy import signals as sig_mod
from tradepilot.strategy.exits import ExitConfig, ExitManager
from tradepilot.strategy.gates import GateConfig
from tradepilot.strategy.pipeline import PipelineConfig, Status
from tradepilot.strategy.signal_strategy import SignalStrategy
from tradepilot.strategy.signals import Signal, SignalAccepted, SignalAction
from tradepilot.strategy.sizing import SizingConfig

IID = "BTCUSDT.SIM"
MIN = NS_PER_MINUTE
T0 = 28_333_333 * MIN
R = fixed.to_raw


# -- levels ---------------------------------------------------------------------------------------
def test_fixed_and_atr_levels_for_a_long() -> None:
    cfg = ExitConfig(stop_loss=0.02, stop_atr_mult=1.0, take_profit=0.05)
    # entry 100, ATR 1: stop = 100 * 0.98 - 1 = 97; take-profit = 105
    assert cfg.stop_for(1, 100.0, 1.0) == pytest.approx(97.0)
    assert cfg.take_profit_for(1, 100.0, 1.0) == pytest.approx(105.0)
    # a short mirrors them: stop 103, take-profit 95
    assert cfg.stop_for(-1, 100.0, 1.0) == pytest.approx(103.0)
    assert cfg.take_profit_for(-1, 100.0, 1.0) == pytest.approx(95.0)
    # without an ATR yet the volatility term is left out
    assert cfg.stop_for(1, 100.0, None) == pytest.approx(98.0)
    atr_only = ExitConfig(stop_atr_mult=2.0, take_profit_atr_mult=3.0)
    assert atr_only.stop_for(1, 100.0, 1.5) == pytest.approx(97.0)
    assert atr_only.take_profit_for(1, 100.0, 1.5) == pytest.approx(104.5)
    assert atr_only.stop_for(1, 100.0, None) is None
    assert ExitConfig().stop_for(1, 100.0, 1.0) is None


def manager(**kw: Any) -> ExitManager:
    m = ExitManager(ExitConfig(**kw))
    m.on_open(IID, 1, 100.0, T0, atr=1.0)
    return m


def test_stop_loss_and_take_profit_trigger_on_the_close() -> None:
    m = manager(stop_loss=0.02, stop_atr_mult=1.0, take_profit=0.05)
    assert m.check(IID, T0 + MIN, 97.5) is None
    hit = m.check(IID, T0 + 2 * MIN, 96.9, low=96.0, high=98.0)
    assert hit is not None and hit.code == "STOP_LOSS"
    assert hit.reason == "stop-loss 97.00 hit (price 96.90, entry 100.00)"
    m = manager(stop_loss=0.02, stop_atr_mult=1.0, take_profit=0.05)
    assert m.check(IID, T0 + MIN, 104.9, high=106.0) is None  # the close decides by default
    tp = m.check(IID, T0 + 2 * MIN, 105.2)
    assert tp is not None and tp.code == "TAKE_PROFIT"


def test_intrabar_uses_the_low_and_the_high() -> None:
    m = manager(stop_loss=0.02, intrabar=True)
    hit = m.check(IID, T0 + MIN, 99.0, low=97.9, high=100.5)
    assert hit is not None and hit.code == "STOP_LOSS"


def test_the_trailing_stop_follows_the_best_price_and_only_tightens() -> None:
    m = manager(stop_loss=0.05, trailing_stop=0.03)  # trail 3 = 3 % of the 100 entry
    for k, px in enumerate([102.0, 106.0, 110.0, 108.0]):
        assert m.check(IID, T0 + k * MIN, px) is None
    assert m.positions[IID].trail_stop == pytest.approx(107.0)
    hit = m.check(IID, T0 + 9 * MIN, 106.9)
    assert hit is not None and hit.code == "TRAILING_STOP"
    assert hit.reason.startswith("trailing stop 107.00 hit")


def test_the_time_exit() -> None:
    m = manager(max_hold_ns=24 * NS_PER_HOUR)
    assert m.check(IID, T0 + 24 * NS_PER_HOUR - MIN, 100.0) is None
    hit = m.check(IID, T0 + 24 * NS_PER_HOUR, 100.0)
    assert hit is not None and hit.code == "TIME_EXIT"
    assert hit.reason == "time exit: held 24h00m >= 24h00m"


def test_a_risk_breach_forces_the_exit_first() -> None:
    m = manager(take_profit=0.05)
    hit = m.check(IID, T0 + MIN, 106.0, risk_state="HALTED", risk_reason="kill switch")
    assert hit is not None and hit.code == "RISK_BREACH"
    assert hit.reason == "forced exit: risk state is HALTED (kill switch)"
    assert manager(exit_on_risk_breach=False).check(IID, T0, 100.0, risk_state="HALTED") is None


def test_a_denied_exit_stays_quiet_until_the_state_changes() -> None:
    m = manager(stop_loss=0.02)
    assert m.check(IID, T0 + MIN, 90.0) is not None
    m.exit_denied(IID, "ACTIVE")
    assert m.check(IID, T0 + 2 * MIN, 90.0) is None  # no retry storm
    assert m.check(IID, T0 + 3 * MIN, 90.0, risk_state="REDUCING") is not None


def test_a_signal_s_own_levels_replace_the_configured_ones() -> None:
    m = ExitManager(ExitConfig(stop_loss=0.02, take_profit=0.05))
    m.on_open(IID, 1, 100.0, T0, atr=None, stop=90.0, take_profit=120.0)
    assert m.check(IID, T0 + MIN, 95.0) is None
    assert m.check(IID, T0 + 2 * MIN, 106.0) is None
    hit = m.check(IID, T0 + 3 * MIN, 89.0)
    assert hit is not None and hit.reason.startswith("stop-loss 90.00")
    m.on_change(IID, 101.0)  # re-based on a new average: the signal's levels stay
    assert m.positions[IID].stop == 90.0


# -- through the engine ---------------------------------------------------------------------------
class Scripted(SignalStrategy):
    def __init__(self, config: PipelineConfig, script: dict[int, Any]) -> None:
        super().__init__("x", config)
        self.script = script
        self.n = -1

    def on_bar(self, bar: Bar) -> None:
        super().on_bar(bar)
        self.n += 1
        action = self.script.get(self.n)
        if action is not None:
            action(self)


def run(closes: list[float], config: PipelineConfig, script: dict[int, Any]) -> Engine:
    inst = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001")
    strat = Scripted(config, script)
    engine = Engine.simulated(
        [inst],
        [strat],
        EngineConfig(starting_balances={"USDT": "100000"}, base_currency="USDT"),
        journal=MemoryJournal(),
    )
    data = []
    prev = closes[0]
    for k, c in enumerate(closes):
        o, hi, lo = R(str(prev)), R(str(max(prev, c))), R(str(min(prev, c)))
        data.append(Bar(IID, T0 + (k + 1) * MIN, T0 + k * MIN, o, hi, lo, R(str(c)), 0))
        prev = c
    engine.run(data)
    return engine


def config(**exits: Any) -> PipelineConfig:
    return PipelineConfig(
        gates=GateConfig(min_confidence=0.0, min_momentum_pct=0.0),
        sizing=SizingConfig(method="fixed_quantity", quantity="1", max_position=None, heat=None),
        exits=ExitConfig(**exits),
    )


def accepted(engine: Engine) -> list[tuple[str, int, str]]:
    journal = engine.journal
    assert isinstance(journal, MemoryJournal)
    out = []
    for *_, payload in journal.rows:
        event = sig_mod.decode(payload)
        if isinstance(event, SignalAccepted):
            out.append((event.intent, event.side, event.reason))
    return out


def enter(s: Scripted) -> None:
    s.pipeline.handle(Signal(instrument_id=IID, action=SignalAction.BUY))


def test_a_stop_loss_closes_the_position_through_the_risk_engine() -> None:
    # entry at 100 (bar 1 open); the 2 % stop is 98; the close of bar 3 is 97.5
    engine = run([100, 100, 99, 97.5, 97, 96], config(stop_loss=0.02), {0: enter})
    assert [(i, s) for i, s, _ in accepted(engine)] == [("ENTRY", 1), ("EXIT", -1)]
    assert accepted(engine)[1][2] == "STOP_LOSS: stop-loss 98.00 hit (price 97.50, entry 100.00)"
    exit_order = list(engine.orders.orders.values())[1]
    assert exit_order.reduce_only and exit_order.is_closed
    assert engine.portfolio.position_qty(IID) == 0


def test_a_take_profit_exit() -> None:
    engine = run([100, 100, 103, 105.5, 104], config(take_profit=0.05), {0: enter})
    assert accepted(engine)[-1][2].startswith("TAKE_PROFIT: take-profit 105.00 reached")
    assert engine.portfolio.position_qty(IID) == 0


def test_a_time_exit() -> None:
    closes = [100.0] * 70
    engine = run(closes, config(max_hold_ns=NS_PER_HOUR), {0: enter})
    exits = [a for a in accepted(engine) if a[0] == "EXIT"]
    assert len(exits) == 1 and exits[0][2] == "TIME_EXIT: time exit: held 1h00m >= 1h00m"


def test_a_high_confidence_opposite_signal_is_a_reversal_exit() -> None:
    def weak(s: Scripted) -> None:
        d = s.pipeline.handle(Signal(instrument_id=IID, action=SignalAction.SELL, confidence=0.7))
        assert d.status == Status.HELD and d.code == "WEAK_REVERSAL"

    def strong(s: Scripted) -> None:
        d = s.pipeline.handle(Signal(instrument_id=IID, action=SignalAction.SELL, confidence=0.9))
        assert d.status == Status.ACCEPTED and d.intent == "REVERSAL_EXIT"

    engine = run([100] * 6, config(), {0: enter, 2: weak, 3: strong})
    assert [a[0] for a in accepted(engine)] == ["ENTRY", "REVERSAL_EXIT"]
    assert engine.portfolio.position_qty(IID) == 0


@pytest.mark.parametrize("state", [TradingState.REDUCING, TradingState.HALTED])
def test_a_risk_breach_forces_the_exit(state: TradingState) -> None:
    def breach(s: Scripted) -> None:
        s.engine.risk.set_state(state, "daily loss limit")

    def try_entry(s: Scripted) -> None:
        d = s.pipeline.handle(Signal(instrument_id=IID, action=SignalAction.BUY))
        assert d.status in (Status.HELD, Status.DENIED)

    engine = run([100] * 8, config(stop_loss=0.5), {0: enter, 2: breach, 5: try_entry})
    forced = [a for a in accepted(engine) if a[0] == "EXIT"]
    assert len(forced) == 1
    assert forced[0][2] == (
        f"RISK_BREACH: forced exit: risk state is {state.value} (daily loss limit)"
    )
    assert engine.portfolio.position_qty(IID) == 0  # reduce-only exits pass the state gate


def test_when_the_engine_flattens_the_pipeline_stops_trading() -> None:
    def stop(s: Scripted) -> None:
        s.engine.stop("SIGTERM", flatten=True)

    def later(s: Scripted) -> None:
        d = s.pipeline.handle(Signal(instrument_id=IID, action=SignalAction.BUY))
        s.late = d  # type: ignore[attr-defined]

    engine = run([100] * 8, config(stop_loss=0.5), {0: enter, 2: stop, 3: later})
    strat = engine.strategies[0]
    assert isinstance(strat, Scripted)
    assert strat.pipeline.stopped is not None
    assert engine.portfolio.position_qty(IID) == 0  # closed by the engine's flatten
    late = getattr(strat, "late", None)  # bar 3: the flatten order filled at its open
    assert late is not None and late.status == Status.HELD and late.code == "STOPPED"
    assert late.reason == "trading stopped: flatten on stop: SIGTERM"
    assert [o.strategy_id for o in engine.orders.orders.values()] == ["x", "flatten"]
