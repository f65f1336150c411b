"""The algorithm engine: parent orders worked as child orders by execution algorithms.

:class:`AlgoEngine` is a :class:`~tradepilot.strategy.base.Strategy`. Add it to an
engine next to the strategies that use it; they call :meth:`AlgoEngine.submit_parent`
and the engine works the parent with the named algorithm (see
:mod:`tradepilot.execution.algos` and ``docs/algorithms.md``)::

    algos = AlgoEngine()
    engine = Engine([inst], [algos, my_strategy], config)  # algos first: see attach()
    # in my_strategy.on_bar:
    pid = algos.submit_parent("BTCUSDT.SIM", OrderSide.BUY, "2", "twap", {"duration": "5m"})

* Ids are deterministic: parents ``<strategy>-P<n>``, their children ``<parent>-c<n>``.
  Children carry ``parent_id`` and the parent's ``strategy_id`` (so the requesting
  strategy sees their fills) and go through ``engine.orders.submit``: every child
  passes the risk engine.
* ``ParentOrderStarted``, ``ParentOrderProgress`` (after every child fill) and
  ``ParentOrderFinished`` are appended to the journal and published on the bus.
* Market data comes through the strategy callbacks; child order events come from the
  bus, recognised by the order's ``parent_id``.
* Invariant: for each side, what the children filled plus what they still have
  working never exceeds what the parent allows on that side - its quantity on the
  parent's side, and (for a bracket's exits) what was filled on the parent's side.
  :meth:`ParentContext.submit` clamps every child to that.
* Time comes from the engine clock and timers from the engine's scheduler only;
  random choices use :meth:`ParentContext.random`, seeded.

Child events published while an algorithm is acting (a denial during a submit, a
pending-cancel during a cancel) are booked at once but handed to algorithms only
after the current callback returns, so algorithm code never re-enters itself.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from tradepilot.core.time import NS_PER_MINUTE, NS_PER_SECOND
from tradepilot.execution.algos import ALGORITHMS
from tradepilot.execution.algos.base import (
    Algorithm,
    ParentStatus,
    coerce_params,
    params_to_json,
)
from tradepilot.model import fixed
from tradepilot.model.book import OrderBook
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from tradepilot.model.events import (
    Event,
    OrderFilled,
    OrderInitialized,
    ParentOrderFinished,
    ParentOrderProgress,
    ParentOrderStarted,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.strategy.base import Strategy

if TYPE_CHECKING:
    from tradepilot.engine.kernel import Engine

__all__ = [
    "URGENCIES",
    "AlgoEngine",
    "MarketState",
    "ParentContext",
    "ParentStatus",
    "ParentView",
]

Number = int | str | Decimal | float
URGENCIES = ("low", "normal", "high")


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


class MarketState:
    """What the algorithm engine knows of one instrument's market."""

    __slots__ = ("_buckets", "ask", "bid", "book", "last_price", "volume", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.book: OrderBook | None = None
        self.bid: int | None = None  # from quotes, when there is no book
        self.ask: int | None = None
        self.last_price: int | None = None  # last trade, bar close (or quote mid)
        self.volume = 0  # traded volume seen since the start (trades or bars)
        self.window_ns = window_ns
        self._buckets: deque[list[int]] = deque()  # [second, volume], oldest first

    # -- updates -------------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        self.last_price = bar.close
        self._add_volume(bar.ts, bar.volume)

    def on_trade(self, tick: TradeTick) -> None:
        self.last_price = tick.price
        self._add_volume(tick.ts, tick.size)

    def on_quote(self, quote: QuoteTick) -> None:
        self.bid, self.ask = quote.bid, quote.ask
        if self.last_price is None:
            self.last_price = (quote.bid + quote.ask) // 2

    def on_book(self, update: BookSnapshot | BookDeltas) -> None:
        if self.book is None:
            if not isinstance(update, BookSnapshot):
                return  # deltas before the first snapshot mean nothing
            self.book = OrderBook(update.instrument_id)
        self.book.apply(update)

    def _add_volume(self, ts: int, volume: int) -> None:
        self.volume += volume
        second = ts // NS_PER_SECOND
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += volume
        else:
            buckets.append([second, volume])
        horizon = second - self.window_ns // NS_PER_SECOND
        while buckets and buckets[0][0] < horizon:
            buckets.popleft()

    # -- queries -------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        if self.book is not None:
            return self.book.best_bid_price()
        return self.bid

    def best_ask(self) -> int | None:
        if self.book is not None:
            return self.book.best_ask_price()
        return self.ask

    def mid(self) -> int | None:
        if self.book is not None:
            return self.book.mid()
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) // 2
        return None

    def reference_price(self) -> int | None:
        """Book (or quote) mid if there is one, else the last price."""
        mid = self.mid()
        return mid if mid is not None else self.last_price

    def recent_volume(self, now: int, window_ns: int) -> int:
        """Volume traded in the last ``window_ns`` (at most the configured window)."""
        since = (now - window_ns) // NS_PER_SECOND
        return sum(v for s, v in self._buckets if s > since)

    def depth(self, side_taking: int, within_bps: float) -> int | None:
        """Book size a taker on ``side_taking`` could take within ``within_bps`` of the touch."""
        book = self.book
        if book is None:
            return None
        best = book.best_ask_price() if side_taking > 0 else book.best_bid_price()
        if best is None:
            return 0
        reach = round(best * within_bps / 10_000)
        limit = best + reach if side_taking > 0 else best - reach
        return sum(q for _, q in book.walk(side_taking, 1 << 62, limit))


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
        self.started_ts = algos.engine.clock.now()
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
        return self._algos.engine.clock.now()

    def random(self, seed: int | None = None) -> random.Random:
        """A generator seeded by ``seed`` or, if None, by the engine seed and the parent id."""
        if seed is None:
            return random.Random(f"{self._algos.engine.config.seed}:{self.parent_id}")
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
        clamped to :meth:`available`. Returns None (and sends nothing) if that is zero
        or the parent is no longer working."""
        if self.status is not ParentStatus.WORKING:
            return None
        side = self.side if side is None else side
        qty = min(self.snap_qty(quantity), self.snap_qty(self.available(side)))
        if qty <= 0:
            return None
        cid = f"{self.parent_id}-c{len(self.children) + 1}"
        self.children.append(cid)
        init = OrderInitialized(
            ts=self.now(),
            client_order_id=cid,
            instrument_id=self.instrument.id,
            strategy_id=self.strategy_id,
            side=int(side),
            order_type=order_type.value,
            quantity=qty,
            price=price,
            trigger_price=trigger_price,
            time_in_force=time_in_force.value,
            post_only=post_only,
            parent_id=self.parent_id,
            tags=tags or self.algorithm_name,
        )
        order = self._algos.engine.orders.submit(init)
        if not order.is_closed:
            self._open[cid] = order
        return order

    def cancel(self, order: Order, reason: str = "") -> None:
        if order.is_open and order.status is not OrderStatus.PENDING_CANCEL:
            self._algos.engine.orders.cancel(order.client_order_id, reason or self.algorithm_name)

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
        self._algos.engine.orders.modify(order.client_order_id, quantity, price, trigger_price)
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


class AlgoEngine(Strategy):
    """Hosts parent orders and runs their execution algorithms."""

    strategy_id = "algo"

    def __init__(
        self,
        strategy_id: str | None = None,
        *,
        volume_window_ns: int = 60 * NS_PER_MINUTE,
        isolate_errors: bool = True,
    ) -> None:
        """``volume_window_ns`` bounds :meth:`MarketState.recent_volume`. With
        ``isolate_errors`` an exception in an algorithm fails its parent (with the
        error as the reason) instead of stopping the run."""
        super().__init__(strategy_id)
        if volume_window_ns <= 0:
            raise ValueError("volume_window_ns must be positive")
        self.volume_window_ns = volume_window_ns
        self.isolate_errors = isolate_errors
        self._parents: dict[str, ParentContext] = {}
        self._working: dict[str, list[ParentContext]] = {}  # instrument -> working parents
        self._markets: dict[str, MarketState] = {}
        self._seq: dict[str, int] = {}
        self._inbox: deque[tuple[ParentContext, Order, Event, bool]] = deque()
        self._busy = False
        self._timer_seq = 0  # every timer gets a new token: a stale callback never matches

    def attach(self, engine: Engine) -> None:
        """Subscribe to child events. Fills are booked before the strategies listed after
        this engine hear of them, so ``parent()`` already counts a fill in ``on_fill``."""
        super().attach(engine)
        engine.bus.subscribe(OrderFilled, self._on_bus)
        engine.bus.subscribe(Event, self._on_other)

    # -- public API ----------------------------------------------------------------------------
    def submit_parent(
        self,
        instrument_id: str,
        side: OrderSide | int,
        quantity: Number,
        algorithm: str,
        params: object = None,
        urgency: str = "normal",
        strategy_id: str | None = None,
    ) -> str:
        """Start working a parent order; returns its id.

        ``quantity``: an ``int`` is a raw fixed-point value, a ``str``/``Decimal``/``float``
        a human number (``"2"`` is two units). ``params``: the algorithm's parameters
        dataclass, or a dict of its fields. Everything is validated first: a bad value
        raises ``ValueError`` and nothing is recorded or sent.
        """
        engine = self.engine
        inst = engine.instruments.get(instrument_id)
        if inst is None:
            raise ValueError(f"unknown instrument {instrument_id!r}")
        order_side = _side(side)
        qty = _quantity(inst, quantity)
        if urgency not in URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}; got {urgency!r}")
        cls = ALGORITHMS.get(algorithm)
        if cls is None:
            raise ValueError(
                f"unknown algorithm {algorithm!r} (known: {', '.join(sorted(ALGORITHMS))})"
            )
        p = coerce_params(cls.params_type, params, algorithm)
        sid = strategy_id or self.strategy_id
        n = self._seq.get(sid, 0) + 1
        market = self._market(instrument_id)
        ctx = ParentContext(
            self, f"{sid}-P{n}", inst, order_side, qty, algorithm, urgency, sid, market
        )
        try:
            ctx.algorithm = cls(ctx, p)
        except ValueError as exc:
            raise ValueError(f"{algorithm}: {exc}") from None
        self._seq[sid] = n
        self._parents[ctx.parent_id] = ctx
        self._working.setdefault(instrument_id, []).append(ctx)
        ref = market.reference_price()
        ctx.arrival_px = ref if ref is not None else engine.portfolio.last_price(instrument_id)
        self._record(
            ParentOrderStarted(
                ts=ctx.started_ts,
                parent_id=ctx.parent_id,
                instrument_id=instrument_id,
                strategy_id=sid,
                side=int(order_side),
                quantity=qty,
                algorithm=algorithm,
                params=params_to_json(ctx.algorithm.describe()),
                arrival_px=ctx.arrival_px,
                urgency=urgency,
            )
        )
        self._run(lambda: self._call(ctx, ctx.algorithm.on_start))
        return ctx.parent_id

    def cancel_parent(self, parent_id: str, reason: str = "cancelled by request") -> None:
        """Cancel the working children; ``ParentOrderFinished`` CANCELLED follows once they
        are closed (immediately if none is working). Unknown id: ``KeyError``."""
        ctx = self._parents[parent_id]
        self._run(lambda: self._finish(ctx, ParentStatus.CANCELLED, reason))

    def parent(self, parent_id: str) -> ParentView:
        """A snapshot of a parent's state. Unknown id: ``KeyError``."""
        return self._parents[parent_id].view()

    def parents(self) -> list[ParentView]:
        return [ctx.view() for ctx in self._parents.values()]

    def market(self, instrument_id: str) -> MarketState:
        return self._market(instrument_id)

    # -- market data ---------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        self._market(bar.instrument_id).on_bar(bar)
        if self._working.get(bar.instrument_id):
            self._each(bar.instrument_id, lambda a: a.on_bar(bar))

    def on_trade(self, tick: TradeTick) -> None:
        self._market(tick.instrument_id).on_trade(tick)
        if self._working.get(tick.instrument_id):
            self._each(tick.instrument_id, lambda a: a.on_trade(tick))

    def on_quote(self, quote: QuoteTick) -> None:
        self._market(quote.instrument_id).on_quote(quote)
        if self._working.get(quote.instrument_id):
            self._each(quote.instrument_id, lambda a: a.on_quote(quote))

    def on_book(self, update: BookSnapshot | BookDeltas) -> None:
        self._market(update.instrument_id).on_book(update)
        if self._working.get(update.instrument_id):
            self._each(update.instrument_id, lambda a: a.on_book(update))

    def on_flatten(self, reason: str) -> None:
        """The engine is flattening: no parent may send another child."""
        for ctx in list(self._parents.values()):
            if ctx.status is ParentStatus.WORKING:
                self.cancel_parent(ctx.parent_id, f"flatten: {reason}")

    def on_stop(self) -> None:
        """The session ends: working parents fail with their remainder, children are cancelled."""
        for ctx in list(self._parents.values()):
            if ctx.status.is_final:
                continue
            if ctx.status is ParentStatus.WORKING:
                ctx.status = ParentStatus.FINISHING
                ctx._final_state = ParentStatus.FAILED
                ctx.reason = f"session ended before completion: {ctx.algorithm.progress()}"
            self._run(partial(ctx.cancel_all, reason="session ended"))
            if not ctx.status.is_final:
                self._finalize(ctx, ctx._final_state, ctx.reason)

    # -- internals -----------------------------------------------------------------------------
    def _market(self, instrument_id: str) -> MarketState:
        m = self._markets.get(instrument_id)
        if m is None:
            m = self._markets[instrument_id] = MarketState(self.volume_window_ns)
        return m

    def _record(self, event: Event) -> None:
        engine = self.engine
        engine.journal.append(event)
        engine.bus.publish(event)

    def _each(self, instrument_id: str, hook: Callable[[Algorithm[Any]], None]) -> None:
        def work() -> None:
            for ctx in list(self._working.get(instrument_id, ())):
                self._call(ctx, partial(hook, ctx.algorithm))

        self._run(work)

    def _run(self, work: Callable[[], None]) -> None:
        """Run ``work``, then hand queued child events to their algorithms (not re-entrant)."""
        if self._busy:
            work()
            return
        self._busy = True
        try:
            work()
            inbox = self._inbox
            while inbox:
                ctx, order, event, closed = inbox.popleft()
                self._dispatch(ctx, order, event, closed)
        finally:
            self._busy = False

    def _call(self, ctx: ParentContext, *hooks: Callable[[], None]) -> None:
        """Run algorithm callbacks of a working parent, then check whether it ended."""
        for hook in hooks:
            if ctx.status is not ParentStatus.WORKING:
                break
            if not self.isolate_errors:
                hook()
                continue
            try:
                hook()
            except Exception as exc:
                ctx.fail(f"algorithm error: {type(exc).__name__}: {exc}")
        self._settle(ctx)

    def _dispatch(self, ctx: ParentContext, order: Order, event: Event, closed: bool) -> None:
        algo = ctx.algorithm
        hooks: list[Callable[[], None]] = []
        if isinstance(event, OrderFilled):
            hooks.append(partial(algo.on_fill, order, event))
        elif not closed:
            hooks.append(partial(algo.on_order_event, order, event))
        if closed:
            hooks.append(partial(algo.on_child_closed, order, event))
        self._call(ctx, *hooks)

    def _on_other(self, event: Event) -> None:
        if type(event) is not OrderFilled:  # fills come through their own subscription
            self._on_bus(event)

    def _on_bus(self, event: Event) -> None:
        """Book a child event at once; queue it for the algorithm."""
        cid = getattr(event, "client_order_id", None)
        if cid is None:
            return
        order = self.engine.orders.orders.get(cid)
        if order is None or order.parent_id is None:
            return
        ctx = self._parents.get(order.parent_id)
        if ctx is None:
            return
        if isinstance(event, OrderFilled):
            side = event.side
            ctx._filled[side] += event.last_qty
            ctx._notional[side] += fixed.mul(event.last_px, event.last_qty)
            self._record(
                ParentOrderProgress(
                    ts=event.ts,
                    parent_id=ctx.parent_id,
                    filled_qty=ctx.filled,
                    remaining_qty=ctx.remaining,
                    avg_px=ctx.avg_px,
                )
            )
        closed = order.is_closed and cid not in ctx._closed
        if closed:
            ctx._closed.add(cid)
            ctx._open.pop(cid, None)
        if ctx.status.is_final:
            return
        self._inbox.append((ctx, order, event, closed))
        if not self._busy:
            self._run(_nothing)

    def _set_timer(self, ctx: ParentContext, name: str, ts: int) -> None:
        self._timer_seq += 1
        token = ctx._timers[name] = self._timer_seq
        engine = self.engine

        def fire() -> None:
            if ctx._timers.get(name) != token:
                return
            del ctx._timers[name]
            self._run(lambda: self._call(ctx, lambda: ctx.algorithm.on_timer(name)))

        engine.schedule(max(ts, engine.clock.now()), fire)

    def _finish(self, ctx: ParentContext, state: ParentStatus, reason: str) -> None:
        if ctx.status is not ParentStatus.WORKING:
            return
        ctx.status = ParentStatus.FINISHING
        ctx._final_state = state
        ctx.reason = reason
        ctx._timers.clear()
        ctx.cancel_all(reason=reason or state.value.lower())
        self._settle(ctx)

    def _settle(self, ctx: ParentContext) -> None:
        if ctx.status is ParentStatus.WORKING and ctx.algorithm.is_complete():
            self._finish(ctx, ParentStatus.DONE, ctx.reason)
        elif ctx.status is ParentStatus.FINISHING and not ctx._open:
            state = ctx._final_state
            if state is not ParentStatus.DONE and ctx.algorithm.is_complete():
                state = ParentStatus.DONE  # the last fills arrived before the cancels
            self._finalize(ctx, state, ctx.reason)

    def _finalize(self, ctx: ParentContext, state: ParentStatus, reason: str) -> None:
        ctx.status = state
        ctx.reason = reason
        ctx.finished_ts = self.engine.clock.now()
        ctx._timers.clear()
        working = self._working.get(ctx.instrument.id)
        if working is not None and ctx in working:
            working.remove(ctx)
        self._record(
            ParentOrderFinished(
                ts=ctx.finished_ts,
                parent_id=ctx.parent_id,
                state=state.value,
                filled_qty=ctx.filled,
                avg_px=ctx.avg_px,
                reason=reason,
            )
        )

    def iter_children(self, parent_id: str) -> Iterator[Order]:
        """The child orders of a parent, in the order they were sent."""
        orders = self.engine.orders.orders
        for cid in self._parents[parent_id].children:
            order = orders.get(cid)
            if order is not None:
                yield order


def _nothing() -> None:
    return None


def _side(side: OrderSide | int) -> OrderSide:
    if isinstance(side, bool) or side not in (1, -1):
        raise ValueError(f"side must be OrderSide.BUY or OrderSide.SELL, got {side!r}")
    return OrderSide(side)


def _quantity(inst: Instrument, quantity: Number) -> int:
    if isinstance(quantity, bool):
        raise ValueError(f"not a quantity: {quantity!r}")
    raw = quantity if isinstance(quantity, int) else fixed.to_raw(quantity)
    if raw <= 0:
        raise ValueError(f"quantity must be positive, got {fixed.to_str(raw)}")
    if raw % inst.lot_size:
        raise ValueError(
            f"quantity {fixed.to_str(raw)} is not a multiple of the lot size "
            f"{fixed.to_str(inst.lot_size)} (an int is a raw fixed-point value; "
            f"pass a str such as '2' for two units)"
        )
    if raw < inst.min_qty:
        raise ValueError(
            f"quantity {fixed.to_str(raw)} is below the minimum {fixed.to_str(inst.min_qty)}"
        )
    return raw
