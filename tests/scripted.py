"""Engines on a few hand-made bars with a scripted strategy (reconciliation and report tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import Event
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.base import Strategy

INST = Instrument.create("BTCUSDT", "SIM", "BTC", "USDT", "0.01", "0.001", "0.001", "0", "10", "10")
MIN = 60_000_000_000
T0 = 1_700_000_000_000_000_000
R = fixed.to_raw


def bar(i: int, o: str, h: str, low: str, c: str) -> Bar:
    t = T0 + i * MIN
    return Bar(INST.id, t + MIN, t, R(o), R(h), R(low), R(c), R("100"))


BARS = [
    bar(0, "100", "100", "100", "100"),
    bar(1, "100", "101", "99", "100"),
    bar(2, "100", "100", "95", "96"),
    bar(3, "96", "97", "96", "97"),
    bar(4, "97", "98", "80", "85"),
    bar(5, "85", "86", "84", "85"),
]


class Script(Strategy):
    strategy_id = "s"

    def __init__(self, actions: dict[int, Callable[[Script], Any]]) -> None:
        super().__init__()
        self.actions = actions
        self.n = -1
        self.placed: list[Order] = []
        self.seen: list[Event] = []

    def on_bar(self, bar: Bar) -> None:
        self.n += 1
        action = self.actions.get(self.n)
        if action is not None:
            action(self)

    def on_order_event(self, event: Event) -> None:
        self.seen.append(event)


def engine_with(
    actions: dict[int, Callable[[Script], Any]], config: EngineConfig | None = None
) -> tuple[Engine, Script, MemoryJournal]:
    journal = MemoryJournal()
    strat = Script(actions)
    return Engine.simulated([INST], [strat], config, journal=journal), strat, journal
