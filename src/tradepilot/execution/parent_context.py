"""One parent order as its execution algorithm sees it: state, accounting and actions.

:class:`ParentContext` is all an algorithm may read and do: the parent's fills and
working children, prices snapped to the instrument, children sent through the risk
engine (clamped to the quantity invariant, see :meth:`ParentContext.available`),
timers and finishing. :class:`ParentView` is a read-only snapshot of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradepilot.execution.algos.base import Algorithm, ParentStatus
from tradepilot.execution.market_state import MarketState
from tradepilot.model import fixed
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.model.order_factory import new_order

if TYPE_CHECKING:
    from tradepilot.execution.algo_engine import AlgoEngine

__all__ = ["ParentContext", "ParentView"]


@dataclass(frozen=True, slots=True)
class ParentView:
    """A snapshot of one parent order (raw fixed-point quantities and prices)."""

    parent_id: str
    instrument_id: str
    strategy_id: str
    side: OrderSide
    quantity: int
    algorithm: str
    urgency: str
    status: ParentStatus
    filled_qty: int
    remaining_qty: int
    working_qty: int
    avg_px: int | None
    arrival_px: int | None
    children: tuple[str, ...]
    reason: str
    started_ts: int
    finished_ts: int | None


class ParentContext:
    """One parent order: its state, and everything its algorithm may read and do."""

    def __init__(
        self,
        algos: AlgoEngine,
        parent_id: str,
        instrument: Instrument,
        side: OrderSide,
        quantity: int,
        algorithm_name: str,
        urgency: str,
        strategy_id: str,
        market: MarketState,
    ) -> None:
        self._algos = algos
        self.parent_id = parent_id
        self.instrument = instrument
        self.side = side
        self.quantity = quantity
        self.algorithm_name = algorithm_name
        self.urgency = urgency
        self.strategy_id = strategy_id
        self.market = market
        self.algorithm: Algorithm[Any]  # set by the engine right after construction
        self.status = ParentStatus.WORKING
        self.reason = ""
        self.arrival_px: int | None = None
        self.started_ts = algos.context.clock.now()
        self.finished_ts: int | None = None
        self.children: list[str] = []
        self._final_state = ParentStatus.DONE
        self._open: dict[str, Order] = {}
        self._closed: set[str] = set()
        self._filled = {1: 0, -1: 0}
        self._notional = {1: 0, -1: 0}
        self._timers: dict[str, int] = {}

    # -- identity and time ---------------------------------------------------------------------
    @property
    def instrument_id(self) -> str:
        return self.instrument.id

    def now(self) -> int:
        return self._algos.context.clock.now()

    def random(self, seed: int | None = None) -> random.Random:
        """A generator seeded by ``seed`` or, if None, by the engine seed and the parent id."""
        if seed is None:
            return random.Random(f"{self._algos.context.seed}:{self.parent_id}")
        return random.Random(seed)

    # -- accounting ----------------------------------------------------------------------------
    @property
    def filled(self) -> int:
        """Quantity filled on the parent's side."""
        return self._filled[self.side]

    def filled_on(self, side: OrderSide) -> int:
        return self._filled[side]

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    @property
    def avg_px(self) -> int | None:
        """Average fill price on the parent's side."""
        return self.avg_px_on(self.side)

    def avg_px_on(self, side: OrderSide) -> int | None:
        qty = self._filled[side]
        return fixed.div(self._notional[side], qty) if qty else None

    def open_children(self, side: OrderSide | None = None) -> list[Order]:
        return [o for o in self._open.values() if side is None or o.side is side]

    def working(self, side: OrderSide | None = None) -> int:
        """Unfilled quantity of the working children on ``side`` (default: the parent's)."""
        side = self.side if side is None else side
        return sum(o.leaves_qty for o in self._open.values() if o.side is side)

    def available(self, side: OrderSide | None = None) -> int:
        """The most a new child on ``side`` may have without breaking the quantity invariant.

        On the parent's side: quantity - filled - working. On the other side (exits):
        filled on the parent's side - filled on the other side - working there.
        """
        side = self.side if side is None else side
        cap = self.quantity if side is self.side else self._filled[self.side]
        return max(0, cap - self._filled[side] - self.working(side))

    # -- prices --------------------------------------------------------------------------------
    def snap_qty(self, raw: int) -> int:
        """Floor to the lot size (0 if below one lot)."""
        lot = self.instrument.lot_size
        return max(0, raw - raw % lot)

    def min_child(self, price: int | None = None, side: OrderSide | None = None) -> int:
        """The smallest child the venue accepts: the lot, the instrument's minimum
        quantity, and its minimum notional at ``price`` (else the far touch) rounded up
        to the lot."""
        inst = self.instrument
        lot = inst.lot_size
        least = max(lot, inst.min_qty)
        ref = price or self.far_touch(side)
        if inst.min_notional and ref:
            need = -(-(inst.min_notional * fixed.SCALE) // ref)
            least = max(least, -(-need // lot) * lot)
        return least

    def snap_price(self, raw: int) -> int:
        """Nearest tick, never below one tick."""
        tick = self.instrument.tick_size
        q, r = divmod(raw, tick)
        if 2 * r >= tick:
            q += 1
        return max(q, 1) * tick

    def offset(self, price: int, ticks: int, side: OrderSide | None = None) -> int:
        """``price`` moved ``ticks`` ticks in the aggressive direction for ``side``."""
        side = self.side if side is None else side
        return self.snap_price(price + int(side) * ticks * self.instrument.tick_size)

    def near_touch(self, side: OrderSide | None = None) -> int | None:
        """Where a passive order rests: best bid for a buy, best ask for a sell, else last."""
        side = self.side if side is None else side
        m = self.market
        px = m.best_bid() if side is OrderSide.BUY else m.best_ask()
        return px if px is not None else m.last_price

    def far_touch(self, side: OrderSide | None = None) -> int | None:
        """What a taker pays: best ask for a buy, best bid for a sell, else last."""
        side = self.side if side is None else side
        m = self.market
        px = m.best_ask() if side is OrderSide.BUY else m.best_bid()
        return px if px is not None else m.last_price

    def check_price(self, name: str, raw: int | None) -> None:
        """``ValueError`` unless ``raw`` is None or a positive multiple of the tick."""
        if raw is not None and not self.instrument.is_on_tick(raw):
            raise ValueError(
                f"{name} {fixed.to_str(raw)} must be a positive multiple of the tick "
                f"{fixed.to_str(self.instrument.tick_size)}"
            )

    def check_qty(self, name: str, raw: int) -> None:
        if not self.instrument.is_on_lot(raw):
            raise ValueError(
                f"{name} {fixed.to_str(raw)} must be a positive multiple of the lot "
                f"{fixed.to_str(self.instrument.lot_size)}"
            )

    # -- actions -------------------------------------------------------------------------------
    def submit(
        self,
        quantity: int,
        order_type: OrderType = OrderType.MARKET,
        price: int | None = None,
        trigger_price: int | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        side: OrderSide | None = None,
        tags: str = "",
    ) -> Order | None:
        """Send a child through the risk engine; ``quantity`` is floored to the lot and
        clamped to :meth:`available`, and raised to :meth:`min_child` (the venue's minimum
        size and value) when the parent has that much left. Returns None (and sends
        nothing) if that is zero or the parent is no longer working."""
        if self.status is not ParentStatus.WORKING:
            return None
        side = self.side if side is None else side
        room = self.snap_qty(self.available(side))
        qty = min(self.snap_qty(quantity), room)
        if qty <= 0:
            return None
        # a child below the venue's minimum is merged with the rest of the parent, and so
        # is a rest that would be left below it (it could never be sent on its own)
        least = self.min_child(price or trigger_price, side)
        qty = max(qty, min(room, least))
        if 0 < room - qty < least:
            qty = room
        cid = self._algos.context.orders.ids.next_child_id(self.parent_id)
        self.children.append(cid)
        init = new_order(
            self.now(),
            cid,
            self.instrument.id,
            self.strategy_id,
            side,
            qty,
            order_type,
            price,
            trigger_price,
            time_in_force,
            post_only=post_only,
            parent_id=self.parent_id,
            tags=tags or self.algorithm_name,
        )
        order = self._algos.context.orders.submit(init)
        if not order.is_closed:
            self._open[cid] = order
        return order

    def cancel(self, order: Order, reason: str = "") -> None:
        if order.is_open and order.status is not OrderStatus.PENDING_CANCEL:
            self._algos.context.orders.cancel(order.client_order_id, reason or self.algorithm_name)

    def cancel_all(self, side: OrderSide | None = None, reason: str = "") -> None:
        for order in self.open_children(side):
            self.cancel(order, reason)

    def modify(
        self,
        order: Order,
        *,
        price: int | None = None,
        trigger_price: int | None = None,
        quantity: int | None = None,
    ) -> bool:
        """Re-price (or shrink) a working child. False if it cannot be modified now."""
        if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            return False
        if quantity is not None and not order.filled_qty < quantity <= order.quantity:
            return False  # growing a child could break the quantity invariant while pending
        self._algos.context.orders.modify(order.client_order_id, quantity, price, trigger_price)
        return True

    def set_timer(self, name: str, ts: int) -> None:
        """Call ``on_timer(name)`` at engine time ``ts`` (replaces a pending one of that name)."""
        self._algos._set_timer(self, name, ts)

    def cancel_timer(self, name: str) -> None:
        self._timers.pop(name, None)

    def finish(self, state: ParentStatus, reason: str = "") -> None:
        """End the parent: cancel working children, then record ``ParentOrderFinished``."""
        self._algos._finish(self, state, reason)

    def fail(self, reason: str) -> None:
        self.finish(ParentStatus.FAILED, reason)

    def view(self) -> ParentView:
        return ParentView(
            parent_id=self.parent_id,
            instrument_id=self.instrument.id,
            strategy_id=self.strategy_id,
            side=self.side,
            quantity=self.quantity,
            algorithm=self.algorithm_name,
            urgency=self.urgency,
            status=self.status,
            filled_qty=self.filled,
            remaining_qty=self.remaining,
            working_qty=self.working(),
            avg_px=self.avg_px,
            arrival_px=self.arrival_px,
            children=tuple(self.children),
            reason=self.reason,
            started_ts=self.started_ts,
            finished_ts=self.finished_ts,
        )
