"""One-hour momentum: enter when the last hour moved at least a threshold, exit on reversal.

momentum = close_now / close_one_hour_ago - 1, in percent per hour. The strategy
trades only when |momentum| >= ``threshold_pct`` (1.78 %/hour by default):
a rise enters long, a fall of the same size exits. Confidence grows with the
move: ``min(1, |momentum| / (1.5 * threshold))``. A position is also closed after
``max_hold_ns`` (24 h by default).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from tradepilot.core.time import NS_PER_HOUR
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.events import Event
from tradepilot.strategy.base import Strategy
from tradepilot.strategy.examples.entry_size import check_fraction, entry_quantity


@dataclass(frozen=True)
class MomentumParams:
    instrument_id: str
    threshold_pct: float = 1.78
    lookback_ns: int = NS_PER_HOUR
    quantity: Decimal = Decimal("0.1")
    equity_fraction: Decimal = Decimal("0")  # > 0: size entries as this share of equity
    max_hold_ns: int = 24 * NS_PER_HOUR

    def __post_init__(self) -> None:
        check_fraction(self.equity_fraction)
        if self.threshold_pct <= 0 or self.lookback_ns <= 0 or self.quantity <= 0:
            raise ValueError("threshold, lookback and quantity must be positive")


class Momentum(Strategy):
    strategy_id = "momentum"

    def __init__(self, params: MomentumParams, strategy_id: str | None = None) -> None:
        super().__init__(strategy_id)
        self.params = params
        self._window: deque[tuple[int, float]] = deque()
        self._in_flight: str | None = None
        self.momentum_pct = 0.0
        self.confidence = 0.0
        self.signal = "HOLD"
        self.reason = "warming up"

    def on_bar(self, bar: Bar) -> None:
        p = self.params
        if bar.instrument_id != p.instrument_id:
            return
        close = bar.close / fixed.SCALE
        window = self._window
        window.append((bar.ts, close))
        horizon = bar.ts - p.lookback_ns
        while len(window) > 1 and window[1][0] <= horizon:
            window.popleft()
        if window[0][0] > horizon:
            self.signal, self.reason = "HOLD", "warming up: less than one lookback of data"
            return
        past = window[0][1]
        mom = self.momentum_pct = (close / past - 1.0) * 100.0
        self.confidence = min(1.0, abs(mom) / (1.5 * p.threshold_pct))
        if self._in_flight is not None:
            self.signal, self.reason = "HOLD", "an order is in flight"
            return
        held = self.position_qty(p.instrument_id)
        pos = self.position(p.instrument_id)
        if (
            held > 0
            and pos is not None
            and pos.opened_ts is not None
            and (bar.ts - pos.opened_ts >= p.max_hold_ns)
        ):
            self.signal, self.reason = "SELL", "time exit: maximum holding period reached"
            self._in_flight = self.sell(p.instrument_id, fixed.to_decimal(held)).client_order_id
            return
        if abs(mom) < p.threshold_pct:
            self.signal = "HOLD"
            self.reason = f"|momentum| {abs(mom):.2f}% < threshold {p.threshold_pct}%"
            return
        if mom > 0 and held == 0:
            self.signal, self.reason = "BUY", "momentum above threshold"
            qty = entry_quantity(p.quantity, p.equity_fraction, self.equity(), bar.close)
            self._in_flight = self.buy(p.instrument_id, qty).client_order_id
        elif mom < 0 and held > 0:
            self.signal, self.reason = "SELL", "momentum reversed below -threshold"
            self._in_flight = self.sell(p.instrument_id, fixed.to_decimal(held)).client_order_id
        else:
            self.signal = "HOLD"
            self.reason = "already positioned" if held else "no long entry on falling momentum"

    def on_order_event(self, event: Event) -> None:
        cid = getattr(event, "client_order_id", None)
        if cid is not None and cid == self._in_flight and self.engine.orders.orders[cid].is_closed:
            self._in_flight = None

    def status(self) -> dict[str, object]:
        return {
            "signal": self.signal,
            "confidence": round(self.confidence, 4),
            "momentum_pct": round(self.momentum_pct, 4),
            "reason": self.reason,
        }
