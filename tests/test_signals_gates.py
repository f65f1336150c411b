"""Gates: confidence, momentum, open positions, reversals, shorting - every HOLD with its
reason, counted in the summary and shown in the hosting strategy's status."""

from __future__ import annotations

import pytest

from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.gates import GateConfig, HoldSummary, Intent, evaluate
from tradepilot.strategy.indicators import MarketState
from tradepilot.strategy.pipeline import PipelineConfig
from tradepilot.strategy.signal_strategy import MomentumSignalGenerator, SignalStrategy
from tradepilot.strategy.signals import Signal, SignalAction
from tradepilot.strategy.sizing import SizingConfig

IID = "BTCUSDT.SIM"
MIN = NS_PER_MINUTE
T0 = 28_333_333 * MIN
Q = fixed.to_raw("0.5")
DEFAULT = GateConfig()


def sig(action: str = "BUY", confidence: float = 0.9, note: str = "") -> Signal:
    return Signal(instrument_id=IID, action=SignalAction(action), confidence=confidence, note=note)


def test_defaults_are_the_documented_ones() -> None:
    assert DEFAULT.min_confidence == 0.6
    assert DEFAULT.min_momentum_pct == 1.78
    assert DEFAULT.momentum_lookback_ns == NS_PER_HOUR
    assert DEFAULT.block_entry_when_open and not DEFAULT.allow_short


@pytest.mark.parametrize(
    ("signal", "position", "momentum", "config", "code", "reason"),
    [
        (sig(confidence=0.42), 0, 3.0, DEFAULT, "LOW_CONFIDENCE", "confidence 0.42 < 0.60"),
        (sig(), 0, 1.2, DEFAULT, "LOW_MOMENTUM", "|momentum| 1.20 %/h < 1.78 %/h"),
        (sig(), 0, -1.77, DEFAULT, "LOW_MOMENTUM", "|momentum| 1.77 %/h < 1.78 %/h"),
        (sig(), 0, None, DEFAULT, "MOMENTUM_WARMUP",
         "momentum unavailable: less than 1 h of prices"),
        (sig(), Q, 2.5, DEFAULT, "POSITION_OPEN", "a long position in BTCUSDT.SIM is already open"),
        (sig("SELL"), 0, -2.5, DEFAULT, "NO_SHORTING",
         "no short entries (cash account or shorting disabled)"),
        (sig("SELL", 0.7), Q, -2.5, DEFAULT, "WEAK_REVERSAL",
         "SELL signal against a long position with confidence 0.70 < reversal threshold 0.80"),
        (sig("SELL", 0.95), Q, -2.5, GateConfig(reversal_exit=False), "REVERSAL_DISABLED",
         "SELL signal against a long position; reversal exits are disabled"),
        (sig("CLOSE"), 0, None, DEFAULT, "NO_POSITION", "nothing to close in BTCUSDT.SIM"),
        (sig(), 0, -2.5, GateConfig(momentum_must_agree=True), "MOMENTUM_AGAINST",
         "momentum -2.50 %/h runs against the BUY signal"),
        (Signal(instrument_id=IID, action=SignalAction.TARGET, target_weight=0.1, confidence=0.5),
         0, None, DEFAULT, "LOW_CONFIDENCE", "confidence 0.50 < 0.60"),
    ],
)  # fmt: skip
def test_every_hold_has_a_code_and_a_reason(
    signal: Signal,
    position: int,
    momentum: float | None,
    config: GateConfig,
    code: str,
    reason: str,
) -> None:
    result = evaluate(signal, position, momentum, config)
    assert result.is_hold and result.intent is None
    assert (result.code, result.reason) == (code, reason)


@pytest.mark.parametrize(
    ("signal", "position", "momentum", "config", "intent"),
    [
        (sig(), 0, 1.78, DEFAULT, Intent.ENTRY),  # the threshold itself passes
        (sig(), 0, -2.0, DEFAULT, Intent.ENTRY),  # |momentum|: direction is not required
        (sig(), Q, 2.0, GateConfig(block_entry_when_open=False), Intent.ADD),
        (sig("SELL", 0.8), Q, 0.0, DEFAULT, Intent.REVERSAL_EXIT),  # reversal needs no momentum
        (sig("BUY", 0.9), -Q, 0.0, DEFAULT, Intent.REVERSAL_EXIT),
        (sig("SELL"), 0, -2.0, GateConfig(allow_short=True), Intent.ENTRY),
        (sig("CLOSE", 0.0), Q, None, DEFAULT, Intent.EXIT),  # exits are never gated
        (sig(confidence=0.6), 0, 0.0, GateConfig(min_momentum_pct=0.0), Intent.ENTRY),
    ],
)
def test_signals_that_pass_have_an_intent(
    signal: Signal, position: int, momentum: float | None, config: GateConfig, intent: Intent
) -> None:
    result = evaluate(signal, position, momentum, config)
    assert result.intent is intent and not result.is_hold


def test_an_order_in_flight_holds() -> None:
    result = evaluate(sig(), 0, 3.0, DEFAULT, in_flight=True)
    assert result.code == "ORDER_IN_FLIGHT"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_confidence": 1.5},
        {"reversal_confidence": -0.1},
        {"min_momentum_pct": -1.0},
        {"momentum_lookback_ns": 0},
    ],
)
def test_bad_gate_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GateConfig(**kwargs)  # type: ignore[arg-type]


