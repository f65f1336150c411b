"""The algorithm engine: parent orders worked as child orders by execution algorithms.

:class:`AlgoEngine` is a :class:`~tradepilot.execution.context.Component`. Add it to an
engine next to the strategies that use it; they call :meth:`AlgoEngine.submit_parent`
and the engine works the parent with the named algorithm (see
:mod:`tradepilot.execution.algos` and ``docs/algorithms.md``)::

    algos = AlgoEngine()
    engine = Engine.simulated([inst], [algos, my_strategy], config)  # algos first: see attach()
    # in my_strategy.on_bar:
    pid = algos.submit_parent("BTCUSDT.SIM", OrderSide.BUY, "2", "twap", {"duration": "5m"})

* Ids are deterministic: parents ``<strategy>-P<n>``, their children ``<parent>-c<n>``.
  Children carry ``parent_id`` and the parent's ``strategy_id`` (so the requesting
  strategy sees their fills) and go through the context's order gateway: every child
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

The parent's state and what an algorithm may do are in
:mod:`tradepilot.execution.parent_context`, the market state in
:mod:`tradepilot.execution.market_state`; this module is the host.

Child events published while an algorithm is acting (a denial during a submit, a
pending-cancel during a cancel) are booked at once but handed to algorithms only
after the current callback returns, so algorithm code never re-enters itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import Any

from tradepilot.core.time import NS_PER_MINUTE
from tradepilot.execution.algos import ALGORITHMS
from tradepilot.execution.algos.base import (
    Algorithm,
    ParentStatus,
    coerce_params,
    params_to_json,
)
from tradepilot.execution.context import Component, TradingContext
from tradepilot.execution.market_state import MarketState
from tradepilot.execution.parent_context import ParentContext, ParentView
from tradepilot.model import fixed
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import OrderSide
from tradepilot.model.events import (
    Event,
    OrderFilled,
    ParentOrderFinished,
    ParentOrderProgress,
    ParentOrderStarted,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order

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


class AlgoEngine(Component):
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
        self._inbox: deque[tuple[ParentContext, Order, Event, bool]] = deque()
        self._busy = False
        self._timer_seq = 0  # every timer gets a new token: a stale callback never matches

    def attach(self, context: TradingContext) -> None:
        """Subscribe to child events. Fills are booked before the strategies listed after
        this engine hear of them, so ``parent()`` already counts a fill in ``on_fill``."""
        super().attach(context)
        context.bus.subscribe(OrderFilled, self._on_bus)
        context.bus.subscribe(Event, self._on_other)

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
        context = self.context
        inst = context.instruments.get(instrument_id)
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
        ids = context.orders.ids
        market = self._market(instrument_id)
        ctx = ParentContext(
            self, ids.peek_parent_id(sid), inst, order_side, qty, algorithm, urgency, sid, market
        )
        try:
            ctx.algorithm = cls(ctx, p)
        except ValueError as exc:
            raise ValueError(f"{algorithm}: {exc}") from None
        ids.next_parent_id(sid)  # taken only now: a refused parent uses no id
        self._parents[ctx.parent_id] = ctx
        self._working.setdefault(instrument_id, []).append(ctx)
        ref = market.reference_price()
        ctx.arrival_px = ref if ref is not None else context.portfolio.last_price(instrument_id)
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
        context = self.context
        context.journal.append(event)
        context.bus.publish(event)

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
        order = self.context.orders.orders.get(cid)
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
        context = self.context

        def fire() -> None:
            if ctx._timers.get(name) != token:
                return
            del ctx._timers[name]
            self._run(lambda: self._call(ctx, lambda: ctx.algorithm.on_timer(name)))

        context.schedule(max(ts, context.clock.now()), fire)

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
        ctx.finished_ts = self.context.clock.now()
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
        orders = self.context.orders.orders
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
