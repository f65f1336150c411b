"""The Alpaca dialect: the trading API under ``/v2`` (account, orders, positions,
clock, calendar, assets), the market-data API (``/v2/stocks/...``) and the
``trade_updates`` stream under ``/stream``, as far as alpaca-py's
``TradingClient``, ``StockHistoricalDataClient`` and ``TradingStream`` use them.

The exchange's clock is the replayed day's clock (``ExchangeClock`` in replay
mode), so market hours are those of the recorded day (09:30-16:00 New York):

* outside them the venue receives no bars, so nothing fills;
* an order sent while the market is closed is ``accepted`` and held until the
  open (Alpaca queues such orders), unless it is a ``day``/``gtc`` limit with
  ``extended_hours`` - which is then held too, since the replay feeds the venue
  regular-hours bars only;
* ``day`` orders still open at the close expire.

Requests authenticate with ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``.
Errors are Alpaca's bodies ``{"code": ..., "message": ...}``: 401/403 for
credentials, 403 for insufficient buying power or quantity, 422 for invalid
parameters, 404 for unknown orders and positions, 429 for rate limits.

Accounts are cash accounts (no short selling); fees are zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import json
import logging
import time
import uuid
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from aiohttp import WSMsgType, web

from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.venues.exchange.core import (
    ExchangeCore,
    OrderRecord,
    OrderRequest,
    Rejected,
    UserEvent,
)
from tradepilot.venues.exchange.faults import FaultInjector

__all__ = ["AlpacaDialect", "AlpacaError"]

log = logging.getLogger("tradepilot.exchange.alpaca")
NY = ZoneInfo("America/New_York")
OPEN = dt.time(9, 30)
CLOSE = dt.time(16, 0)
RATE_LIMIT = 200  # API calls per minute per account
_NS = uuid.UUID("6f0d8a52-3c1e-4b59-9d7e-5b1f3c2a9e11")


class AlpacaError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return web.json_response({"code": self.code, "message": self.message}, status=self.status)


def _unprocessable(message: str) -> AlpacaError:
    return AlpacaError(422, 40010001, message)


def _iso(ns: int) -> str:
    t = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _iso_ms(ms: int) -> str:
    return _iso(ms * 1_000_000)


def _s(raw: int | None) -> str | None:
    return None if raw is None else fixed.to_str(raw)


def _parse_time(text: str) -> int:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)


class AlpacaDialect:
    """Routes and the trade_updates stream of the Alpaca dialect."""

    def __init__(self, core: ExchangeCore, faults: FaultInjector) -> None:
        self.core = core
        self.faults = faults
        self.conns: set[_StreamConn] = set()
        self.held: list[tuple[str, OrderRequest, OrderRecord | None]] = []
        self.legs: dict[tuple[str, int], list[OrderRequest]] = {}  # bracket legs by parent
        self.ids: dict[str, tuple[str, int]] = {}  # order uuid -> (account, order id)
        self.refused: dict[str, OrderRecord] = {}  # held orders refused at the open
        self._was_open = False
        self.rate_limit = RATE_LIMIT
        self.calls: dict[tuple[str, int], int] = {}
        self.days = sorted({self._ny(b.ts_open).date() for b in self._bars()})
        core.venue_gate = self.is_open_at
        core.market_listeners.append(self._on_market)
        core.user_listeners.append(self._on_user)

    def _bars(self) -> list[Bar]:
        return [e for e in self.core.data.events if isinstance(e, Bar)]

    @staticmethod
    def _ny(ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / 1e9, NY)

    def is_open_at(self, ns: int) -> bool:
        t = self._ny(ns)
        return t.weekday() < 5 and OPEN <= t.time() < CLOSE and t.date() in self.days

    # -- wiring ---------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v2/account", self.account)
        r.add_post("/v2/orders", self.new_order)
        r.add_get("/v2/orders", self.list_orders)
        r.add_delete("/v2/orders", self.cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self.by_client_id)
        r.add_get("/v2/orders/{id}", self.get_order)
        r.add_delete("/v2/orders/{id}", self.cancel_order)
        r.add_get("/v2/positions", self.positions)
        r.add_delete("/v2/positions", self.close_all)
        r.add_get("/v2/positions/{symbol}", self.position)
        r.add_delete("/v2/positions/{symbol}", self.close_position)
        r.add_get("/v2/clock", self.clock)
        r.add_get("/v2/calendar", self.calendar)
        r.add_get("/v2/assets", self.assets)
        r.add_get("/v2/assets/{symbol}", self.asset)
        r.add_get("/v2/stocks/bars", self.bars)
        r.add_get("/v2/stocks/{symbol}/bars", self.bars)
        r.add_get("/v2/stocks/quotes/latest", self.latest_quotes)
        r.add_get("/v2/stocks/trades/latest", self.latest_trades)
        r.add_get("/v2/stocks/{symbol}/quotes/latest", self.latest_quotes)
        r.add_get("/v2/stocks/{symbol}/trades/latest", self.latest_trades)
        r.add_get("/stream", self.stream)

    def _auth(self, request: web.Request) -> str:
        key = request.headers.get("APCA-API-KEY-ID", "")
        secret = request.headers.get("APCA-API-SECRET-KEY", "")
        state = self.core.account_for_key(key)
        if state is None or not secret:
            raise AlpacaError(401, 40110000, "request is not authorized")
        if not hmac.compare_digest(secret, state.spec.secret):
            raise AlpacaError(403, 40310000, "forbidden.")
        self._count(state.spec.name)
        return state.spec.name

    def _count(self, name: str) -> None:
        """Alpaca's limit: ``rate_limit`` API calls per minute per account, then 429."""
        minute = int(time.time() // 60)
        key = (name, minute)
        used = self.calls.get(key, 0) + 1
        self.calls[key] = used
        if len(self.calls) > 1000:
            self.calls = {k: v for k, v in self.calls.items() if k[1] >= minute - 1}
        if used > self.rate_limit:
            raise AlpacaError(429, 42910000, "rate limit exceeded")

    # -- clock ----------------------------------------------------------------------------
    def _now(self) -> int:
        return self.core.clock.now()

    def _next_open_close(self, ns: int) -> tuple[dt.datetime, dt.datetime]:
        now = self._ny(ns)
        day = now.date()
        days = [d for d in self.days if d >= day] or [day]
        for d in days + [days[-1] + dt.timedelta(days=i) for i in range(1, 8)]:
            if d.weekday() >= 5:
                continue
            o = dt.datetime.combine(d, OPEN, NY)
            c = dt.datetime.combine(d, CLOSE, NY)
            if c > now:
                return (o if o > now else self._next_day_open(d)), c
        raise AssertionError("no next session")

    def _next_day_open(self, d: dt.date) -> dt.datetime:
        n = d + dt.timedelta(days=1)
        while n.weekday() >= 5:
            n += dt.timedelta(days=1)
        return dt.datetime.combine(n, OPEN, NY)

    async def clock(self, request: web.Request) -> web.Response:
        self._auth(request)
        now = self._now()
        nxt_open, nxt_close = self._next_open_close(now)
        return web.json_response(
            {
                "timestamp": self._ny(now).isoformat(),
                "is_open": self.is_open_at(now),
                "next_open": nxt_open.isoformat(),
                "next_close": nxt_close.isoformat(),
            }
        )

    async def calendar(self, request: web.Request) -> web.Response:
        self._auth(request)
        start = request.query.get("start")
        end = request.query.get("end")
        out = []
        for d in self.days:
            if start and d.isoformat() < start[:10]:
                continue
            if end and d.isoformat() > end[:10]:
                continue
            out.append(
                {
                    "date": d.isoformat(),
                    "open": "09:30",
                    "close": "16:00",
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": (d + dt.timedelta(days=2)).isoformat(),
                }
            )
        return web.json_response(out)

    # -- assets -----------------------------------------------------------------------------
    def _asset(self, symbol: str) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid5(_NS, f"asset:{symbol}")),
            "class": "us_equity",
            "exchange": "ARCA" if symbol in ("SPY", "IWM", "EEM", "QQQ") else "NYSE",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": False,
            "shortable": False,
            "easy_to_borrow": False,
            "fractionable": False,
            "min_order_size": "1",
            "min_trade_increment": "1",
            "price_increment": "0.01",
            "attributes": [],
        }

    async def assets(self, request: web.Request) -> web.Response:
        self._auth(request)
        return web.json_response([self._asset(s) for s in sorted(self.core.instruments)])

    async def asset(self, request: web.Request) -> web.Response:
        self._auth(request)
        sym = request.match_info["symbol"].upper()
        if sym not in self.core.instruments:
            raise AlpacaError(404, 40410000, "asset not found")
        return web.json_response(self._asset(sym))

    # -- account and positions -----------------------------------------------------------------
    def _mark(self, symbol: str) -> int:
        st = self.core.symbols[symbol]
        return st.last_price or 0

    def _positions(self, name: str) -> list[dict[str, Any]]:
        st = self.core.accounts[name]
        out = []
        for sym, inst in sorted(self.core.instruments.items()):
            qty = st.account.total.get(inst.base, 0)
            if qty <= 0:
                continue
            pos = st.venue.positions.get(inst.id)
            avg = pos.avg_px if pos is not None and pos.avg_px is not None else 0
            mark = self._mark(sym)
            cost = fixed.mul(avg, qty)
            value = fixed.mul(mark, qty)
            free = st.account.free(inst.base)
            out.append(
                {
                    "asset_id": str(uuid.uuid5(_NS, f"asset:{sym}")),
                    "symbol": sym,
                    "exchange": self._asset(sym)["exchange"],
                    "asset_class": "us_equity",
                    "asset_marginable": False,
                    "avg_entry_price": fixed.to_str(avg),
                    "qty": fixed.to_str(qty),
                    "qty_available": fixed.to_str(free),
                    "side": "long",
                    "market_value": fixed.to_str(value),
                    "cost_basis": fixed.to_str(cost),
                    "unrealized_pl": fixed.to_str(value - cost),
                    "unrealized_plpc": fixed.to_str(fixed.div(value - cost, cost) if cost else 0),
                    "unrealized_intraday_pl": fixed.to_str(value - cost),
                    "unrealized_intraday_plpc": "0",
                    "current_price": fixed.to_str(mark),
                    "lastday_price": fixed.to_str(mark),
                    "change_today": "0",
                }
            )
        return out

    async def account(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        st = self.core.accounts[name]
        cash = st.account.total.get("USD", 0)
        free = st.account.free("USD")
        longs = sum(fixed.to_raw(p["market_value"]) for p in self._positions(name))
        equity = cash + longs
        return web.json_response(
            {
                "id": str(uuid.uuid5(_NS, f"account:{name}")),
                "account_number": f"PA{abs(hash(name)) % 10**10:010d}",
                "status": "ACTIVE",
                "crypto_status": "INACTIVE",
                "currency": "USD",
                "buying_power": fixed.to_str(free),
                "regt_buying_power": fixed.to_str(free),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": fixed.to_str(free),
                "cash": fixed.to_str(cash),
                "accrued_fees": "0",
                "portfolio_value": fixed.to_str(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2013-01-01T00:00:00Z",
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": False,
                "equity": fixed.to_str(equity),
                "last_equity": fixed.to_str(equity),
                "long_market_value": fixed.to_str(longs),
                "short_market_value": "0",
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
            }
        )

    async def positions(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        return web.json_response(self._positions(name))

    def _find_position(self, name: str, symbol: str) -> dict[str, Any]:
        for p in self._positions(name):
            if p["symbol"] == symbol.upper():
                return p
        raise AlpacaError(404, 40410000, "position does not exist")

    async def position(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        return web.json_response(self._find_position(name, request.match_info["symbol"]))

    def _close(self, name: str, symbol: str) -> OrderRecord:
        pos = self._find_position(name, symbol)
        # cancel open sell orders first: they hold the shares
        for rec in list(self.core.accounts[name].orders.values()):
            if rec.is_open and rec.symbol == pos["symbol"] and rec.side < 0:
                with contextlib.suppress(Rejected):
                    self.core.cancel(name, rec)
        req = OrderRequest(
            symbol=pos["symbol"],
            side=-1,
            kind="MARKET",
            qty=fixed.to_raw(pos["qty"]),
            tif="day",
            dialect_type="market",
        )
        return self._submit(name, req)

    async def close_position(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        rec = self._close(name, request.match_info["symbol"])
        return web.json_response(self.order_json(rec))

    async def close_all(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        out = []
        for pos in self._positions(name):
            rec = self._close(name, pos["symbol"])
            out.append({"symbol": pos["symbol"], "status": 200, "body": self.order_json(rec)})
        return web.json_response(out, status=207)

    # -- orders ---------------------------------------------------------------------------------
    def _uuid(self, rec: OrderRecord) -> str:
        oid = str(uuid.uuid5(_NS, f"order:{rec.account}:{rec.order_id}"))
        self.ids[oid] = (rec.account, rec.order_id)
        return oid

    _STATUS: ClassVar[dict[str, str]] = {
        "NEW": "new",
        "PARTIALLY_FILLED": "partially_filled",
        "FILLED": "filled",
        "CANCELED": "canceled",
        "EXPIRED": "expired",
        "REJECTED": "rejected",
    }

    def order_json(self, rec: OrderRecord, nested: bool = True) -> dict[str, Any]:
        status = rec.extra.get("alpaca_status") or self._STATUS.get(rec.status, "new")
        if status == "new" and not rec.triggered and rec.extra.get("leg"):
            status = "held"
        avg = fixed.div(rec.quote_executed, rec.executed) if rec.executed else None
        created = _iso_ms(rec.time_ms)
        updated = _iso_ms(rec.update_ms)
        legs = None
        if nested and rec.extra.get("legs"):
            st = self.core.accounts[rec.account]
            legs = [self.order_json(st.orders[i], False) for i in rec.extra["legs"]]
        return {
            "id": self._uuid(rec),
            "client_order_id": rec.client_id,
            "created_at": created,
            "updated_at": updated,
            "submitted_at": created,
            "filled_at": updated if rec.status == "FILLED" else None,
            "expired_at": updated if rec.status == "EXPIRED" else None,
            "canceled_at": updated if rec.status == "CANCELED" else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(_NS, f"asset:{rec.symbol}")),
            "symbol": rec.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": fixed.to_str(rec.qty),
            "filled_qty": fixed.to_str(rec.executed),
            "filled_avg_price": _s(avg),
            "order_class": rec.extra.get("order_class", "simple"),
            "order_type": rec.dialect_type,
            "type": rec.dialect_type,
            "side": "buy" if rec.side > 0 else "sell",
            "time_in_force": rec.extra.get("alpaca_tif", rec.tif.lower()),
            "limit_price": _s(rec.price),
            "stop_price": _s(rec.stop_price),
            "status": status,
            "extended_hours": bool(rec.extra.get("extended_hours", False)),
            "legs": legs,
            "trail_percent": _s(rec.trail_percent),
            "trail_price": _s(rec.trail_price),
            "hwm": _s(rec.hwm),
            "position_intent": "buy_to_open" if rec.side > 0 else "sell_to_close",
        }

    def _held_json(self, name: str, req: OrderRequest, oid: int) -> OrderRecord:
        now = self.core.clock.now_ms()
        rec = OrderRecord(
            name, oid, req.client_id, req.symbol, req.side, req.kind, req.dialect_type, req.tif,
            req.qty, req.price, req.stop_price, now, "", update_ms=now,
            trail_price=req.trail_price, trail_percent=req.trail_percent,
            extra={**req.extra, "alpaca_status": "accepted"},
        )  # fmt: skip
        return rec

    def _parse(self, body: dict[str, Any]) -> OrderRequest:
        def num(name: str) -> int | None:
            v = body.get(name)
            if v is None or v == "":
                return None
            try:
                raw = fixed.to_raw(str(v))
            except ValueError:
                raise _unprocessable(f"invalid {name}") from None
            if raw <= 0:
                raise _unprocessable(f"{name} must be > 0")
            return raw

        symbol = str(body.get("symbol") or "").upper()
        if not symbol:
            raise _unprocessable("symbol is required")
        inst = self.core.instruments.get(symbol)
        if inst is None:
            raise _unprocessable(f"asset {symbol} not found")
        side = str(body.get("side") or "").lower()
        if side not in ("buy", "sell"):
            raise _unprocessable("invalid side")
        otype = str(body.get("type") or body.get("order_type") or "").lower()
        if otype not in ("market", "limit", "stop", "stop_limit", "trailing_stop"):
            raise _unprocessable("invalid order type")
        tif = str(body.get("time_in_force") or "").lower()
        if tif not in ("day", "gtc", "ioc", "fok", "opg", "cls"):
            raise _unprocessable("invalid time_in_force")
        if tif in ("opg", "cls"):
            raise _unprocessable(f"time_in_force {tif} is not supported by this exchange")
        qty = num("qty")
        if qty is None:
            if body.get("notional") is not None:
                raise _unprocessable("notional orders are not supported (fractional shares)")
            raise _unprocessable("qty is required")
        if qty % inst.lot_size:
            raise _unprocessable("fractional orders are not supported for this asset")
        limit = num("limit_price")
        stop = num("stop_price")
        trail_price = num("trail_price")
        trail_percent = num("trail_percent")
        if otype in ("limit", "stop_limit") and limit is None:
            raise _unprocessable("limit_price is required")
        if otype in ("stop", "stop_limit") and stop is None:
            raise _unprocessable("stop_price is required")
        if otype == "trailing_stop" and (trail_price is None) == (trail_percent is None):
            raise _unprocessable("exactly one of trail_price and trail_percent is required")
        for label, px in (("limit_price", limit), ("stop_price", stop)):
            if px is not None and px % inst.tick_size:
                raise _unprocessable(
                    f"invalid {label} {fixed.to_str(px)}. sub-penny increment does not fulfill "
                    "minimum pricing criteria"
                )
        kind = {
            "market": "MARKET",
            "limit": "LIMIT",
            "stop": "STOP_MARKET",
            "stop_limit": "STOP_LIMIT",
            "trailing_stop": "STOP_MARKET",
        }[otype]
        tif_core = {"day": "GTC", "gtc": "GTC", "ioc": "IOC", "fok": "FOK"}[tif]
        cid = str(body.get("client_order_id") or "")
        if len(cid) > 128:
            raise _unprocessable("client_order_id must be no more than 128 characters")
        req = OrderRequest(
            symbol=symbol,
            side=1 if side == "buy" else -1,
            kind=kind,
            qty=qty,
            price=limit,
            stop_price=stop,
            trigger_above=side == "buy",
            trail_price=trail_price,
            trail_percent=trail_percent,
            tif=tif_core,
            client_id=cid or str(uuid.uuid4()),
            dialect_type=otype,
            extra={"extended_hours": bool(body.get("extended_hours", False)), "alpaca_tif": tif},
        )
        return req

    def _submit(self, name: str, req: OrderRequest) -> OrderRecord:
        """Submit now, or hold until the open if the market is closed."""
        if req.client_id:
            prev = self.core.accounts[name].by_client.get(req.client_id)
            if prev is not None or any(h[1].client_id == req.client_id for h in self.held):
                raise _unprocessable("client_order_id must be unique")
        if not self.is_open_at(self._now()):
            if req.extra.get("alpaca_tif") in ("ioc", "fok"):
                raise _unprocessable(
                    "ioc and fok orders are only accepted while the market is open"
                )
            self._check_buying_power(name, req)
            req.order_id = self.core.reserve_order_id()  # kept when it is released
            rec = self._held_json(name, req, req.order_id)
            self.held.append((name, req, rec))
            return rec
        return self._place(name, req)

    def _check_buying_power(self, name: str, req: OrderRequest) -> None:
        st = self.core.accounts[name]
        inst = self.core.instruments[req.symbol]
        if req.side > 0:
            px = req.price or req.stop_price or self._mark(req.symbol)
            if fixed.mul(px, req.qty) > st.account.free("USD"):
                raise AlpacaError(403, 40310000, "insufficient buying power")
        elif req.qty > st.account.free(inst.base):
            raise AlpacaError(403, 40310000, "insufficient qty available for order")

    def _place(self, name: str, req: OrderRequest) -> OrderRecord:
        self._check_buying_power(name, req)
        try:
            rec = self.core.submit(name, req)
        except Rejected as exc:
            if exc.code == "BALANCE":
                msg = "insufficient buying power" if req.side > 0 else "insufficient qty available"
                raise AlpacaError(403, 40310000, msg) from None
            if exc.code == "DUPLICATE":
                raise _unprocessable("client_order_id must be unique") from None
            if exc.code == "TRIGGER":
                raise _unprocessable("stop price would trigger immediately") from None
            raise _unprocessable(exc.message) from None
        rec.extra.pop("alpaca_status", None)
        return rec

    async def new_order(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise _unprocessable("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _unprocessable("request body must be an object")
        order_class = str(body.get("order_class") or "simple").lower()
        if order_class not in ("simple", "bracket", "oco"):
            raise _unprocessable(f"order_class {order_class} is not supported")
        req = self._parse(body)
        if order_class == "simple":
            return web.json_response(self.order_json(self._submit(name, req)))
        tp = body.get("take_profit") or {}
        sl = body.get("stop_loss") or {}
        if "limit_price" not in tp or "stop_price" not in sl:
            raise _unprocessable("take_profit.limit_price and stop_loss.stop_price are required")
        # a bracket's exits close the entry; an oco's two legs are both exits already
        exit_side = "sell" if (req.side > 0) == (order_class == "bracket") else "buy"
        common = {"symbol": req.symbol, "qty": fixed.to_str(req.qty), "side": exit_side}
        common["time_in_force"] = req.extra["alpaca_tif"]
        tp_req = self._parse({**common, "type": "limit", "limit_price": tp["limit_price"]})
        sl_body = {**common, "type": "stop", "stop_price": sl["stop_price"]}
        if sl.get("limit_price") is not None:
            sl_body = {**sl_body, "type": "stop_limit", "limit_price": sl["limit_price"]}
        sl_req = self._parse(sl_body)
        sl_req.trigger_above = exit_side == "buy"
        if order_class == "oco":
            if req.dialect_type != "limit" or req.side > 0:
                raise _unprocessable("an oco order is a sell limit with a stop_loss")
            if not self.is_open_at(self._now()):
                raise _unprocessable("oco orders are only accepted while the market is open")
            parent = self._place(name, tp_req)
            parent.extra["order_class"] = "oco"
            sl_req.lock = False
            sl_req.oco_peer = parent.order_id
            sl_req.extra["leg"] = True
            leg = self._place(name, sl_req)
            leg.extra["order_class"] = "oco"
            parent.extra["legs"] = [leg.order_id]
            return web.json_response(self.order_json(parent))
        parent = self._submit(name, req)
        parent.extra["order_class"] = "bracket"
        self.legs[(name, parent.order_id)] = [tp_req, sl_req]
        return web.json_response(self.order_json(parent))

    def _release_legs(self, name: str, parent: OrderRecord) -> None:
        legs = self.legs.pop((name, parent.order_id), None)
        if not legs:
            return
        tp_req, sl_req = legs
        tp_req.qty = sl_req.qty = parent.executed
        tp_req.extra["leg"] = sl_req.extra["leg"] = True
        try:
            tp = self.core.submit(name, tp_req)
            sl_req.lock = False
            sl_req.oco_peer = tp.order_id
            sl = self.core.submit(name, sl_req)
        except Rejected as exc:
            log.warning("bracket legs of order %s refused: %s", parent.order_id, exc.message)
            return
        for leg in (tp, sl):
            leg.extra["order_class"] = "bracket"
        parent.extra["legs"] = [tp.order_id, sl.order_id]

    def _lookup(self, name: str, oid: str) -> OrderRecord:
        ref = self.ids.get(oid)
        if ref is not None and ref[0] == name:
            rec = self.core.accounts[name].orders.get(ref[1])
            if rec is not None:
                return rec
        for acct, _req, held in self.held:
            if acct == name and held is not None and self._uuid(held) == oid:
                return held
        refused = self.refused.get(oid)
        if refused is not None and refused.account == name:
            return refused
        raise AlpacaError(404, 40410000, "order not found")

    async def get_order(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        rec = self._lookup(name, request.match_info["id"])
        return web.json_response(self.order_json(rec, request.query.get("nested") != "false"))

    async def by_client_id(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        cid = request.query.get("client_order_id", "")
        rec = self.core.accounts[name].by_client.get(cid)
        if rec is None:
            held = [h for a, r, h in self.held if a == name and r.client_id == cid and h]
            held += [r for r in self.refused.values() if r.account == name and r.client_id == cid]
            if not held:
                raise AlpacaError(404, 40410000, "order not found")
            rec = held[0]
        return web.json_response(self.order_json(rec))

    def _cancel(self, name: str, rec: OrderRecord) -> None:
        for i, (acct, _req, held) in enumerate(self.held):
            if acct == name and held is rec:
                del self.held[i]
                rec.status = "CANCELED"
                rec.extra.pop("alpaca_status", None)
                rec.update_ms = self.core.clock.now_ms()
                return
        if not rec.is_open:
            raise AlpacaError(
                422, 42210000, f'order is already in "{self.order_json(rec)["status"]}" state'
            )
        self.legs.pop((name, rec.order_id), None)
        for leg_id in rec.extra.get("legs", []):
            leg = self.core.accounts[name].orders.get(leg_id)
            if leg is not None and leg.is_open:
                with contextlib.suppress(Rejected):
                    self.core.cancel(name, leg)
        try:
            self.core.cancel(name, rec)
        except Rejected:
            raise AlpacaError(422, 42210000, "order is not cancelable") from None

    async def cancel_order(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        rec = self._lookup(name, request.match_info["id"])
        self._cancel(name, rec)
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        out = []
        recs = [r for r in self.core.accounts[name].orders.values() if r.is_open]
        recs += [h for a, _r, h in self.held if a == name and h is not None]
        for rec in recs:
            if rec.is_open or rec.extra.get("alpaca_status") == "accepted":
                with contextlib.suppress(AlpacaError):
                    self._cancel(name, rec)
                out.append({"id": self._uuid(rec), "status": 200, "body": self.order_json(rec)})
        return web.json_response(out, status=207)

    async def list_orders(self, request: web.Request) -> web.Response:
        name = self._auth(request)
        status = request.query.get("status", "open")
        limit = int(request.query.get("limit", "50") or 50)
        symbols = {s.upper() for s in request.query.get("symbols", "").split(",") if s}
        recs = list(self.core.accounts[name].orders.values())
        recs += [h for a, _r, h in self.held if a == name and h is not None]
        held_ids = {id(h) for _a, _r, h in self.held}

        def is_open(r: OrderRecord) -> bool:
            return r.is_open or id(r) in held_ids

        if status == "open":
            recs = [r for r in recs if is_open(r)]
        elif status == "closed":
            recs = [r for r in recs if not is_open(r)]
        if symbols:
            recs = [r for r in recs if r.symbol in symbols]
        recs.sort(
            key=lambda r: r.order_id, reverse=request.query.get("direction", "desc") == "desc"
        )
        nested = request.query.get("nested") == "true"
        return web.json_response([self.order_json(r, nested) for r in recs[:limit]])

    # -- market data ------------------------------------------------------------------------------
    def _symbols(self, request: web.Request) -> list[str]:
        one = request.match_info.get("symbol")
        names = [one] if one else request.query.get("symbols", "").split(",")
        out = [s.upper() for s in names if s]
        if not out:
            raise AlpacaError(400, 40010001, "missing symbols")
        for s in out:
            if s not in self.core.instruments:
                raise AlpacaError(400, 40010001, f"invalid symbol: {s}")
        return out

    @staticmethod
    def _bar_json(b: Bar) -> dict[str, Any]:
        vol = fixed.to_decimal(b.volume)
        return {
            "t": _iso(b.ts_open).replace(".000000Z", "Z"),
            "o": float(fixed.to_decimal(b.open)),
            "h": float(fixed.to_decimal(b.high)),
            "l": float(fixed.to_decimal(b.low)),
            "c": float(fixed.to_decimal(b.close)),
            "v": int(vol),
            "n": 0,
            "vw": float(fixed.to_decimal((b.open + b.high + b.low + b.close) // 4)),
        }

    async def bars(self, request: web.Request) -> web.Response:
        self._auth(request)
        symbols = self._symbols(request)
        tf = request.query.get("timeframe", "1Min")
        if tf not in ("1Min", "1T", "1min"):
            raise AlpacaError(422, 42210000, f"timeframe {tf} is not supported (1Min only)")
        start = request.query.get("start")
        end = request.query.get("end")
        limit = int(request.query.get("limit") or 1000)
        start_ns = _parse_time(start) if start else None
        end_ns = _parse_time(end) if end else None
        now = self._now()
        out: dict[str, list[dict[str, Any]]] = {}
        for sym in symbols:
            history = self.core.data.history.get(sym, [])
            seen = [b for _ms, b in self.core.symbols[sym].bars]
            rows = [
                b
                for b in history + seen
                if b.ts <= now
                and (start_ns is None or b.ts_open >= start_ns)
                and (end_ns is None or b.ts_open <= end_ns)
            ]
            out[sym] = [self._bar_json(b) for b in rows[:limit]]
        single = request.match_info.get("symbol")
        if single:
            return web.json_response(
                {"bars": out[single.upper()], "symbol": single.upper(), "next_page_token": None}
            )
        return web.json_response({"bars": out, "next_page_token": None})

    def _last_bar(self, sym: str) -> Bar:
        seen = self.core.symbols[sym].bars
        if seen:
            return seen[-1][1]
        history = self.core.data.history.get(sym)
        if history:
            return history[-1]
        raise AlpacaError(404, 40410000, f"no data for {sym} yet")

    async def latest_quotes(self, request: web.Request) -> web.Response:
        self._auth(request)
        out = {}
        for sym in self._symbols(request):
            b = self._last_bar(sym)
            px = float(fixed.to_decimal(b.close))
            out[sym] = {
                "t": _iso(b.ts), "ax": "V", "ap": round(px + 0.01, 2), "as": 1,
                "bx": "V", "bp": round(px - 0.01, 2), "bs": 1, "c": ["R"], "z": "B",
            }  # fmt: skip
        return web.json_response({"quotes": out})

    async def latest_trades(self, request: web.Request) -> web.Response:
        self._auth(request)
        out = {}
        for sym in self._symbols(request):
            b = self._last_bar(sym)
            out[sym] = {
                "t": _iso(b.ts), "x": "V", "p": float(fixed.to_decimal(b.close)), "s": 100,
                "c": ["@"], "i": b.ts // 1_000_000, "z": "B",
            }  # fmt: skip
        return web.json_response({"trades": out})

    # -- market hours ----------------------------------------------------------------------------
    def _on_market(self, item: Any, ms: int) -> None:
        is_open = self.is_open_at(self._now())
        if is_open and not self._was_open:
            held, self.held = self.held, []
            for name, req, rec in held:
                try:
                    placed = self._place(name, req)
                except AlpacaError as exc:
                    if rec is not None:
                        rec.status = "REJECTED"
                        rec.extra.pop("alpaca_status", None)
                        rec.reason = exc.message
                        self.refused[self._uuid(rec)] = rec
                        log.info("held order %s refused at the open: %s", rec.order_id, exc.message)
                    continue
                if rec is not None:
                    placed.extra.setdefault("order_class", rec.extra.get("order_class", "simple"))
        if not is_open and self._was_open:
            for st in self.core.accounts.values():
                for r in list(st.orders.values()):
                    if r.is_open and r.extra.get("alpaca_tif") in ("day", "ioc", "fok"):
                        with contextlib.suppress(Rejected):
                            self.core.cancel(st.spec.name, r)
                        r.status = "EXPIRED"
                        self._push(r, "expired")
        self._was_open = is_open

    # -- trade_updates stream ----------------------------------------------------------------
    _EVENTS: ClassVar[dict[str, str]] = {
        "NEW": "new",
        "CANCELED": "canceled",
        "EXPIRED": "expired",
        "REJECTED": "rejected",
    }

    def _on_user(self, ev: UserEvent) -> None:
        rec = ev.record
        if ev.kind != "order" or rec is None:
            return
        if ev.exec_type == "TRADE" and rec.status == "FILLED":
            self._release_legs(ev.account, rec)
        if ev.exec_type == "TRADE":
            event = "fill" if rec.status == "FILLED" else "partial_fill"
        else:
            event = self._EVENTS.get(ev.exec_type, "")
        if event:
            self._push(rec, event, ev.fill)

    def _push(self, rec: OrderRecord, event: str, fill: Any = None) -> None:
        targets = [c for c in self.conns if c.account == rec.account and c.listening]
        if not targets:
            return
        inst = self.core.instruments[rec.symbol]
        data: dict[str, Any] = {
            "event": event,
            "order": self.order_json(rec),
            "timestamp": _iso(self._now()),
        }
        if fill is not None:
            data.update(
                {
                    "execution_id": str(uuid.uuid5(_NS, f"fill:{rec.account}:{fill.trade_id}")),
                    "price": fixed.to_str(fill.price),
                    "qty": fixed.to_str(fill.qty),
                    "position_qty": fixed.to_str(
                        self.core.accounts[rec.account].account.total.get(inst.base, 0)
                    ),
                }
            )
        text = json.dumps({"stream": "trade_updates", "data": data})
        rule = self.faults.on_user_event()
        for conn in targets:
            if rule is not None and rule.kind == "duplicate_event":
                conn.queue.put_nowait(text)
            if rule is not None and rule.kind == "delayed_fill":
                asyncio.get_running_loop().call_later(rule.delay_s, conn.queue.put_nowait, text)
                continue
            conn.queue.put_nowait(text)

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, compress=False)
        await ws.prepare(request)
        conn = _StreamConn(ws)
        self.conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    self._on_stream_message(conn, json.loads(msg.data))
                except (ValueError, AttributeError, TypeError):
                    conn.send({"stream": "listening", "data": {"error": "invalid syntax"}})
        finally:
            self.conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    def _on_stream_message(self, conn: _StreamConn, msg: dict[str, Any]) -> None:
        action = msg.get("action")
        data = msg.get("data") or {}
        if action in ("auth", "authenticate"):
            key = data.get("key_id") or msg.get("key")
            secret = data.get("secret_key") or msg.get("secret")
            state = self.core.account_for_key(str(key))
            if state is None or secret != state.spec.secret:
                conn.send(
                    {
                        "stream": "authorization",
                        "data": {"status": "unauthorized", "action": "authenticate"},
                    }
                )
                return
            conn.account = state.spec.name
            conn.send(
                {
                    "stream": "authorization",
                    "data": {"status": "authorized", "action": "authenticate"},
                }
            )
        elif action == "listen":
            if conn.account is None:
                conn.send(
                    {
                        "stream": "authorization",
                        "data": {"status": "unauthorized", "action": "listen"},
                    }
                )
                return
            streams = [s for s in data.get("streams", []) if s == "trade_updates"]
            conn.listening = bool(streams)
            conn.send({"stream": "listening", "data": {"streams": streams}})

    async def _writer(self, conn: _StreamConn) -> None:
        while True:
            text = await conn.queue.get()
            rule = self.faults.on_ws_message("user")
            if rule is not None and rule.kind == "ws_disconnect":
                await conn.ws.close(code=1001, message=b"fault: disconnect")
                return
            if rule is not None and rule.kind == "ws_stall":
                await asyncio.sleep(rule.duration_s)
            try:
                await conn.ws.send_bytes(text.encode())
            except (ConnectionError, RuntimeError):
                return


class _StreamConn:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.account: str | None = None
        self.listening = False
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def send(self, payload: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(payload))
