"""The simulated venue: order handling, balance locking and fills from market data.

It is the backtest venue and the paper venue. It sees the same market data as
the strategies and fills orders by the kind of data it is given:

* **bars** - no look-ahead: an order that arrives during or at the close of a bar
  is first eligible on the next bar. Market orders fill at that bar's open (plus
  ``bar_slippage_ticks``). Limits and stops follow the bar's *intrabar path*:
  ``open -> low -> high -> close`` for a bar that closed at or above its open,
  ``open -> high -> low -> close`` for one that closed below. A limit that the open
  already crosses fills at the open (a gap gives price improvement).
* **trade ticks** - market orders fill at the next trade (plus
  ``market_slippage_ticks``); a resting limit fills at its price when a trade
  reaches it (``touch``) or passes it (``through``); a limit that is marketable on
  arrival fills at once at the last trade price, as a taker.
* **L2 book** - market orders walk the book level by level (one fill per level,
  VWAP overall); a resting limit joins the back of its price level's queue and
  fills only once the volume ahead of it has traded or been cancelled.

Every order arrives after the latency model's delay. Every refusal is an
``OrderRejected`` (or ``OrderCancelRejected``/``OrderModifyRejected``) with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tradepilot.core.clock import Clock
from tradepilot.core.time import NS_PER_DAY
from tradepilot.model import fixed
from tradepilot.model.account import Account, InsufficientBalance
from tradepilot.model.book import OrderBook
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import AccountType, OrderType, TimeInForce
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderExpired,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
    OrderTriggered,
    OrderUpdated,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.model.position import Position
from tradepilot.venues.sim.models import FillModel, LatencyModel

Scheduler = Callable[[int, Callable[[], None]], None]
Emit = Callable[[Event], None]

_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP_MARKET = OrderType.STOP_MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT


@dataclass(frozen=True, slots=True)
class VenueOrderReport:
    """An order as the venue sees it (the reconciliation query's answer)."""

    client_order_id: str
    instrument_id: str
    status: str  # OPEN | FILLED | CANCELED | EXPIRED | REJECTED
    filled_qty: int
    leaves_qty: int
    venue_order_id: str
    reason: str


_TERMINAL: dict[type[Event], str] = {
    OrderCanceled: "CANCELED",
    OrderExpired: "EXPIRED",
    OrderRejected: "REJECTED",
}


class _Working:
    """The venue's own record of a live order (the engine's Order is never touched)."""

    __slots__ = (
        "cid",
        "expire_ts",
        "filled",
        "immediate",
        "instrument",
        "lock",
        "order_type",
        "price",
        "qty",
        "queue_ahead",
        "reduce_only",
        "side",
        "strategy_id",
        "taker",
        "trigger",
        "triggered",
        "ts_arrived",
    )

    def __init__(self, order: Order, instrument: Instrument, ts_arrived: int = 0) -> None:
        self.cid = order.client_order_id
        self.instrument = instrument
        self.strategy_id = order.strategy_id
        self.side = int(order.side)
        self.order_type = order.order_type
        self.qty = order.quantity
        self.filled = 0
        self.price = order.price
        self.trigger = order.trigger_price
        self.triggered = False
        self.expire_ts = order.expire_ts
        self.reduce_only = order.reduce_only
        self.immediate = order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        self.taker = False
        self.lock = 0
        self.queue_ahead = 0
        self.ts_arrived = ts_arrived

    @property
    def leaves(self) -> int:
        return self.qty - self.filled

    @property
    def is_market(self) -> bool:
        t = self.order_type
        return t is _MARKET or (t is _STOP_MARKET and self.triggered)


@dataclass(slots=True)
class _Pending:
    order: Order
    fok: bool
    post_only: bool


class SimulatedVenue:
    """A deterministic exchange simulator for one account."""

    def __init__(
        self,
        name: str,
        instruments: list[Instrument],
        account: Account,
        clock: Clock,
        schedule: Scheduler,
        emit: Emit,
        fill_model: FillModel | None = None,
        latency: LatencyModel | None = None,
    ) -> None:
        self.name = name
        self.instruments = {i.id: i for i in instruments}
        self.account = account
        self.clock = clock
        self._schedule = schedule
        self._downstream = emit
        self._emit = self._record
        # what the venue itself remembers, for reconciliation after a restart
        self.trade_log: list[OrderFilled] = []
        self._venue_ids: dict[str, str] = {}
        self._closed: dict[str, tuple[str, str]] = {}  # cid -> (final status, reason)
        self.fill = fill_model or FillModel()
        self.latency = latency or LatencyModel()
        self.positions: dict[str, Position] = {}
        self.books: dict[str, OrderBook] = {}
        self.last_px: dict[str, int] = {}
        self._working: dict[str, list[_Working]] = {iid: [] for iid in self.instruments}
        self._by_cid: dict[str, _Working] = {}
        self._seen_cids: set[str] = set()
        self._order_seq = 0
        self._trade_seq = 0
        self._limit_through = self.fill.limit_fill == "through"
        self._kind: dict[str, str] = {}  # instrument -> "bar" | "trade" | "book"
        self._last_arrival = 0
        # L2 liquidity our own fills took, per (side of book, price), until the level updates
        self._taken: dict[str, dict[tuple[int, int], int]] = {}

    # -- commands (called by the order manager) ------------------------------------
    def _send(self, deliver: Callable[[], None]) -> None:
        """Deliver a message after the sampled latency, never before an earlier message.

        The link to the venue is first-in first-out (as a TCP session is): jitter can
        delay a message but cannot let a cancel overtake the order it cancels.
        """
        arrival = max(self.clock.now() + self.latency.sample(), self._last_arrival)
        self._last_arrival = arrival
        self._schedule(arrival, deliver)

    def submit(self, order: Order) -> None:
        pending = _Pending(order, order.time_in_force is TimeInForce.FOK, order.post_only)
        self._send(lambda: self._arrive(pending))

    def cancel(self, client_order_id: str) -> None:
        self._send(lambda: self._cancel(client_order_id))

    def modify(
        self, client_order_id: str, quantity: int | None, price: int | None, trigger: int | None
    ) -> None:
        self._send(lambda: self._modify(client_order_id, quantity, price, trigger))

    # -- queries (reconciliation and tests) -----------------------------------------
    def open_order_ids(self, instrument_id: str | None = None) -> list[str]:
        if instrument_id is None:
            return [w.cid for ws in self._working.values() for w in ws]
        return [w.cid for w in self._working.get(instrument_id, [])]

    def position_qty(self, instrument_id: str) -> int:
        pos = self.positions.get(instrument_id)
        return pos.qty if pos else 0

    def order_report(self, client_order_id: str) -> VenueOrderReport | None:
        """What the venue knows of an order, or None if it never arrived."""
        w = self._by_cid.get(client_order_id)
        if w is not None:
            return VenueOrderReport(
                client_order_id,
                w.instrument.id,
                "OPEN",
                w.filled,
                w.leaves,
                self._venue_ids.get(client_order_id, ""),
                "",
            )
        closed = self._closed.get(client_order_id)
        if closed is None:
            return None
        filled = sum(f.last_qty for f in self.trade_log if f.client_order_id == client_order_id)
        return VenueOrderReport(
            client_order_id,
            "",
            closed[0],
            filled,
            0,
            self._venue_ids.get(client_order_id, ""),
            closed[1],
        )

    def open_orders(self) -> list[VenueOrderReport]:
        out = []
        for cid in self.open_order_ids():
            report = self.order_report(cid)
            if report is not None:
                out.append(report)
        return out

    def fills_since(self, index: int = 0) -> list[OrderFilled]:
        """The venue's own record of executions, from position ``index`` of its trade log."""
        return self.trade_log[index:]

    def balances(self) -> dict[str, int]:
        return dict(self.account.total)

    def position_quantities(self) -> dict[str, int]:
        return {iid: p.qty for iid, p in self.positions.items() if p.qty}

    def _record(self, event: Event) -> None:
        kind = type(event)
        if kind is OrderFilled:
            self.trade_log.append(event)  # type: ignore[arg-type]
        elif kind is OrderAccepted:
            self._venue_ids[event.client_order_id] = event.venue_order_id  # type: ignore[attr-defined]
        elif kind in _TERMINAL:
            reason = getattr(event, "reason", "")
            self._closed[event.client_order_id] = (_TERMINAL[kind], reason)  # type: ignore[attr-defined]
        self._downstream(event)

    # -- arrival --------------------------------------------------------------------
    def _arrive(self, pending: _Pending) -> None:
        order = pending.order
        now = self.clock.now()
        cid = order.client_order_id
        inst = self.instruments.get(order.instrument_id)
        reason = self._validate(order, inst)
        if reason is None and cid in self._seen_cids:
            reason = f"duplicate client order id {cid}"
        if reason is not None or inst is None:
            self._emit(OrderRejected(now, cid, reason or "unknown instrument"))
            return
        self._seen_cids.add(cid)
        w = _Working(order, inst, now)
        if order.time_in_force is TimeInForce.DAY:
            w.expire_ts = (now // NS_PER_DAY + 1) * NS_PER_DAY
        marketable = self._marketable_now(w)
        if pending.post_only and (w.order_type is _MARKET or marketable):
            self._emit(OrderRejected(now, cid, "post-only order would take liquidity"))
            return
        if pending.fok and not self._fok_possible(w):
            self._emit(OrderAccepted(now, cid, self._next_venue_id()))
            self._emit(OrderCanceled(now, cid, "FOK: not enough liquidity to fill in full"))
            return
        try:
            self._lock(w)
        except InsufficientBalance as exc:
            self._emit(OrderRejected(now, cid, str(exc)))
            return
        self._emit(OrderAccepted(now, cid, self._next_venue_id()))
        self._by_cid[cid] = w
        self._working[inst.id].append(w)
        book = self.books.get(inst.id)
        if book is not None:
            self._arrive_on_book(w, book, marketable)
        elif marketable and w.order_type is _LIMIT and self._kind.get(inst.id) == "trade":
            # ticks: a marketable limit takes at the last trade price
            w.taker = True
            self._fill(w, w.leaves, self.last_px[inst.id], taker=True)
        elif marketable:
            w.taker = True  # bars: it crosses at the next open
        if w.immediate and w.cid in self._by_cid and book is not None:
            self._close(w, OrderCanceled(now, cid, "IOC: remainder cancelled"))

    def _validate(self, order: Order, inst: Instrument | None) -> str | None:
        if inst is None:
            return f"unknown instrument {order.instrument_id}"
        qty = order.quantity
        if qty <= 0 or qty % inst.lot_size:
            return f"quantity {fixed.to_str(qty)} is not a positive multiple of the lot size"
        if qty < inst.min_qty:
            return f"quantity {fixed.to_str(qty)} below the minimum {fixed.to_str(inst.min_qty)}"
        for label, px in (("price", order.price), ("trigger price", order.trigger_price)):
            if px is not None and (px <= 0 or px % inst.tick_size):
                return f"{label} {fixed.to_str(px)} is not a positive multiple of the tick size"
        t = order.order_type
        if t in (_LIMIT, _STOP_LIMIT) and order.price is None:
            return f"{t.value} order needs a price"
        if t in (_STOP_MARKET, _STOP_LIMIT) and order.trigger_price is None:
            return f"{t.value} order needs a trigger price"
        ref = order.price or order.trigger_price or self.last_px.get(inst.id)
        if ref is not None and inst.min_notional and fixed.mul(ref, qty) < inst.min_notional:
            return f"notional below the minimum {fixed.to_str(inst.min_notional)}"
        now = self.clock.now()
        if order.time_in_force is TimeInForce.GTD and (
            order.expire_ts is None or order.expire_ts <= now
        ):
            return "GTD order needs an expire time in the future"
        if order.reduce_only:
            held = self.position_qty(inst.id)
            if held == 0 or (held > 0) == (order.side > 0):
                return "reduce-only order would increase the position"
            if qty > abs(held):
                return "reduce-only order is larger than the position"
        return None

    def _marketable_now(self, w: _Working) -> bool:
        if w.order_type is _MARKET:
            return True
        if w.order_type is not _LIMIT or w.price is None:
            return False
        iid = w.instrument.id
        book = self.books.get(iid)
        if book is not None:
            top = book.best_ask() if w.side > 0 else book.best_bid()
            return top is not None and (w.price >= top[0] if w.side > 0 else w.price <= top[0])
        last = self.last_px.get(iid)
        if last is None:
            return False
        return w.price >= last if w.side > 0 else w.price <= last

    def _fok_possible(self, w: _Working) -> bool:
        book = self.books.get(w.instrument.id)
        if book is None:
            return self._marketable_now(w)
        limit = w.price if w.order_type is _LIMIT else None
        return sum(q for _, q in self._available(w.side, w.qty, book, limit)) >= w.qty

    # -- balance locking ------------------------------------------------------------
    def _reference_price(self, w: _Working) -> int:
        px = w.price if w.order_type in (_LIMIT, _STOP_LIMIT) else w.trigger
        if px is None:
            px = self.last_px.get(w.instrument.id)
            if px is None:
                raise InsufficientBalance("no reference price yet for a market order")
        return px

    def _lock(self, w: _Working) -> None:
        acct = self.account
        inst = w.instrument
        if acct.account_type is AccountType.MARGIN:
            return
        if w.side > 0:
            notional = fixed.mul(self._reference_price(w), w.qty)
            w.lock = notional + fixed.bps_of(notional, max(inst.taker_fee_bps, inst.maker_fee_bps))
            acct.lock(inst.quote, w.lock)
        else:
            w.lock = w.qty
            acct.lock(inst.base, w.lock)

    def _release(self, w: _Working, amount: int) -> None:
        if w.lock and amount:
            ccy = w.instrument.quote if w.side > 0 else w.instrument.base
            amount = min(amount, w.lock)
            self.account.unlock(ccy, amount)
            w.lock -= amount

    # -- cancel and modify ------------------------------------------------------------
    def _cancel(self, cid: str) -> None:
        w = self._by_cid.get(cid)
        if w is None:
            self._emit(OrderCancelRejected(self.clock.now(), cid, "order is not open at the venue"))
            return
        self._close(w, OrderCanceled(self.clock.now(), cid, "cancelled"))

    def _modify(self, cid: str, qty: int | None, price: int | None, trigger: int | None) -> None:
        now = self.clock.now()
        w = self._by_cid.get(cid)
        if w is None:
            self._emit(OrderModifyRejected(now, cid, "order is not open at the venue"))
            return
        inst = w.instrument
        new_qty = w.qty if qty is None else qty
        new_px = w.price if price is None else price
        new_trig = w.trigger if trigger is None else trigger
        reason = None
        if new_qty <= w.filled:
            reason = "new quantity is not above the filled quantity"
        elif new_qty % inst.lot_size:
            reason = "new quantity is not a multiple of the lot size"
        elif new_px is not None and (new_px <= 0 or new_px % inst.tick_size):
            reason = "new price is not a positive multiple of the tick size"
        if reason:
            self._emit(OrderModifyRejected(now, cid, reason))
            return
        old = (w.qty, w.price, w.trigger, w.lock)
        self._release(w, w.lock)
        w.qty, w.price, w.trigger = new_qty, new_px, new_trig
        try:
            self._lock_leaves(w)
        except InsufficientBalance as exc:
            w.qty, w.price, w.trigger = old[0], old[1], old[2]
            self._lock_leaves(w)
            self._emit(OrderModifyRejected(now, cid, str(exc)))
            return
        if new_px != old[1] or new_qty > old[0]:
            # loses its place in the queue
            ws = self._working[inst.id]
            ws.remove(w)
            ws.append(w)
            book = self.books.get(inst.id)
            if book is not None and w.price is not None:
                w.queue_ahead = book.size_at(w.side, w.price)
        self._emit(OrderUpdated(now, cid, w.qty, w.price, w.trigger))

    def _lock_leaves(self, w: _Working) -> None:
        if self.account.account_type is AccountType.MARGIN:
            return
        inst = w.instrument
        if w.side > 0:
            notional = fixed.mul(self._reference_price(w), w.leaves)
            amount = notional + fixed.bps_of(notional, max(inst.taker_fee_bps, inst.maker_fee_bps))
            self.account.lock(inst.quote, amount)
        else:
            amount = w.leaves
            self.account.lock(inst.base, amount)
        w.lock = amount

    def _close(self, w: _Working, event: Event) -> None:
        self._release(w, w.lock)
        del self._by_cid[w.cid]
        self._working[w.instrument.id].remove(w)
        self._emit(event)

    # -- fills ------------------------------------------------------------------------
    def _fill(self, w: _Working, qty: int, px: int, taker: bool) -> None:
        inst = w.instrument
        now = self.clock.now()
        qty = min(qty, w.leaves)
        pos = self.positions.get(inst.id)
        if w.reduce_only:
            held = abs(pos.qty) if pos else 0
            qty = min(qty, held)
        notional = fixed.mul(px, qty)
        fee = fixed.bps_of(notional, inst.taker_fee_bps if taker else inst.maker_fee_bps)
        acct = self.account
        capped = False
        if acct.account_type is AccountType.CASH and w.side > 0:
            available = acct.free(inst.quote) + w.lock
            if notional + fee > available:
                # a market order whose price moved beyond what the account can pay
                capped = True
                per_lot = fixed.mul(px, inst.lot_size)
                per_lot += fixed.bps_of(per_lot, inst.taker_fee_bps)
                qty = min(qty, (available // per_lot) * inst.lot_size) if per_lot else 0
                notional = fixed.mul(px, qty)
                fee = fixed.bps_of(notional, inst.taker_fee_bps if taker else inst.maker_fee_bps)
        if qty <= 0:
            reason = (
                "reduce-only: no position left to reduce"
                if w.reduce_only and not capped
                else "insufficient balance at fill time"
            )
            self._close(w, OrderCanceled(now, w.cid, reason))
            return
        # release this fill's share of the lock before settling
        if w.side > 0:
            self._release(w, w.lock if qty == w.leaves else min(w.lock, notional + fee))
        else:
            self._release(w, qty)
        if pos is None:
            pos = self.positions[inst.id] = Position(inst.id)
        realized = pos.apply_fill(w.side, qty, px, fee, now)
        if acct.account_type is AccountType.CASH:
            acct.apply_cash_fill(inst.base, inst.quote, w.side, qty, notional, fee, inst.quote)
        else:
            acct.apply_margin_fill(realized, fee, inst.quote)
        w.filled += qty
        self._trade_seq += 1
        self._emit(
            OrderFilled(
                now,
                w.cid,
                inst.id,
                w.strategy_id,
                f"{self.name}-T{self._trade_seq}",
                w.side,
                qty,
                px,
                fee,
                inst.quote,
                "TAKER" if taker else "MAKER",
            )
        )
        if w.filled == w.qty:
            self._release(w, w.lock)
            self._closed[w.cid] = ("FILLED", "")
            del self._by_cid[w.cid]
            self._working[inst.id].remove(w)
        elif capped:
            # the rest cannot be paid for: it must not keep working without a lock
            self._close(w, OrderCanceled(now, w.cid, "insufficient balance: remainder cancelled"))

    def _next_venue_id(self) -> str:
        self._order_seq += 1
        return f"{self.name}-{self._order_seq}"

    def _expire(self, ws: list[_Working], now: int) -> None:
        for w in list(ws):
            if w.expire_ts is not None and w.expire_ts <= now:
                self._close(w, OrderExpired(now, w.cid))

    def _trigger(self, w: _Working) -> None:
        w.triggered = True
        self._emit(OrderTriggered(self.clock.now(), w.cid))

    def _end_immediate(self, w: _Working) -> None:
        if w.immediate and w.cid in self._by_cid:
            self._close(w, OrderCanceled(self.clock.now(), w.cid, "IOC: remainder cancelled"))

    # -- bars -----------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        iid = bar.instrument_id
        ws = self._working.get(iid)
        if ws:
            self._match_bar(ws, bar)
        self.last_px[iid] = bar.close
        self._kind[iid] = "bar"

    def _match_bar(self, ws: list[_Working], bar: Bar) -> None:
        self._expire(ws, bar.ts_open)
        inst = ws[0].instrument if ws else None
        if inst is None:
            return
        budget: int | None = None
        part = self.fill.bar_volume_participation
        if part is not None:
            budget = int(bar.volume * part) // inst.lot_size * inst.lot_size
        up = bar.close >= bar.open
        path = (
            (bar.open, bar.low, bar.high, bar.close)
            if up
            else (bar.open, bar.high, bar.low, bar.close)
        )
        slip = self.fill.bar_slippage_ticks * inst.tick_size
        ts_open = bar.ts_open
        for w in list(ws):
            if w.cid not in self._by_cid or w.ts_arrived > ts_open:
                continue  # arrived after this bar opened: first eligible on the next bar
            result = self._bar_fill_price(w, path)
            if result is not None:
                px, taker = result
                if taker and w.is_market:
                    px = px + slip if w.side > 0 else max(inst.tick_size, px - slip)
                qty = w.leaves
                if budget is not None:
                    qty = min(qty, budget)
                    budget -= qty
                if qty > 0:
                    self._fill(w, qty, px, taker)
            self._end_immediate(w)

    def _bar_fill_price(
        self, w: _Working, path: tuple[int, int, int, int]
    ) -> tuple[int, bool] | None:
        """Where along the intrabar path the order fills, and whether as taker."""
        start = 0
        t = w.order_type
        if t in (_STOP_MARKET, _STOP_LIMIT) and not w.triggered:
            assert w.trigger is not None
            hit = _first_reach(path, w.trigger, w.side > 0, strict=False)
            if hit is None:
                return None
            start, trig_px = hit
            self._trigger(w)
            if t is _STOP_MARKET:
                return trig_px, True
            path = (trig_px, *path[start + 1 :])  # type: ignore[assignment]
            start = 0
            w.taker = w.price is not None and (
                trig_px <= w.price if w.side > 0 else trig_px >= w.price
            )
        if w.is_market:
            return path[0], True
        assert w.price is not None
        hit = _first_reach(path, w.price, w.side < 0, strict=self._limit_through)
        if hit is None:
            return None
        idx, px = hit
        if idx == 0:
            # the bar opened through the limit: fill at the open, a price improvement
            return path[0], w.taker
        return px, False

    # -- trade ticks --------------------------------------------------------------------------
    def on_trade(self, tick: TradeTick) -> None:
        iid = tick.instrument_id
        ws = self._working.get(iid)
        if ws:
            if iid in self.books:
                self._match_trade_on_book(ws, tick)
            else:
                self._match_trade(ws, tick)
        self.last_px[iid] = tick.price
        self._kind[iid] = "trade"

    def _match_trade(self, ws: list[_Working], tick: TradeTick) -> None:
        self._expire(ws, tick.ts)
        price = tick.price
        available = tick.size if self.fill.cap_limit_fills_to_trade_size else None
        through = self._limit_through
        for w in list(ws):
            if w.cid not in self._by_cid:
                continue
            inst = w.instrument
            if w.order_type in (_STOP_MARKET, _STOP_LIMIT) and not w.triggered:
                assert w.trigger is not None
                if not (price >= w.trigger if w.side > 0 else price <= w.trigger):
                    continue
                self._trigger(w)
                if w.order_type is _STOP_LIMIT:
                    w.taker = True
            if w.is_market:
                slip = self.fill.market_slippage_ticks * inst.tick_size
                px = price + slip if w.side > 0 else max(inst.tick_size, price - slip)
                self._fill(w, w.leaves, px, taker=True)
                continue
            assert w.price is not None
            limit = w.price
            if w.side > 0:
                hit = price < limit if through else price <= limit
            else:
                hit = price > limit if through else price >= limit
            if hit:
                taker = w.taker
                px = price if taker else limit
                qty = w.leaves if available is None or taker else min(w.leaves, available)
                if qty > 0:
                    self._fill(w, qty, px, taker)
                    if available is not None and not taker:
                        available -= qty
            w.taker = False
            self._end_immediate(w)

    # -- L2 book -------------------------------------------------------------------------------
    def on_book(self, item: BookSnapshot | BookDeltas) -> None:
        iid = item.instrument_id
        book = self.books.get(iid)
        if book is None:
            if not isinstance(item, BookSnapshot):
                return  # deltas before the first snapshot mean nothing
            book = self.books[iid] = OrderBook(iid)
            self._kind[iid] = "book"
        book.apply(item)
        taken = self._taken.get(iid)
        if taken:
            if isinstance(item, BookSnapshot):
                taken.clear()
            else:
                # a level the exchange re-published no longer shows what we took
                for lvl in item.bids:
                    taken.pop((1, lvl.price), None)
                for lvl in item.asks:
                    taken.pop((-1, lvl.price), None)
        mid = book.mid()
        if mid is not None:
            self.last_px[iid] = mid
        ws = self._working.get(iid)
        if ws:
            self._match_book_update(ws, book)

    def on_quote(self, quote: QuoteTick) -> None:
        if quote.instrument_id not in self.books:
            self.last_px[quote.instrument_id] = (quote.bid + quote.ask) // 2

    def _arrive_on_book(self, w: _Working, book: OrderBook, marketable: bool) -> None:
        if w.order_type in (_STOP_MARKET, _STOP_LIMIT):
            return
        if marketable:
            self._take_from_book(w, book)
        if w.cid in self._by_cid and w.order_type is _LIMIT and w.price is not None:
            w.queue_ahead = book.size_at(w.side, w.price)
        if w.cid in self._by_cid and w.order_type is _MARKET:
            self._close(w, OrderCanceled(self.clock.now(), w.cid, "not enough liquidity"))

    def _available(
        self, side_taking: int, qty: int, book: OrderBook, limit: int | None
    ) -> list[tuple[int, int]]:
        """What a taker of ``qty`` can get, level by level, net of what we already took."""
        taken = self._taken.get(book.instrument_id)
        if not taken:
            return book.walk(side_taking, qty, limit)
        book_side = -side_taking  # a buyer takes asks (-1), a seller takes bids (+1)
        extra = sum(q for (s, _), q in taken.items() if s == book_side)
        out: list[tuple[int, int]] = []
        want = qty
        for px, size in book.walk(side_taking, qty + extra, limit):
            size -= taken.get((book_side, px), 0)
            if size <= 0:
                continue
            take = min(size, want)
            out.append((px, take))
            want -= take
            if not want:
                break
        return out

    def _take_from_book(self, w: _Working, book: OrderBook) -> None:
        limit = w.price if w.order_type in (_LIMIT, _STOP_LIMIT) else None
        taken = self._taken.setdefault(book.instrument_id, {})
        book_side = -w.side
        for px, qty in self._available(w.side, w.leaves, book, limit):
            if w.cid not in self._by_cid:
                break
            before = w.filled
            self._fill(w, qty, px, taker=True)
            key = (book_side, px)
            taken[key] = taken.get(key, 0) + (w.filled - before)

    def _match_book_update(self, ws: list[_Working], book: OrderBook) -> None:
        self._expire(ws, self.clock.now())
        best_bid = book.best_bid()
        best_ask = book.best_ask()
        for w in list(ws):
            if w.cid not in self._by_cid:
                continue
            if w.order_type in (_STOP_MARKET, _STOP_LIMIT) and not w.triggered:
                assert w.trigger is not None
                ref = best_ask if w.side > 0 else best_bid
                if ref is None or not (ref[0] >= w.trigger if w.side > 0 else ref[0] <= w.trigger):
                    continue
                self._trigger(w)
                self._take_from_book(w, book)
                if w.cid in self._by_cid and w.order_type is _STOP_MARKET:
                    self._close(w, OrderCanceled(self.clock.now(), w.cid, "not enough liquidity"))
                elif w.cid in self._by_cid and w.price is not None:
                    w.queue_ahead = book.size_at(w.side, w.price)
                continue
            if w.price is None:
                continue
            # cancellations ahead of us: the queue can only shrink to what is left at the level
            level = book.size_at(w.side, w.price)
            if level < w.queue_ahead:
                w.queue_ahead = level
            # the opposite side reached our price: we would have been matched
            opp = best_ask if w.side > 0 else best_bid
            if opp is not None and (opp[0] <= w.price if w.side > 0 else opp[0] >= w.price):
                # at our price (we rested first), against liquidity nobody took yet
                taken = self._taken.setdefault(book.instrument_id, {})
                for px, qty in self._available(w.side, w.leaves, book, w.price):
                    if w.cid not in self._by_cid:
                        break
                    before = w.filled
                    self._fill(w, qty, w.price, taker=False)
                    key = (-w.side, px)
                    taken[key] = taken.get(key, 0) + (w.filled - before)

    def _match_trade_on_book(self, ws: list[_Working], tick: TradeTick) -> None:
        self._expire(ws, tick.ts)
        remaining = tick.size
        for w in list(ws):
            if remaining <= 0:
                break
            if w.cid not in self._by_cid or w.price is None or w.is_market:
                continue
            if w.order_type is _STOP_LIMIT and not w.triggered:
                continue
            # a seller-initiated trade hits bids; a buyer-initiated one lifts asks
            if tick.aggressor and tick.aggressor == w.side:
                continue
            if w.side > 0:
                if tick.price > w.price:
                    continue
                through = tick.price < w.price
            else:
                if tick.price < w.price:
                    continue
                through = tick.price > w.price
            if through:
                w.queue_ahead = 0
            if w.queue_ahead >= remaining:
                w.queue_ahead -= remaining
                remaining = 0
                continue
            remaining -= w.queue_ahead
            w.queue_ahead = 0
            qty = min(w.leaves, remaining)
            remaining -= qty
            self._fill(w, qty, w.price, taker=False)


def _first_reach(
    path: tuple[int, ...], level: int, upward: bool, strict: bool
) -> tuple[int, int] | None:
    """First point where a monotone-segment price path reaches ``level``.

    Returns ``(index, price)``: index 0 means the path starts at or beyond the
    level (price = the start); otherwise the level is crossed on the way to
    ``path[index]`` and the price is the level itself.
    """
    if upward:
        for i, p in enumerate(path):
            if p > level or (p == level and not strict):
                return (0, p) if i == 0 else (i, level)
    else:
        for i, p in enumerate(path):
            if p < level or (p == level and not strict):
                return (0, p) if i == 0 else (i, level)
    return None
