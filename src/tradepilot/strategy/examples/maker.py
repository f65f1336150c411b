"""A passive maker: rests a bid and an ask around the price and works inventory with a TWAP.

Every bar it keeps one limit buy ``spread_bps`` below the close and, while it holds
inventory, one limit sell the same distance above. Every ``refresh_bars`` bars it
moves its quotes to the new price (a modify; every other refresh a cancel and a
new order instead). It builds its first inventory with a TWAP buy over
``twap_duration_ns`` and, whenever the position exceeds ``max_position``, sells the
excess with a TWAP. So it nearly always has orders working and often a parent
order running: the strategy the crash test kills sessions of.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradepilot.core.time import NS_PER_MINUTE
from tradepilot.execution.algo_engine import AlgoEngine
from tradepilot.execution.context import Component
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.enums import OrderSide, OrderType
from tradepilot.model.order import Order
from tradepilot.strategy.base import Strategy


@dataclass(frozen=True)
class MakerParams:
    instrument_id: str
    spread_bps: float = 10.0
    quantity: Decimal = Decimal("0.01")
    refresh_bars: int = 5
    max_position: Decimal = Decimal("0.2")
    twap_duration_ns: int = 60 * NS_PER_MINUTE
    twap_every_ns: int = 120 * NS_PER_MINUTE

    def __post_init__(self) -> None:
        if not (0 < self.spread_bps < 10_000) or self.quantity <= 0 or self.max_position <= 0:
            raise ValueError("spread_bps must be in (0, 10000); quantities must be positive")
        if self.refresh_bars < 1 or self.twap_duration_ns <= 0 or self.twap_every_ns <= 0:
            raise ValueError("refresh_bars, twap_duration and twap_every must be positive")


class Maker(Strategy):
    strategy_id = "maker"

    def __init__(self, params: MakerParams, strategy_id: str | None = None) -> None:
        super().__init__(strategy_id)
        self.params = params
        self.host = AlgoEngine(f"{self.strategy_id}-algo")
        self.algos = self.host
        self._bars = 0
        self._refreshes = 0
        self._bid: str | None = None
        self._ask: str | None = None
        self._twap: str | None = None
        self._twap_ts: int | None = None
        self.signal = "HOLD"
        self.reason = "waiting for the first bar"

    def companions(self) -> list[Component]:
        return [self.host]

    def on_bar(self, bar: Bar) -> None:
        p = self.params
        if bar.instrument_id != p.instrument_id:
            return
        self._bars += 1
        iid = p.instrument_id
        held = self.position_qty(iid)
        twap_running = self._twap is not None and any(
            v.parent_id == self._twap and not v.status.is_final for v in self.host.parents()
        )
        due = self._twap_ts is None or bar.ts - self._twap_ts >= p.twap_every_ns
        if not twap_running and due:
            self._twap_ts = bar.ts
            self._rebalance(held)
        offset = fixed.mul(bar.close, fixed.to_raw(str(p.spread_bps / 10_000)))
        refresh = self._bars % p.refresh_bars == 0
        if refresh:
            self._refreshes += 1
        self._bid = self._quote(self._bid, OrderSide.BUY, bar.close - offset, refresh)
        qty = fixed.to_raw(str(p.quantity))
        if held - self._selling() >= qty or self._ask is not None:
            self._ask = self._quote(self._ask, OrderSide.SELL, bar.close + offset, refresh)
        self.signal, self.reason = "HOLD", "quoting"

    def _selling(self) -> int:
        return sum(
            o.leaves_qty for o in self.open_orders(self.params.instrument_id) if not o.is_buy
        )

    def _rebalance(self, held: int) -> None:
        p = self.params
        target = fixed.to_raw(str(p.max_position)) // 2
        least = fixed.to_raw(str(p.quantity))
        qty = max(abs(target - held), least)
        if held > target and held - self._selling() >= qty:
            self._start_twap(OrderSide.SELL, qty)
        else:
            self._start_twap(OrderSide.BUY, qty)

    def _start_twap(self, side: OrderSide, quantity: int) -> None:
        inst = self.context.instruments[self.params.instrument_id]
        quantity -= quantity % inst.lot_size
        if quantity <= 0:
            return
        duration = f"{self.params.twap_duration_ns // NS_PER_MINUTE}m"
        self._twap = self.host.submit_parent(
            inst.id, side, quantity, "twap", {"duration": duration}, strategy_id=self.strategy_id
        )

    def _quote(self, cid: str | None, side: OrderSide, px: int, refresh: bool) -> str | None:
        inst = self.context.instruments[self.params.instrument_id]
        px = max(inst.tick_size, px - px % inst.tick_size)
        order: Order | None = self.context.orders.orders.get(cid) if cid else None
        if order is not None and order.is_open:
            if refresh and order.price != px:
                if self._refreshes % 2:
                    self.modify(order.client_order_id, price=fixed.to_str(px))
                else:
                    self.cancel(order.client_order_id)
            return cid
        if side is OrderSide.SELL and self.position_qty(inst.id) - self._selling() < fixed.to_raw(
            str(self.params.quantity)
        ):
            return None
        placed = self.submit(
            inst.id, side, str(self.params.quantity), OrderType.LIMIT, price=fixed.to_str(px)
        )
        return placed.client_order_id
