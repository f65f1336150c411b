"""EMA crossover: long when the fast EMA is above the slow one, flat otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import Event
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.examples.entry_size import check_fraction, entry_quantity


@dataclass(frozen=True)
class EmaCrossParams:
    instrument_id: str
    fast: int = 10
    slow: int = 30
    quantity: Decimal = Decimal("0.01")
    equity_fraction: Decimal = Decimal("0")  # > 0: size entries as this share of equity

    def __post_init__(self) -> None:
        check_fraction(self.equity_fraction)
        if not 0 < self.fast < self.slow:
            raise ValueError("need 0 < fast < slow")
        if self.quantity <= 0:
            raise ValueError("quantity must be positive")


class EmaCross(Strategy):
    """Market orders on crossovers; one order in flight at a time.

    EMA: alpha = 2 / (period + 1), seeded with the first close. Signals start once
    ``slow`` bars have been seen (bar index ``slow - 1``).
    """

    strategy_id = "ema_cross"

    def __init__(self, params: EmaCrossParams, strategy_id: str | None = None) -> None:
        super().__init__(strategy_id)
        self.params = params
        self._a_fast = 2.0 / (params.fast + 1)
        self._a_slow = 2.0 / (params.slow + 1)
        self._ema_fast = 0.0
        self._ema_slow = 0.0
        self._bars = 0
        self._in_flight: str | None = None
        self._qty = params.quantity
        self._signal = "HOLD"

    def on_bar(self, bar: Bar) -> None:
        if bar.instrument_id != self.params.instrument_id:
            return
        close = bar.close / fixed.SCALE
        n = self._bars
        self._bars = n + 1
        if n == 0:
            self._ema_fast = self._ema_slow = close
            return
        fast = self._ema_fast = self._a_fast * close + (1.0 - self._a_fast) * self._ema_fast
        slow = self._ema_slow = self._a_slow * close + (1.0 - self._a_slow) * self._ema_slow
        if n < self.params.slow - 1 or self._in_flight is not None:
            return
        iid = self.params.instrument_id
        held = self.position_qty(iid)
        if fast > slow:
            self._signal = "LONG"
            if held == 0:
                qty = entry_quantity(
                    self._qty, self.params.equity_fraction, self.equity(), bar.close
                )
                self._in_flight = self.buy(iid, qty).client_order_id
        else:
            self._signal = "FLAT"
            if held > 0:
                self._in_flight = self.sell(iid, fixed.to_decimal(held)).client_order_id

    def on_order_event(self, event: Event) -> None:
        cid = getattr(event, "client_order_id", None)
        if cid is not None and cid == self._in_flight:
            order = self.engine.orders.orders[cid]
            if order.is_closed:
                self._in_flight = None

    def status(self) -> dict[str, object]:
        return {
            "signal": self._signal,
            "ema_fast": round(self._ema_fast, 2),
            "ema_slow": round(self._ema_slow, 2),
        }
