"""The kernel: timers, the message bus, the order of simultaneous work, operator commands."""

from __future__ import annotations

from tradepilot.core.bus import MessageBus
from tradepilot.core.clock import SimClock
from tradepilot.core.time import NS_PER_MINUTE, parse_duration
from tradepilot.engine.kernel import Engine
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import Event, OrderFilled, OrderSubmitted
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.base import Strategy

INST = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001")
T0 = 1_700_000_000_000_000_000


def bars(n: int) -> list[Bar]:
    r = fixed.to_raw("100")
    return [
        Bar(INST.id, T0 + (i + 1) * NS_PER_MINUTE, T0 + i * NS_PER_MINUTE, r, r, r, r, r)
        for i in range(n)
    ]


class Recorder(Strategy):
    strategy_id = "rec"

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, int]] = []

    def on_start(self) -> None:
        self.set_timer("every-5m", 5 * NS_PER_MINUTE)

    def on_bar(self, bar: Bar) -> None:
        self.log.append(("bar", bar.ts))
        if len(self.log) == 1:
            self.buy(INST.id, "0.01")

    def on_timer(self, name: str, ts: int) -> None:
        self.log.append((name, ts))
        assert self.now() == ts  # timers see the clock at their own time
        if ts >= T0 + 16 * NS_PER_MINUTE:
            self.cancel_timer(name)

    def on_fill(self, fill: OrderFilled) -> None:
        self.log.append(("fill", fill.ts))


def test_timers_fire_in_time_order_between_bars_and_can_be_cancelled() -> None:
    strat = Recorder()
    Engine.simulated([INST], [strat]).run(bars(30))
    timers = [ts for name, ts in strat.log if name == "every-5m"]
    start = T0 + NS_PER_MINUTE  # the clock when the strategy started (first bar's close)
    assert timers == [start + k * 5 * NS_PER_MINUTE for k in range(1, 4)]
    times = [ts for _, ts in strat.log]
    assert times == sorted(times)


def test_a_bar_order_fills_on_the_next_bar_and_the_strategy_hears_after_the_portfolio() -> None:
    strat = Recorder()
    engine = Engine.simulated([INST], [strat])
    seen: list[int] = []
    engine.bus.subscribe(OrderFilled, lambda f: seen.append(engine.portfolio.position_qty(INST.id)))
    engine.run(bars(3))
    # priced at the second bar's open and stamped then: decided at the first bar's close,
    # which is the second bar's open, with zero latency
    assert ("fill", T0 + NS_PER_MINUTE) in strat.log
    assert seen == [fixed.to_raw("0.01")]


def test_operator_commands_run_between_items_and_are_journaled() -> None:
    journal = MemoryJournal()
    strat = Recorder()
    engine = Engine.simulated([INST], [strat], journal=journal)
    engine.command(lambda: engine.stop("operator"))
    engine.run(bars(10))
    assert [name for name, _ in strat.log].count("bar") == 1
    assert type(journal.events()[-1]).__name__ == "SessionStopped"


def test_bus_dispatch_by_type_and_wildcard() -> None:
    bus = MessageBus()
    got: list[str] = []
    bus.subscribe(OrderSubmitted, lambda e: got.append("submitted"))
    bus.subscribe(Event, lambda e: got.append("event"))
    bus.subscribe(object, lambda e: got.append("any"))
    bus.publish(OrderSubmitted(1, "x"))
    bus.publish("not an event")
    assert got == ["submitted", "event", "any", "any"]


def test_clock_and_durations() -> None:
    clock = SimClock(5)
    clock.advance_to(7)
    assert clock.now() == 7
    assert parse_duration("300s") == 300 * 10**9
    assert parse_duration("24h") == 24 * 3600 * 10**9
    assert parse_duration("150ms") == 150 * 10**6
    for bad in ("abc", "-5s"):
        try:
            parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
