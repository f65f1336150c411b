"""The dialect-neutral core of the local exchange: accounts, orders and market state.

Every account trades on its own :class:`SimulatedVenue` (so its own matching,
fee and balance-locking rules), and every venue sees the same replayed market
data. Accounts do not trade with each other: each one fills against the
recorded liquidity as if it were alone in the market.

The core keeps the exchange-side record of each order (:class:`OrderRecord`),
which the dialects render as Binance or Alpaca JSON, and tells listeners about
every order and balance change (:class:`UserEvent`) and every market-data item.

Conditional orders (stop-loss and take-profit limits, Alpaca stops and
trailing stops) wait in the core, with their balance locked, until the last
trade price reaches the trigger; then the core sends the working order to the
venue. Nothing here does I/O: the server calls :meth:`ExchangeCore.tick` with
the wall-clock time, and the dialects call :meth:`submit` and :meth:`cancel`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradepilot.model import fixed
from tradepilot.model.account import Account, InsufficientBalance
from tradepilot.model.book import OrderBook
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, MarketData, QuoteTick, TradeTick
from tradepilot.model.enums import AccountType, OrderType, TimeInForce
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderRejected,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.venues.exchange.accounts import AccountSpec
from tradepilot.venues.exchange.replay import Replay, ReplayData
from tradepilot.venues.sim.models import FillModel, LatencyModel
from tradepilot.venues.sim.venue import SimulatedVenue

__all__ = [
    "ExchangeClock",
    "ExchangeCore",
    "Fill",
    "OrderRecord",
    "OrderRequest",
    "Rejected",
    "UserEvent",
]

NS_PER_MS = 1_000_000

# order statuses (Binance's words; the Alpaca dialect maps them to its own)
NEW = "NEW"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELED = "CANCELED"
EXPIRED = "EXPIRED"
REJECTED = "REJECTED"
OPEN_STATUSES = frozenset({NEW, PARTIALLY_FILLED})


class Rejected(Exception):
    """An order or cancel the exchange refuses. ``code`` is dialect-neutral."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # FILTER | BALANCE | POST_ONLY | DUPLICATE | SYMBOL | TRIGGER | ...
        self.message = message


class ExchangeClock:
    """Time as the exchange reports it.

    ``mode="wall"``: the wall clock (Binance: clients sign requests with their own
    clock, so the server must agree with it). ``mode="replay"``: the replayed
    data's time (Alpaca: the market hours are those of the recorded day).
    ``skew_ms`` shifts what the exchange reports (a fault).
    """

    def __init__(self, mode: str = "wall") -> None:
        if mode not in ("wall", "replay"):
            raise ValueError("clock mode must be 'wall' or 'replay'")
        self.mode = mode
        self.replay: Replay | None = None
        self.skew_ms = 0
        self._last = 0

    def wall_ns(self) -> int:
        return time.time_ns()

    def now(self) -> int:
        """Exchange time in ns (monotonic)."""
        if self.mode == "replay" and self.replay is not None:
            ts = self.replay.data_now(self.wall_ns())
        else:
            ts = self.wall_ns()
        if ts < self._last:
            ts = self._last
        self._last = ts
        return ts

    def now_ms(self) -> int:
        return self.now() // NS_PER_MS + self.skew_ms


@dataclass
class Fill:
    trade_id: int
    price: int
    qty: int
    quote_qty: int
    commission: int
    commission_asset: str
    is_maker: bool
    time_ms: int


