"""Order intake of the simulated venue: arrival, validation, cancel and modify.

An order is checked when it arrives (after the latency model's delay): instrument,
lot and tick multiples, minimum quantity and notional, prices its type needs, GTD
expiry (a DAY order lives until the session's close: :func:`day_order_expiry`), the
exchange filters (order rate, open orders, percent-price band: :mod:`.filters`),
reduce-only against the venue's position, duplicate client order ids,
post-only and FOK conditions, and the balance it must lock. Every refusal is an
``OrderRejected`` (or ``OrderCancelRejected``/``OrderModifyRejected``) with a reason.
"""

from __future__ import annotations

from collections import deque

from tradepilot.core.calendars import nyse
from tradepilot.core.time import NS_PER_DAY
from tradepilot.model import fixed
from tradepilot.model.account import InsufficientBalance
from tradepilot.model.enums import AssetClass, OrderType, TimeInForce
from tradepilot.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderModifyRejected,
    OrderRejected,
    OrderUpdated,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.venues.sim.state import VenueState
from tradepilot.venues.sim.working import PendingOrder, WorkingOrder

_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP_MARKET = OrderType.STOP_MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT


#: The session a DAY order on an equity lives for: NYSE regular hours, early closes included.
_EQUITY_SESSION = nyse(holidays=True)


def day_order_expiry(instrument: Instrument, now: int) -> int:
    """When a DAY order sent at ``now`` expires.

    Equities: at the close of the NYSE session in progress, or of the next one when the
    order arrives outside regular hours (13:00 on an early-close day). Other markets
    trade around the clock: at the next UTC midnight.
    """
    if instrument.asset_class is AssetClass.EQUITY:
        return _EQUITY_SESSION.session_close_after(now)
    return (now // NS_PER_DAY + 1) * NS_PER_DAY


class OrderIntake(VenueState):
    """Commands from the order manager, and what the venue does when they arrive."""

    def submit(self, order: Order) -> None:
        pending = PendingOrder(order, order.time_in_force is TimeInForce.FOK, order.post_only)
        self._send(lambda: self._arrive(pending))

    def cancel(self, client_order_id: str) -> None:
        self._send(lambda: self._cancel(client_order_id))

    def modify(
        self, client_order_id: str, quantity: int | None, price: int | None, trigger: int | None
    ) -> None:
        self._send(lambda: self._modify(client_order_id, quantity, price, trigger))

    def cancel_all(self, instrument_id: str | None = None) -> None:
        """Cancel every order working at the venue when the request arrives."""
        self._send(lambda: self._cancel_all(instrument_id))

    def _cancel_all(self, instrument_id: str | None) -> None:
        lists = (
            self._working.values()
            if instrument_id is None
            else [self._working.get(instrument_id, [])]
        )
        now = self.clock.now()
        for w in [w for ws in lists for w in ws]:
            self._close(w, OrderCanceled(now, w.cid, "cancelled (cancel all)"))

    # -- arrival --------------------------------------------------------------------
    def _arrive(self, pending: PendingOrder) -> None:
        order = pending.order
        now = self.clock.now()
        cid = order.client_order_id
        inst = self.instruments.get(order.instrument_id)
        reason = self._validate(order, inst)
        if reason is None and cid in self._seen_cids:
            reason = f"duplicate client order id {cid}"
        if reason is None and inst is not None:
            reason = self._filter(order, inst, now)
        if reason is not None or inst is None:
            self._emit(OrderRejected(now, cid, reason or "unknown instrument"))
            return
        self._seen_cids.add(cid)
        w = WorkingOrder(order, inst, now)
        if order.time_in_force is TimeInForce.DAY:
            w.expire_ts = day_order_expiry(inst, now)
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

    def _filter(self, order: Order, inst: Instrument, now: int) -> str | None:
        """The exchange filters (:mod:`.filters`): order rate, open orders, price band."""
        f = self.filters
        for px in (order.price, order.trigger_price):
            if px is not None and (f.price_up is not None or f.price_down is not None):
                refusal = f.price_refusal(px, self.last_px.get(inst.id))
                if refusal:
                    return refusal
        if f.max_open_orders is not None and len(self._working[inst.id]) >= f.max_open_orders:
            return f"Filter failure: MAX_NUM_ORDERS: {f.max_open_orders} orders already open"
        if f.max_orders is not None:
            recent = self._arrivals.setdefault(inst.id, deque())
            while recent and recent[0] <= now - f.rate_window_ns:
                recent.popleft()
            if len(recent) >= f.max_orders:
                return (
                    f"Too many new orders: more than {f.max_orders} in {f.rate_window_ns / 1e9:g} s"
                )
            recent.append(now)
        return None

    def _marketable_now(self, w: WorkingOrder) -> bool:
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

    def _fok_possible(self, w: WorkingOrder) -> bool:
        book = self.books.get(w.instrument.id)
        if book is None:
            return self._marketable_now(w)
        limit = w.price if w.order_type is _LIMIT else None
        return sum(q for _, q in self._available(w.side, w.qty, book, limit)) >= w.qty

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
