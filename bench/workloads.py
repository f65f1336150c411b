"""The strategies of the benchmark workloads W1 and W2 (see shared/bench/WORKLOADS.md).

W1 is the package's own EMA crossover example; W2's resting-limit strategy lives
here because it exists only to exercise the order path and the matching engine.
"""

from __future__ import annotations

from tradepilot.model import fixed
from tradepilot.model.data import TradeTick
from tradepilot.model.enums import OrderSide, OrderType
from tradepilot.model.events import Event
from tradepilot.model.instrument import Instrument
from tradepilot.strategy.base import Strategy

CENT = fixed.SCALE // 100


def bench_instrument() -> Instrument:
    """BTCUSDT spot on the simulated venue: tick 0.01, lot 0.001, 10 bps maker and taker."""
    return Instrument.create(
        "BTCUSDT",
        "SIM",
        "BTC",
        "USDT",
        "0.01",
        "0.001",
        "0.001",
        "0",
        maker_fee_bps="10",
        taker_fee_bps="10",
    )


class RestingLimits(Strategy):
    """W2: every 100th tick, quote a resting limit 5 bps away; replace it after 1,000 ticks."""

    strategy_id = "w2"

    def __init__(self, instrument_id: str, quantity: str = "0.01") -> None:
        super().__init__()
        self.iid = instrument_id
        self.qty = quantity
        self.tick_index = -1
        self.working: str | None = None
        self.working_since = 0
        self.entry_cents = 0

    def on_trade(self, tick: TradeTick) -> None:
        i = self.tick_index = self.tick_index + 1
        if (i + 1) % 100:
            return
        if self.working is not None and i - self.working_since >= 1000:
            self.cancel(self.working)
            self.working = None
        if self.working is not None:
            return
        held = self.position_qty(self.iid)
        last_cents = tick.price // CENT
        if held == 0:
            cents = last_cents * 9995 // 10000
            side = OrderSide.BUY
            self.entry_cents = cents
        else:
            cents = -(-self.entry_cents * 10005 // 10000)
            side = OrderSide.SELL
        order = self.submit(
            self.iid, side, self.qty, OrderType.LIMIT, price=fixed.to_decimal(cents * CENT)
        )
        self.working = order.client_order_id
        self.working_since = i

    def on_order_event(self, event: Event) -> None:
        cid = getattr(event, "client_order_id", None)
        if cid is not None and cid == self.working and self.engine.orders.orders[cid].is_closed:
            self.working = None