@dataclass
class OrderRequest:
    """A new order, already parsed from a dialect's parameters (raw fixed-point values)."""

    symbol: str
    side: int
    kind: str  # LIMIT | MARKET | STOP_MARKET | STOP_LIMIT
    qty: int
    price: int | None = None
    stop_price: int | None = None
    trigger_above: bool | None = None  # for stops: fire when last >= stop (else <=)
    trail_price: int | None = None  # trailing stop: distance
    trail_percent: int | None = None  # trailing stop: percent (raw)
    tif: str = "GTC"  # GTC | IOC | FOK | DAY
    post_only: bool = False
    client_id: str = ""
    dialect_type: str = ""  # the type as the client named it (LIMIT_MAKER, stop_limit...)
    quote_qty: int = 0
    lock: bool = True  # False: a conditional leg sharing its peer's locked balance
    oco_peer: int | None = None  # order id cancelled when this one fills or triggers
    order_id: int | None = None  # an id reserved earlier (an order the dialect held)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OrderRecord:
    """The exchange's record of one order."""

    account: str
    order_id: int
    client_id: str
    symbol: str
    side: int
    kind: str
    dialect_type: str
    tif: str
    qty: int
    price: int | None
    stop_price: int | None
    time_ms: int
    venue_cid: str
    status: str = NEW
    executed: int = 0
    quote_executed: int = 0
    update_ms: int = 0
    fills: list[Fill] = field(default_factory=list)
    reason: str = ""
    triggered: bool = True  # False while a conditional order waits for its trigger
    trigger_above: bool = True
    trail_price: int | None = None
    trail_percent: int | None = None
    hwm: int | None = None  # trailing stop: best price seen since placement
    lock: tuple[str, int] | None = None  # balance the core locked while untriggered
    post_only: bool = False
    quote_qty: int = 0
    oco_peer: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def leaves(self) -> int:
        return self.qty - self.executed


@dataclass
class UserEvent:
    """A change on an account: an order's execution report or a balance change."""

    kind: str  # "order" | "balance"
    account: str
    ts_ms: int
    record: OrderRecord | None = None
    exec_type: str = ""  # NEW | TRADE | CANCELED | EXPIRED | REJECTED | TRIGGERED | REPLACED
    fill: Fill | None = None
    assets: tuple[str, ...] = ()
    delta: int = 0  # balanceUpdate: amount credited (raw)


class _AccountState:
    def __init__(self, spec: AccountSpec, venue: SimulatedVenue, account: Account) -> None:
        self.spec = spec
        self.venue = venue
        self.account = account
        self.orders: dict[int, OrderRecord] = {}
        self.by_client: dict[str, OrderRecord] = {}
        self.by_venue_cid: dict[str, OrderRecord] = {}
        self.trades: list[tuple[OrderRecord, Fill]] = []
        self.waiting: dict[int, OrderRecord] = {}  # conditional orders not yet triggered


UserListener = Callable[[UserEvent], None]
MarketListener = Callable[[MarketData, int], None]


class SymbolState:
    """Public market state of one symbol, as the replay has shown it so far."""

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.book: OrderBook | None = None
        self.trades: list[tuple[int, int, int, int, bool]] = []  # (id, ms, px, qty, buyer_maker)
        self.quote: QuoteTick | None = None
        self.quote_update_id = 0
        self.bars: list[tuple[int, Bar]] = []  # (open ms as replayed, bar)
        self.last_price: int | None = None
        self.trade_seq = 0

    def mid(self) -> int | None:
        if self.book is not None:
            m = self.book.mid()
            if m is not None:
                return m
        if self.quote is not None:
            return (self.quote.bid + self.quote.ask) // 2
        return self.last_price