def test_hold_summary_counts_reasons() -> None:
    summary = HoldSummary()
    for code, reason in [("B", "b1"), ("A", "a1"), ("B", "b2"), ("C", "c1"), ("A", "a2")]:
        summary.add(code, reason)
    assert summary.to_dict() == {"A": 2, "B": 2, "C": 1}
    assert summary.total == 5
    assert summary.describe()["B"] == {"count": 2, "last": "b2"}


def test_momentum_is_the_one_hour_change_in_percent_per_hour() -> None:
    st = MarketState(IID)
    px = 100.0
    for k in range(61):
        bar_px = fixed.to_raw(f"{px + k * 0.05:.2f}")
        st.on_bar(Bar(IID, T0 + (k + 1) * MIN, T0 + k * MIN, bar_px, bar_px, bar_px, bar_px, 0))
        if k < 60:
            assert st.momentum_pct() is None  # less than an hour of prices
    mom = st.momentum_pct()
    assert mom == pytest.approx((103.0 / 100.0 - 1) * 100)
    assert st.momentum_pct(30 * MIN) == pytest.approx((103.0 / 101.5 - 1) * 100 * 2)


def trending(n: int, step: float, start: float = 100.0) -> list[Bar]:
    out = []
    for k in range(n):
        o = start + (k - 1) * step if k else start
        c = start + k * step
        ro, rc = fixed.to_raw(f"{o:.4f}"), fixed.to_raw(f"{c:.4f}")
        out.append(Bar(IID, T0 + (k + 1) * MIN, T0 + k * MIN, ro, max(ro, rc), min(ro, rc), rc, 0))
    return out


def run_momentum(data: list[Bar], config: PipelineConfig) -> SignalStrategy:
    inst = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.0001", "0.001")
    strat = SignalStrategy(
        "mom",
        config,
        MomentumSignalGenerator(IID),
        cycle_ns=5 * MIN,
        primary_instrument=IID,
    )
    engine = Engine.simulated(
        [inst],
        [strat],
        EngineConfig(starting_balances={"USDT": "100000"}, base_currency="USDT"),
        journal=MemoryJournal(),
    )
    engine.run(data)
    return strat


def test_a_quiet_market_holds_every_cycle_with_the_gate_reason_in_the_status() -> None:
    config = PipelineConfig(
        sizing=SizingConfig(method="percent_equity", percent=0.1),
    )
    # +0.01 per minute from 100: about 0.6 %/h of momentum, below 1.78 %/h
    strat = run_momentum(trending(180, 0.01), config)
    holds = strat.pipeline.holds.to_dict()
    assert holds["WARMING_UP"] == 12  # the first hour of 5-minute cycles
    assert holds["LOW_CONFIDENCE"] == strat.cycles - 12
    status = strat.status()
    assert status["signal"] == "HOLD"
    assert str(status["reason"]).startswith("HOLD: confidence 0.2")
    assert isinstance(status["momentum_pct"], float) and 0.5 < status["momentum_pct"] < 0.65
    assert not strat.engine.orders.orders


def test_a_strong_trend_enters_once_then_holds_because_the_position_is_open() -> None:
    config = PipelineConfig(sizing=SizingConfig(method="percent_equity", percent=0.1))
    # +0.05 per minute from 100: about 3 %/h, above the threshold, confidence 1
    strat = run_momentum(trending(180, 0.05), config)
    orders = list(strat.engine.orders.orders.values())
    assert len(orders) == 1 and orders[0].side == 1
    holds = strat.pipeline.holds.to_dict()
    assert holds["POSITION_OPEN"] >= 20
    assert strat.status()["reason"] == ("HOLD: a long position in BTCUSDT.SIM is already open")


def test_signal_momentum_runs_from_the_strategy_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``"signal_momentum": (SignalMomentumParams, SignalMomentum)`` in the registry,
    the existing ``backtest`` and ``paper`` commands run the whole signal pipeline."""
    from tradepilot.app.build import RunSpec
    from tradepilot.app.session import run_backtest
    from tradepilot.strategy import registry
    from tradepilot.strategy.signal_strategy import SignalMomentum, SignalMomentumParams

    monkeypatch.setitem(
        registry._REGISTRY, "signal_momentum", (SignalMomentumParams, SignalMomentum)
    )
    spec = RunSpec(
        strategy="signal_momentum",
        params={"threshold_pct": "1.78", "max_hold_ns": "12h", "stop_loss": "0.03"},
        start="2021-05-19",
        end="2021-05-20",
    )
    prepared, summary = run_backtest(spec)
    strat = prepared.engine.strategies[0]
    assert isinstance(strat, SignalMomentum)
    assert strat.params.max_hold_ns == 12 * NS_PER_HOUR and strat.params.stop_loss == 0.03
    assert summary.orders == strat.pipeline.counts["accepted"] > 0
    status = strat.status()
    assert {"signal", "confidence", "momentum_pct", "reason"} <= set(status)
