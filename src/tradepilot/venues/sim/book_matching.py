"""Matching on an L2 order book.

Market orders walk the book level by level (one fill per level, VWAP overall); a
resting limit joins the back of its price level's queue and fills only once the
volume ahead of it has traded or been cancelled. Liquidity our own fills took stays
taken until the exchange re-publishes the level.

Passive fills are conservative: a resting limit fills from the trades at or through
its price after the queue ahead. When the other side of the book moves onto its price
(a cross), it gets only a capped allowance: ``FillModel.book_cross_share`` of the
crossing displayed depth, and never more than the volume that really traded at or
through its price within ``FillModel.book_cross_window_ns`` (net of what our resting
fills already took of that volume). So a passive order cannot fill more than the
market traded around it.
"""

from __future__ import annotations

from collections import deque

from tradepilot.model.book import OrderBook
from tradepilot.model.data import BookDeltas, BookSnapshot, TradeTick
from tradepilot.model.enums import OrderType
from tradepilot.model.events import OrderCanceled
from tradepilot.venues.sim.state import VenueState
from tradepilot.venues.sim.working import WorkingOrder

_ALL = 10**30  # more than any book holds
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP_MARKET = OrderType.STOP_MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT


class BookMatching(VenueState):
    """Fills working orders against book updates and the trades that reach their queue."""

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

    def _arrive_on_book(self, w: WorkingOrder, book: OrderBook, marketable: bool) -> None:
        if w.order_type in (_STOP_MARKET, _STOP_LIMIT):
            return
        if marketable:
            self._take_from_book(w, book)
        if w.cid in self._by_cid and w.order_type is _LIMIT and w.price is not None:
            w.queue_ahead = book.size_at(w.side, w.price)
        if w.cid in self._by_cid and w.order_type is _MARKET:
            self._close(w, OrderCanceled(self.clock.now(), w.cid, "not enough liquidity"))

    def _take_from_book(self, w: WorkingOrder, book: OrderBook) -> None:
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

    def _match_book_update(self, ws: list[WorkingOrder], book: OrderBook) -> None:
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
            # the opposite side reached our price: a capped share of it may be ours
            opp = best_ask if w.side > 0 else best_bid
            if opp is not None and (opp[0] <= w.price if w.side > 0 else opp[0] >= w.price):
                allowance = self._cross_allowance(w, book)
                if allowance <= 0:
                    continue
                taken = self._taken.setdefault(book.instrument_id, {})
                for px, qty in self._available(w.side, allowance, book, w.price):
                    if w.cid not in self._by_cid:
                        break
                    before = w.filled
                    self._fill(w, qty, w.price, taker=False)
                    key = (-w.side, px)
                    taken[key] = taken.get(key, 0) + (w.filled - before)
                    self._consume(book.instrument_id, w.filled - before)

    def _cross_allowance(self, w: WorkingOrder, book: OrderBook) -> int:
        """How much a resting order crossed by the book may fill now (see the module doc)."""
        assert w.price is not None
        share = self.fill.book_cross_share
        if share <= 0:
            return 0
        # all the displayed depth at or through our price, not only what we could use
        depth = sum(q for _, q in self._available(w.side, _ALL, book, w.price))
        cap = int(depth * share) if share < 1 else depth
        window = self.fill.book_cross_window_ns
        if window is not None:
            iid = book.instrument_id
            since = self.clock.now() - window
            traded = sum(
                size
                for ts, px, size in self._tape.get(iid, ())
                if ts >= since and (px <= w.price if w.side > 0 else px >= w.price)
            )
            used = sum(q for ts, q in self._consumed.get(iid, ()) if ts >= since)
            cap = min(cap, traded - used)
        lot = w.instrument.lot_size
        return max(0, min(w.leaves, cap) // lot * lot)

    def _remember_trade(self, tick: TradeTick) -> None:
        """Keep the market trades of the crossing window (L2 instruments only)."""
        window = self.fill.book_cross_window_ns
        if window is None:
            return
        tape = self._tape.setdefault(tick.instrument_id, deque())
        tape.append((tick.ts, tick.price, tick.size))
        since = tick.ts - window
        while tape and tape[0][0] < since:
            tape.popleft()
        used = self._consumed.get(tick.instrument_id)
        while used and used[0][0] < since:
            used.popleft()

    def _consume(self, iid: str, qty: int) -> None:
        """Our resting fills used ``qty`` of the window's traded volume."""
        if qty > 0 and self.fill.book_cross_window_ns is not None:
            self._consumed.setdefault(iid, deque()).append((self.clock.now(), qty))

    def _match_trade_on_book(self, ws: list[WorkingOrder], tick: TradeTick) -> None:
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
            before = w.filled
            self._fill(w, qty, w.price, taker=False)
            self._consume(tick.instrument_id, w.filled - before)