class ExchangeCore:
    """Accounts, orders and market state of the local exchange (no I/O)."""

    def __init__(
        self,
        data: ReplayData,
        accounts: list[AccountSpec],
        speed: float = 1.0,
        clock_mode: str = "wall",
        fill_model: FillModel | None = None,
        latency: LatencyModel | None = None,
        skip_ns: int = 0,
        account_type: AccountType = AccountType.CASH,
    ) -> None:
        self.data = data
        self.clock = ExchangeClock(clock_mode)
        self.replay = Replay(data, speed, self.clock.wall_ns(), skip_ns)
        self.clock.replay = self.replay
        self.instruments = {i.symbol: i for i in data.instruments}
        self.by_iid = {i.id: i for i in data.instruments}
        self.symbols = {i.symbol: SymbolState(i) for i in data.instruments}
        self._order_seq = 0
        self._trade_seq = 0
        #: if set, bars opening at a time it refuses (closed market) reach no venue
        self.venue_gate: Callable[[int], bool] | None = None
        self.user_listeners: list[UserListener] = []
        self.market_listeners: list[MarketListener] = []
        self.accounts: dict[str, _AccountState] = {}
        self.by_key: dict[str, _AccountState] = {}
        for spec in accounts:
            acct = Account(
                "USD" if clock_mode == "replay" else "USDT",
                {ccy: fixed.to_raw(v) for ccy, v in spec.balances.items()},
                account_type,
            )
            state: _AccountState
            venue = SimulatedVenue(
                spec.name,
                list(data.instruments),
                acct,
                self.clock,
                fill_model or FillModel(),
                latency or LatencyModel(),
            )
            venue.connect(self._venue_listener(spec.name), self._schedule)
            state = _AccountState(spec, venue, acct)
            self.accounts[spec.name] = state
            self.by_key[spec.api_key] = state

    def _venue_listener(self, name: str) -> Callable[[Event], None]:
        def on_event(ev: Event) -> None:
            self._on_venue_event(name, ev)

        return on_event

    # -- time and market data ---------------------------------------------------------
    @staticmethod
    def _schedule(ts: int, deliver: Callable[[], None]) -> None:
        # order latency is the network's: the venue handles a request when it arrives
        deliver()

    def server_ms(self, data_ts: int) -> int:
        """When a market-data item is shown to clients (exchange time, ms)."""
        if self.clock.mode == "replay":
            return data_ts // NS_PER_MS + self.clock.skew_ms
        return self.replay.wall_of(data_ts) // NS_PER_MS + self.clock.skew_ms

    def tick(self, wall_ns: int | None = None) -> int:
        """Apply every market-data item due by ``wall_ns``; returns how many."""
        items = self.replay.due(self.clock.wall_ns() if wall_ns is None else wall_ns)
        for item in items:
            self._apply(item)
        return len(items)

    def _apply(self, item: MarketData) -> None:
        inst = self.by_iid.get(item.instrument_id)
        if inst is None:
            return
        st = self.symbols[inst.symbol]
        ms = self.server_ms(item.ts)
        if isinstance(item, BookSnapshot | BookDeltas):
            if st.book is None:
                if not isinstance(item, BookSnapshot):
                    return
                st.book = OrderBook(item.instrument_id)
            st.book.apply(item)
            for acc in self.accounts.values():
                acc.venue.on_book(item)
        elif isinstance(item, TradeTick):
            try:
                tid = int(item.trade_id)
            except ValueError:
                tid = st.trade_seq + 1
            st.trade_seq = tid
            st.trades.append((tid, ms, item.price, item.size, item.aggressor < 0))
            st.last_price = item.price
            for acc in self.accounts.values():
                acc.venue.on_trade(item)
            self._check_triggers(inst.symbol, item.price, item.price)
        elif isinstance(item, QuoteTick):
            st.quote = item
            st.quote_update_id += 1
            for acc in self.accounts.values():
                acc.venue.on_quote(item)
        elif isinstance(item, Bar):
            st.bars.append((ms - (item.ts - item.ts_open) // NS_PER_MS, item))
            st.last_price = item.close
            gate = self.venue_gate
            if gate is not None and not gate(item.ts_open):
                for acc in self.accounts.values():
                    acc.venue.last_px[item.instrument_id] = item.close  # a reference, no fills
                for listener in list(self.market_listeners):
                    listener(item, ms)
                return
            for acc in self.accounts.values():
                acc.venue.on_bar(item)
            self._check_triggers(inst.symbol, item.high, item.low)
        for listener in list(self.market_listeners):
            listener(item, ms)

    def set_quote_update_id(self, symbol: str, update_id: int) -> None:
        self.symbols[symbol].quote_update_id = update_id

    # -- accounts -------------------------------------------------------------------------
    def account_for_key(self, api_key: str) -> _AccountState | None:
        return self.by_key.get(api_key)

    def balances(self, name: str) -> dict[str, tuple[int, int]]:
        acct = self.accounts[name].account
        return {ccy: (acct.free(ccy), acct.locked.get(ccy, 0)) for ccy in sorted(acct.total)}

    def deposit(self, name: str, asset: str, amount: int) -> None:
        acct = self.accounts[name].account
        if acct.total.get(asset, 0) + amount < acct.locked.get(asset, 0):
            raise Rejected("BALANCE", "withdrawal larger than the free balance")
        acct.total[asset] = acct.total.get(asset, 0) + amount
        now = self.clock.now_ms()
        self._notify(
            UserEvent("balance", name, now, assets=(asset,), delta=amount, exec_type="DEPOSIT")
        )

    # -- orders ---------------------------------------------------------------------------
    def submit(self, name: str, req: OrderRequest) -> OrderRecord:
        """Place an order. Raises :class:`Rejected` (and changes nothing) if refused."""
        st = self.accounts[name]
        inst = self.instruments.get(req.symbol)
        if inst is None:
            raise Rejected("SYMBOL", f"unknown symbol {req.symbol}")
        if req.client_id:
            prev = st.by_client.get(req.client_id)
            if prev is not None and prev.is_open:
                raise Rejected("DUPLICATE", f"an open order already has client id {req.client_id}")
        now_ms = self.clock.now_ms()
        oid = req.order_id if req.order_id is not None else self.reserve_order_id()
        cid = req.client_id or f"tp{oid:012d}"
        rec = OrderRecord(
            account=name,
            order_id=oid,
            client_id=cid,
            symbol=req.symbol,
            side=req.side,
            kind=req.kind,
            dialect_type=req.dialect_type or req.kind,
            tif=req.tif,
            qty=req.qty,
            price=req.price,
            stop_price=req.stop_price,
            time_ms=now_ms,
            update_ms=now_ms,
            venue_cid=f"{name}-{oid}",
            trail_price=req.trail_price,
            trail_percent=req.trail_percent,
            post_only=req.post_only,
            quote_qty=req.quote_qty,
            oco_peer=req.oco_peer,
            extra=dict(req.extra),
        )
        if req.oco_peer is not None:
            peer = st.orders.get(req.oco_peer)
            if peer is None or not peer.is_open:
                raise Rejected("UNKNOWN_ORDER", "the OCO peer is not open")
        if req.kind in ("STOP_LIMIT", "STOP_MARKET"):
            self._place_conditional(st, inst, rec, req)
            if req.oco_peer is not None:
                st.orders[req.oco_peer].oco_peer = rec.order_id
            return rec
        self._send_to_venue(st, inst, rec)
        if rec.status == REJECTED:
            raise Rejected(_reject_code(rec.reason), rec.reason)
        return rec

    def reserve_order_id(self) -> int:
        self._order_seq += 1
        return self._order_seq

    def _register(self, st: _AccountState, rec: OrderRecord) -> None:
        st.orders[rec.order_id] = rec
        st.by_client[rec.client_id] = rec
        st.by_venue_cid[rec.venue_cid] = rec

    def _place_conditional(
        self, st: _AccountState, inst: Instrument, rec: OrderRecord, req: OrderRequest
    ) -> None:
        sym = self.symbols[inst.symbol]
        last = sym.last_price if sym.last_price is not None else sym.mid()
        if rec.trail_price is not None or rec.trail_percent is not None:
            rec.hwm = last
            rec.trigger_above = rec.side > 0
            rec.stop_price = self._trail_stop(rec)
        else:
            assert req.stop_price is not None
            rec.trigger_above = req.trigger_above if req.trigger_above is not None else req.side > 0
            if last is not None and self._fires(rec, last, last):
                raise Rejected("TRIGGER", "stop price would trigger immediately")
        ref = rec.price if rec.price is not None else rec.stop_price
        if ref is None:
            ref = last or 0
        if rec.side > 0:
            notional = fixed.mul(ref, rec.qty)
            amount = notional + fixed.bps_of(notional, max(inst.maker_fee_bps, inst.taker_fee_bps))
            ccy = inst.quote
        else:
            amount, ccy = rec.qty, inst.base
        if st.account.account_type is AccountType.CASH and req.lock:
            try:
                st.account.lock(ccy, amount)
            except InsufficientBalance as exc:
                raise Rejected("BALANCE", str(exc)) from None
            rec.lock = (ccy, amount)
        rec.triggered = False
        self._register(st, rec)
        st.waiting[rec.order_id] = rec
        self._notify(UserEvent("order", st.spec.name, rec.time_ms, rec, "NEW"))
        self._notify_balance(st, inst)

    @staticmethod
    def _trail_stop(rec: OrderRecord) -> int | None:
        if rec.hwm is None:
            return None
        if rec.trail_price is not None:
            dist = rec.trail_price
        else:
            assert rec.trail_percent is not None
            dist = fixed.mul(rec.hwm, rec.trail_percent) // 100
        return rec.hwm - dist if rec.side < 0 else rec.hwm + dist

    @staticmethod
    def _fires(rec: OrderRecord, high: int, low: int) -> bool:
        stop = rec.stop_price
        if stop is None:
            return False
        return high >= stop if rec.trigger_above else low <= stop

    def _check_triggers(self, symbol: str, high: int, low: int) -> None:
        for st in self.accounts.values():
            if not st.waiting:
                continue
            waiting = [r for r in st.waiting.values() if r.is_open and r.symbol == symbol]
            for rec in waiting:
                if rec.trail_price is not None or rec.trail_percent is not None:
                    best = high if rec.side < 0 else low
                    if rec.hwm is None or (best > rec.hwm if rec.side < 0 else best < rec.hwm):
                        rec.hwm = best
                        rec.stop_price = self._trail_stop(rec)
                if self._fires(rec, high, low):
                    self._trigger(st, rec)

    def _cancel_peer(self, st: _AccountState, rec: OrderRecord) -> None:
        peer = st.orders.get(rec.oco_peer) if rec.oco_peer is not None else None
        if peer is not None and peer.is_open:
            peer.oco_peer = None
            with contextlib.suppress(Rejected):
                self.cancel(st.spec.name, peer)

    def _trigger(self, st: _AccountState, rec: OrderRecord) -> None:
        inst = self.instruments[rec.symbol]
        self._cancel_peer(st, rec)  # frees the balance the two legs share
        self._release_core_lock(st, rec)
        st.waiting.pop(rec.order_id, None)
        rec.triggered = True
        rec.kind = "LIMIT" if rec.price is not None else "MARKET"
        rec.update_ms = self.clock.now_ms()
        self._notify(UserEvent("order", st.spec.name, rec.update_ms, rec, "TRIGGERED"))
        self._send_to_venue(st, inst, rec)
        if rec.status == REJECTED:
            # refused at trigger time: Binance reports such an order as expired
            rec.status = EXPIRED
            self._notify(UserEvent("order", st.spec.name, rec.update_ms, rec, "EXPIRED"))

    def _release_core_lock(self, st: _AccountState, rec: OrderRecord) -> None:
        if rec.lock is not None:
            ccy, amount = rec.lock
            st.account.unlock(ccy, amount)
            rec.lock = None

    def _send_to_venue(self, st: _AccountState, inst: Instrument, rec: OrderRecord) -> None:
        tif = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}.get(
            rec.tif, TimeInForce.GTC
        )
        if rec.kind == "MARKET":
            tif = TimeInForce.IOC if tif is TimeInForce.GTC else tif
        init = OrderInitialized(
            self.clock.now(),
            rec.venue_cid,
            inst.id,
            "exchange",
            rec.side,
            (OrderType.MARKET if rec.kind == "MARKET" else OrderType.LIMIT).value,
            rec.leaves,
            rec.price if rec.kind != "MARKET" else None,
            None,
            (TimeInForce.GTC if rec.kind == "MARKET" else tif).value,
            None,
            rec.post_only,
        )
        st.by_venue_cid[rec.venue_cid] = rec
        if rec.order_id not in st.orders:
            rec.status = "PENDING"
        st.venue.submit(Order(init))

    def cancel(self, name: str, rec: OrderRecord) -> OrderRecord:
        st = self.accounts[name]
        if not rec.is_open:
            raise Rejected("UNKNOWN_ORDER", "order is not open")
        if not rec.triggered:
            inst = self.instruments[rec.symbol]
            self._release_core_lock(st, rec)
            st.waiting.pop(rec.order_id, None)
            rec.status = CANCELED
            rec.update_ms = self.clock.now_ms()
            self._notify(UserEvent("order", name, rec.update_ms, rec, "CANCELED"))
            self._notify_balance(st, inst)
            return rec
        st.venue.cancel(rec.venue_cid)
        if rec.is_open:
            raise Rejected("UNKNOWN_ORDER", "the venue did not cancel the order")
        return rec

    # -- venue events -----------------------------------------------------------------------
    def _on_venue_event(self, name: str, ev: Event) -> None:
        st = self.accounts[name]
        cid = getattr(ev, "client_order_id", "")
        rec = st.by_venue_cid.get(cid)
        if rec is None:
            return
        inst = self.instruments[rec.symbol]
        now = self.clock.now_ms()
        rec.update_ms = now
        if isinstance(ev, OrderAccepted):
            if rec.status == "PENDING":
                rec.status = NEW
                self._register(st, rec)
                self._notify(UserEvent("order", name, now, rec, "NEW"))
                self._notify_balance(st, inst)
        elif isinstance(ev, OrderRejected):
            rec.status = REJECTED
            rec.reason = ev.reason
        elif isinstance(ev, OrderFilled):
            self._trade_seq += 1
            quote = fixed.mul(ev.last_px, ev.last_qty)
            fill = Fill(
                self._trade_seq,
                ev.last_px,
                ev.last_qty,
                quote,
                ev.fee,
                ev.fee_currency,
                ev.liquidity == "MAKER",
                now,
            )
            rec.fills.append(fill)
            rec.executed += ev.last_qty
            rec.quote_executed += quote
            rec.status = FILLED if rec.executed >= rec.qty else PARTIALLY_FILLED
            st.trades.append((rec, fill))
            self._cancel_peer(st, rec)
            self._notify(UserEvent("order", name, now, rec, "TRADE", fill))
            self._notify_balance(st, inst)
        elif isinstance(ev, OrderCanceled | OrderExpired):
            reason = getattr(ev, "reason", "")
            immediate = rec.kind == "MARKET" or reason.startswith(("IOC", "FOK", "not enough"))
            rec.status = EXPIRED if immediate or isinstance(ev, OrderExpired) else CANCELED
            rec.reason = reason
            self._notify(UserEvent("order", name, now, rec, rec.status))
            self._notify_balance(st, inst)

    def _notify_balance(self, st: _AccountState, inst: Instrument) -> None:
        now = self.clock.now_ms()
        self._notify(UserEvent("balance", st.spec.name, now, assets=(inst.base, inst.quote)))

    def _notify(self, event: UserEvent) -> None:
        for listener in list(self.user_listeners):
            listener(event)

    # -- observability ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accounts": {}, "symbols": {}}
        for name, st in self.accounts.items():
            out["accounts"][name] = {
                "balances": st.account.snapshot(),
                "open_orders": [r.order_id for r in st.orders.values() if r.is_open],
                "orders": len(st.orders),
                "fills": [
                    {
                        "order_id": r.order_id,
                        "client_id": r.client_id,
                        "symbol": r.symbol,
                        "side": "BUY" if r.side > 0 else "SELL",
                        "trade_id": f.trade_id,
                        "price": fixed.to_str(f.price),
                        "qty": fixed.to_str(f.qty),
                        "commission": fixed.to_str(f.commission),
                        "commission_asset": f.commission_asset,
                        "is_maker": f.is_maker,
                    }
                    for r, f in st.trades
                ],
                "venue_fills": [
                    {
                        "client_order_id": f.client_order_id,
                        "qty": fixed.to_str(f.last_qty),
                        "price": fixed.to_str(f.last_px),
                        "fee": fixed.to_str(f.fee),
                    }
                    for f in st.venue.fills_since(0)
                ],
            }
        for sym, s in self.symbols.items():
            book = s.book
            out["symbols"][sym] = {
                "last_update_id": book.update_id if book else None,
                "best_bid": fixed.to_str(b[0]) if book and (b := book.best_bid()) else None,
                "best_ask": fixed.to_str(a[0]) if book and (a := book.best_ask()) else None,
                "trades": len(s.trades),
                "bars": len(s.bars),
                "last_price": fixed.to_str(s.last_price) if s.last_price else None,
            }
        out["replay"] = {
            "position": self.replay.position,
            "total": len(self.data.events),
            "finished": self.replay.finished,
            "speed": self.replay.speed,
        }
        return out


def _reject_code(reason: str) -> str:
    low = reason.lower()
    if "insufficient" in low or "no reference price" in low:
        return "BALANCE"
    if "post-only" in low:
        return "POST_ONLY"
    if "duplicate" in low:
        return "DUPLICATE"
    return "FILTER"
