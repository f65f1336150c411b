"""The simulated venue's state and the rules every matching model shares.

Balance locking (a buy locks quote at its reference price plus the larger fee, a
cash-account sell locks base), settlement of one fill (position, balances, the
``OrderFilled``), closing an order, expiry and stop triggering, and the L2
liquidity our own fills already took. The matching models (:mod:`.bar_matching`,
:mod:`.tick_matching`, :mod:`.book_matching`) and the order intake
(:mod:`.intake`) build on it; :class:`~.venue.SimulatedVenue` puts them together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tradepilot.core.clock import Clock
from tradepilot.model import fixed
from tradepilot.model.account import Account, InsufficientBalance
from tradepilot.model.book import OrderBook
from tradepilot.model.enums import AccountType, OrderType
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderTriggered,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.position import Position
from tradepilot.portfolio.locking import buy_lock, reference_price
from tradepilot.portfolio.settlement import settle_fill
from tradepilot.venues.base import Emit, Scheduler, VenueCapabilities
from tradepilot.venues.sim.filters import ExchangeFilters
from tradepilot.venues.sim.models import FillModel, LatencyModel
from tradepilot.venues.sim.working import WorkingOrder

_LIMIT = OrderType.LIMIT
_STOP_LIMIT = OrderType.STOP_LIMIT


_TERMINAL: dict[type[Event], str] = {
    OrderCanceled: "CANCELED",
    OrderExpired: "EXPIRED",
    OrderRejected: "REJECTED",
}


class VenueState:
    """A deterministic exchange simulator's state for one account, and its shared rules."""

    def __init__(
        self,
        name: str,
        instruments: list[Instrument],
        account: Account,
        clock: Clock,
        fill_model: FillModel | None = None,
        latency: LatencyModel | None = None,
        filters: ExchangeFilters | None = None,
    ) -> None:
        self.name = name
        self.capabilities = VenueCapabilities()
        self.filters = filters or ExchangeFilters()
        self._arrivals: dict[str, deque[int]] = {}  # per symbol: recent order arrival times
        self.instruments = {i.id: i for i in instruments}
        self.account = account
        self.clock = clock
        self._schedule: Scheduler = _not_connected
        self._downstream: Emit = _not_connected
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
        self._working: dict[str, list[WorkingOrder]] = {iid: [] for iid in self.instruments}
        self._by_cid: dict[str, WorkingOrder] = {}
        self._seen_cids: set[str] = set()
        self._order_seq = 0
        self._trade_seq = 0
        self._limit_through = self.fill.limit_fill == "through"
        self._kind: dict[str, str] = {}  # instrument -> "bar" | "trade" | "book"
        self._last_arrival = 0
        # L2 liquidity our own fills took, per (side of book, price), until the level updates
        self._taken: dict[str, dict[tuple[int, int], int]] = {}
        # L2: recent market trades (ts, price, size) and what our resting orders took of them
        self._tape: dict[str, deque[tuple[int, int, int]]] = {}
        self._consumed: dict[str, deque[tuple[int, int]]] = {}

    def connect(self, emit: Emit, schedule: Scheduler) -> None:
        """Deliver reports to ``emit``; messages arrive through ``schedule`` after latency."""
        self._downstream = emit
        self._schedule = schedule

    # -- commands (called by the order manager) ------------------------------------
    def _send(self, deliver: Callable[[], None]) -> None:
        """Deliver a message after the sampled latency, never before an earlier message.

        The link to the venue is first-in first-out (as a TCP session is): jitter can
        delay a message but cannot let a cancel overtake the order it cancels.
        """
        arrival = max(self.clock.now() + self.latency.sample(), self._last_arrival)
        self._last_arrival = arrival
        self._schedule(arrival, deliver)

    def position_qty(self, instrument_id: str) -> int:
        """The venue's own position (signed, raw)."""
        pos = self.positions.get(instrument_id)
        return pos.qty if pos else 0

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

    # -- balance locking ------------------------------------------------------------
    def _reference_price(self, w: WorkingOrder) -> int:
        px = reference_price(w.order_type, w.price, w.trigger, self.last_px.get(w.instrument.id))
        if px is None:
            raise InsufficientBalance("no reference price yet for a market order")
        return px

    def _lock(self, w: WorkingOrder) -> None:
        acct = self.account
        inst = w.instrument
        if acct.account_type is AccountType.MARGIN:
            return
        if w.side > 0:
            w.lock = buy_lock(inst, w.qty, self._reference_price(w))
            acct.lock(inst.quote, w.lock)
        else:
            w.lock = w.qty
            acct.lock(inst.base, w.lock)

    def _release(self, w: WorkingOrder, amount: int) -> None:
        if w.lock and amount:
            ccy = w.instrument.quote if w.side > 0 else w.instrument.base
            amount = min(amount, w.lock)
            self.account.unlock(ccy, amount)
            w.lock -= amount

    def _lock_leaves(self, w: WorkingOrder) -> None:
        if self.account.account_type is AccountType.MARGIN:
            return
        inst = w.instrument
        if w.side > 0:
            amount = buy_lock(inst, w.leaves, self._reference_price(w))
            self.account.lock(inst.quote, amount)
        else:
            amount = w.leaves
            self.account.lock(inst.base, amount)
        w.lock = amount

    def _close(self, w: WorkingOrder, event: Event) -> None:
        self._release(w, w.lock)
        del self._by_cid[w.cid]
        self._working[w.instrument.id].remove(w)
        self._emit(event)

    # -- fills ------------------------------------------------------------------------
    def _fill(self, w: WorkingOrder, qty: int, px: int, taker: bool, at: int | None = None) -> None:
        """Settle one fill; ``at`` stamps it when it happened before now (bars)."""
        inst = w.instrument
        now = self.clock.now() if at is None else at
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
        settle_fill(acct, pos, inst, w.side, qty, px, fee, inst.quote, now)
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

    def _expire(self, ws: list[WorkingOrder], now: int) -> None:
        for w in list(ws):
            if w.expire_ts is not None and w.expire_ts <= now:
                self._close(w, OrderExpired(now, w.cid))

    def _trigger(self, w: WorkingOrder) -> None:
        w.triggered = True
        self._emit(OrderTriggered(self.clock.now(), w.cid))

    def _end_immediate(self, w: WorkingOrder) -> None:
        if w.immediate and w.cid in self._by_cid:
            self._close(w, OrderCanceled(self.clock.now(), w.cid, "IOC: remainder cancelled"))

    # -- L2 liquidity ------------------------------------------------------------------
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

    def _arrive_on_book(self, w: WorkingOrder, book: OrderBook, marketable: bool) -> None:
        """An order arriving on an instrument with a book (the book model implements it)."""
        raise NotImplementedError


def _not_connected(*_: object) -> None:
    raise RuntimeError("the venue is not connected: call connect(emit, schedule) first")
