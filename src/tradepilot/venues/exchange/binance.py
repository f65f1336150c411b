"""The Binance spot dialect: the REST API under ``/api/v3``, market streams under
``/ws`` and ``/stream``, and the WebSocket API's user-data subscription under
``/ws-api/v3``, as far as ccxt's ``binance`` and ``ccxt.pro.binance`` use them.

Behaviour follows Binance's documentation where it is observable by a client:

* Signed endpoints need ``X-MBX-APIKEY`` (-2014 if malformed or missing, -2015 if
  unknown), ``timestamp`` within ``recvWindow`` (default 5000 ms, at most 60000;
  at most 1000 ms ahead of the server; else -1021) and an HMAC-SHA256
  ``signature`` of the query string followed by the body (-1022).
* Every request has a weight; the used weight of the current minute is returned
  in ``X-MBX-USED-WEIGHT-1M``. Past the limit (6000) the answer is HTTP 429
  (-1003) with ``Retry-After``; a client that keeps going after 429s is banned
  with HTTP 418.
* Orders are checked against the symbol's filters (PRICE_FILTER, LOT_SIZE,
  NOTIONAL, PERCENT_PRICE_BY_SIDE, MAX_NUM_ORDERS) and refused with -1013
  ``Filter failure: <NAME>``; refusals never change the account.
* ``newClientOrderId`` must be unique among the account's open orders
  (-2010 ``Duplicate order sent.``).
* Fees are charged in the quote asset (the simulated venue's rule; Binance
  charges a buyer in the base asset unless BNB pays the fee).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import WSMsgType, web

from tradepilot.model import fixed
from tradepilot.model.data import BookDeltas, BookSnapshot, MarketData, QuoteTick, TradeTick
from tradepilot.model.instrument import Instrument
from tradepilot.venues.exchange.auth import binance_signature, verify_binance
from tradepilot.venues.exchange.core import (
    ExchangeCore,
    OrderRecord,
    OrderRequest,
    Rejected,
    UserEvent,
)
from tradepilot.venues.exchange.faults import FaultInjector

__all__ = ["BinanceDialect", "BinanceError"]

log = logging.getLogger("tradepilot.exchange.binance")

_encode = msgspec.json.Encoder().encode
WEIGHT_LIMIT = 6000
RAW_BODY = web.RequestKey("raw_body", str)
WEIGHT_HEADERS = web.RequestKey("weight_headers", dict[str, str])
MAX_NUM_ORDERS = 200
_NUM = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_ORDER_TYPES = frozenset(
    {
        "LIMIT",
        "MARKET",
        "LIMIT_MAKER",
        "STOP_LOSS",
        "STOP_LOSS_LIMIT",
        "TAKE_PROFIT",
        "TAKE_PROFIT_LIMIT",
    }
)
_INTERVALS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(
            {"code": self.code, "msg": self.msg}, status=self.status, headers=self.headers
        )


def f8(raw: int | None) -> str:
    """A raw fixed-point value as Binance prints it: 8 decimals, or 9 when the ninth is
    needed (a fee of 10 bps can have 9), so that no unit is ever rounded away."""
    if raw is None:
        return "0.00000000"
    q, r = divmod(-raw if raw < 0 else raw, fixed.SCALE)
    frac = f"{r:09d}" if r % 10 else f"{r // 10:08d}"
    return f"-{q}.{frac}" if raw < 0 else f"{q}.{frac}"


def _mandatory(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _num(params: dict[str, str], name: str, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _mandatory(name)
        return None
    if not _NUM.match(value):
        raise BinanceError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    return fixed.to_raw(value)


def _int(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BinanceError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        ) from None


def _kline_payload(r: list[Any], sym: str, interval: str, last_id: int) -> dict[str, Any]:
    return {
        "t": r[0],
        "T": r[6],
        "s": sym,
        "i": interval,
        "f": -1,
        "L": last_id,
        "o": r[1],
        "c": r[4],
        "h": r[2],
        "l": r[3],
        "v": r[5],
        "n": r[8],
        "x": False,
        "q": r[7],
        "V": r[9],
        "Q": r[10],
        "B": "0",
    }


class _Conn:
    """One WebSocket connection with its own send queue (so faults can stall it)."""

    def __init__(self, ws: web.WebSocketResponse, channel: str) -> None:
        self.ws = ws
        self.channel = channel  # "market" | "user"
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.streams: set[str] = set()
        self.combined = False
        self.account: str | None = None
        self.subscription_id: int | None = None
        self.held: deque[str] = deque()  # reorder fault: one event held back

    def send(self, payload: dict[str, Any] | list[Any]) -> None:
        self.queue.put_nowait(_encode(payload).decode())


class BinanceDialect:
    """Routes and WebSocket handlers of the Binance dialect over an :class:`ExchangeCore`."""

    def __init__(self, core: ExchangeCore, faults: FaultInjector) -> None:
        self.core = core
        self.faults = faults
        self.weights: dict[tuple[str, int], int] = {}
        self.limited: dict[str, int] = {}  # ip -> 429s answered this minute
        self.banned_until: dict[str, float] = {}
        self.listen_keys: dict[str, str] = {}  # listenKey -> account name
        self.conns: set[_Conn] = set()
        self._sub_seq = 0
        self.stale_until = 0.0
        self._stale_depth: dict[str, Any] | None = None
        self.weight_limit = WEIGHT_LIMIT
        self.max_num_orders = MAX_NUM_ORDERS
        self._dirty: dict[str, set[str]] = {}
        self._ticker_sent: dict[str, int] = {}  # symbol -> ms of the last 24hrTicker
        core.market_listeners.append(self._on_market)
        core.user_listeners.append(self._on_user)

    # -- wiring -----------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        r = app.router
        get, post, put, delete = r.add_get, r.add_post, r.add_put, r.add_delete
        api = "/api/v3"
        for path, handler, method in (
            ("ping", self.ping, get),
            ("time", self.time, get),
            ("exchangeInfo", self.exchange_info, get),
            ("depth", self.depth, get),
            ("trades", self.trades, get),
            ("historicalTrades", self.trades, get),
            ("aggTrades", self.agg_trades, get),
            ("klines", self.klines, get),
            ("uiKlines", self.klines, get),
            ("ticker/bookTicker", self.book_ticker, get),
            ("ticker/price", self.ticker_price, get),
            ("ticker/24hr", self.ticker_24hr, get),
            ("avgPrice", self.avg_price, get),
            ("order", self.new_order, post),
            ("order/test", self.test_order, post),
            ("order", self.query_order, get),
            ("order", self.cancel_order, delete),
            ("openOrders", self.open_orders, get),
            ("openOrders", self.cancel_open_orders, delete),
            ("allOrders", self.all_orders, get),
            ("myTrades", self.my_trades, get),
            ("account", self.account, get),
            ("userDataStream", self.new_listen_key, post),
            ("userDataStream", self.keep_listen_key, put),
            ("userDataStream", self.close_listen_key, delete),
        ):
            method(f"{api}/{path}", handler, allow_head=False) if method is get else method(
                f"{api}/{path}", handler
            )
        get("/ws", self.ws_market)
        get("/ws/{key}", self.ws_market)
        get("/stream", self.ws_market)
        get("/ws-api/v3", self.ws_api)

    # -- request plumbing ------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, str]:
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if request.method in ("POST", "PUT", "DELETE") and request.can_read_body:
            raw = await request.read()
            try:
                body = raw.decode("ascii")
            except UnicodeDecodeError:
                raise BinanceError(400, -1100, "Illegal characters found in a parameter.") from None
            request[RAW_BODY] = body
            params.update(parse_qsl(body, keep_blank_values=True))
        return params

    def _weigh(self, request: web.Request, weight: int) -> dict[str, str]:
        ip = request.remote or "?"
        now = time.time()
        if self.banned_until.get(ip, 0) > now:
            wait = int(self.banned_until[ip] - now) + 1
            raise BinanceError(
                418,
                -1003,
                f"Way too many requests; IP banned until {int(self.banned_until[ip] * 1000)}.",
                {"Retry-After": str(wait)},
            )
        minute = int(now // 60)
        key = (ip, minute)
        used = self.weights.get(key, 0) + weight
        self.weights[key] = used
        if len(self.weights) > 1000:
            self.weights = {k: v for k, v in self.weights.items() if k[1] >= minute - 1}
        headers = {"X-MBX-USED-WEIGHT-1M": str(used), "X-MBX-USED-WEIGHT": str(used)}
        if used > self.weight_limit:
            retry = 60 - int(now % 60)
            n = self.limited.get(ip, 0) + 1
            self.limited[ip] = n
            if n > 20:
                self.banned_until[ip] = now + 120
                raise BinanceError(
                    418,
                    -1003,
                    "Way too many requests; IP banned.",
                    {"Retry-After": "120", **headers},
                )
            raise BinanceError(
                429,
                -1003,
                "Too much request weight used; current limit is "
                f"{self.weight_limit} request weight per 1 MINUTE. Please use WebSocket Streams "
                "for live updates to avoid polling the API.",
                {"Retry-After": str(retry), **headers},
            )
        request[WEIGHT_HEADERS] = headers
        return headers

    def _ok(self, request: web.Request, body: Any, status: int = 200) -> web.Response:
        return web.json_response(body, status=status, headers=request.get(WEIGHT_HEADERS, {}))

    def _symbol(self, params: dict[str, str], required: bool = True) -> Instrument | None:
        sym = params.get("symbol")
        if not sym:
            if required:
                raise _mandatory("symbol")
            return None
        inst = self.core.instruments.get(sym.upper())
        if inst is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return inst

    def _auth(self, request: web.Request, params: dict[str, str], signed: bool = True) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key or len(key) > 128 or not key.isprintable():
            raise BinanceError(401, -2014, "API-key format invalid.")
        state = self.core.account_for_key(key)
        if state is None:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if signed:
            self._check_signed(
                params, state.spec.secret, request.query_string, request.get(RAW_BODY, "")
            )
        return state.spec.name

    def _check_signed(self, params: dict[str, str], secret: str, query: str, body: str) -> None:
        ts = _int(params, "timestamp")
        if ts is None:
            raise _mandatory("timestamp")
        window = _int(params, "recvWindow", 5000)
        assert window is not None
        if window > 60000 or window <= 0:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        server = self.core.clock.now_ms()
        if ts - server > 1000:
            raise BinanceError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - ts > window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        if "signature" not in params:
            raise _mandatory("signature")
        if not verify_binance(secret, query, body):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")

    # -- general and market data -------------------------------------------------------------
    async def ping(self, request: web.Request) -> web.Response:
        self._weigh(request, 1)
        return self._ok(request, {})

    async def time(self, request: web.Request) -> web.Response:
        self._weigh(request, 1)
        return self._ok(request, {"serverTime": self.core.clock.now_ms()})

    def symbol_info(self, inst: Instrument) -> dict[str, Any]:
        return {
            "symbol": inst.symbol,
            "status": "TRADING",
            "baseAsset": inst.base,
            "baseAssetPrecision": 8,
            "quoteAsset": inst.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": f8(inst.tick_size),
                    "maxPrice": "1000000.00000000",
                    "tickSize": f8(inst.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": f8(inst.min_qty or inst.lot_size),
                    "maxQty": "9000.00000000",
                    "stepSize": f8(inst.lot_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "100.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": f8(inst.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": "5",
                    "bidMultiplierDown": "0.2",
                    "askMultiplierUp": "5",
                    "askMultiplierDown": "0.2",
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"],
        }

    async def exchange_info(self, request: web.Request) -> web.Response:
        self._weigh(request, 20)
        params = await self._params(request)
        wanted: list[str] | None = None
        if params.get("symbol"):
            wanted = [params["symbol"].upper()]
        elif params.get("symbols"):
            try:
                wanted = [str(s).upper() for s in json.loads(params["symbols"])]
            except (ValueError, TypeError):
                raise BinanceError(
                    400, -1100, "Illegal characters found in parameter 'symbols'."
                ) from None
        insts = list(self.core.instruments.values())
        if wanted is not None:
            if any(w not in self.core.instruments for w in wanted):
                raise BinanceError(400, -1121, "Invalid symbol.")
            insts = [self.core.instruments[w] for w in wanted]
        return self._ok(
            request,
            {
                "timezone": "UTC",
                "serverTime": self.core.clock.now_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": self.weight_limit,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "DAY",
                        "intervalNum": 1,
                        "limit": 200000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [self.symbol_info(i) for i in insts],
            },
        )

    def _stale(self, path: str) -> bool:
        now = time.monotonic()
        if now < self.stale_until:
            return True
        rule = self.faults.on_market_read(path)
        if rule is not None:
            self.stale_until = now + rule.duration_s
            return True
        return False

    async def depth(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        limit = _int(params, "limit", 100)
        assert limit is not None
        limit = max(1, min(limit, 5000))
        self._weigh(
            request, 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        )
        inst = self._symbol(params)
        assert inst is not None
        stale_key = f"{inst.symbol}:{limit}"
        if self._stale(request.path) and self._stale_depth and stale_key in self._stale_depth:
            return self._ok(request, self._stale_depth[stale_key])
        book = self.core.symbols[inst.symbol].book
        if book is None:
            body: dict[str, Any] = {"lastUpdateId": 0, "bids": [], "asks": []}
        else:
            body = {
                "lastUpdateId": book.update_id,
                "bids": [[f8(p), f8(q)] for p, q in book.levels(1, limit)],
                "asks": [[f8(p), f8(q)] for p, q in book.levels(-1, limit)],
            }
        self._stale_depth = {stale_key: body}
        return self._ok(request, body)

    async def trades(self, request: web.Request) -> web.Response:
        self._weigh(request, 25)
        params = await self._params(request)
        inst = self._symbol(params)
        assert inst is not None
        limit = max(1, min(_int(params, "limit", 500) or 500, 1000))
        rows = self.core.symbols[inst.symbol].trades
        from_id = _int(params, "fromId")
        if from_id is not None:
            rows = [t for t in rows if t[0] >= from_id][:limit]
        else:
            rows = rows[-limit:]
        return self._ok(
            request,
            [
                {
                    "id": tid,
                    "price": f8(px),
                    "qty": f8(qty),
                    "quoteQty": f8(fixed.mul(px, qty)),
                    "time": ms,
                    "isBuyerMaker": maker,
                    "isBestMatch": True,
                }
                for tid, ms, px, qty, maker in rows
            ],
        )

    async def agg_trades(self, request: web.Request) -> web.Response:
        """Each replayed trade is its own aggregate trade (the capture has no aggregation)."""
        self._weigh(request, 4)
        params = await self._params(request)
        inst = self._symbol(params)
        assert inst is not None
        limit = max(1, min(_int(params, "limit", 500) or 500, 1000))
        rows = self.core.symbols[inst.symbol].trades
        from_id = _int(params, "fromId")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        if from_id is not None or start is not None or end is not None:
            rows = [
                t
                for t in rows
                if (from_id is None or t[0] >= from_id)
                and (start is None or t[1] >= start)
                and (end is None or t[1] <= end)
            ][:limit]
        else:
            rows = rows[-limit:]
        return self._ok(
            request,
            [
                {
                    "a": tid,
                    "p": f8(px),
                    "q": f8(qty),
                    "f": tid,
                    "l": tid,
                    "T": ms,
                    "m": maker,
                    "M": True,
                }
                for tid, ms, px, qty, maker in rows
            ],
        )

    async def klines(self, request: web.Request) -> web.Response:
        self._weigh(request, 2)
        params = await self._params(request)
        inst = self._symbol(params)
        assert inst is not None
        interval = params.get("interval")
        if not interval:
            raise _mandatory("interval")
        step = _INTERVALS.get(interval)
        if step is None:
            raise BinanceError(400, -1120, "Invalid interval.")
        limit = max(1, min(_int(params, "limit", 500) or 500, 1000))
        start = _int(params, "startTime")
        end = _int(params, "endTime")
        return self._ok(request, self.kline_rows(inst.symbol, step, start, end, limit))

    def kline_rows(
        self, symbol: str, step: int, start: int | None, end: int | None, limit: int
    ) -> list[list[Any]]:
        buckets: dict[int, list[Any]] = {}
        trades = self.core.symbols[symbol].trades
        if start is not None:  # trades are in time order: start at the first bucket's
            trades = trades[bisect_left(trades, start - start % step, key=lambda t: t[1]) :]
        for tid, ms, px, qty, maker in trades:
            t = ms - ms % step
            if start is not None and t < start - start % step:
                continue
            if end is not None and t > end:
                break
            b = buckets.get(t)
            quote = fixed.mul(px, qty)
            if b is None:
                buckets[t] = [t, px, px, px, px, qty, t + step - 1, quote, 1, 0, 0, tid]
                b = buckets[t]
            else:
                b[2] = max(b[2], px)
                b[3] = min(b[3], px)
                b[4] = px
                b[5] += qty
                b[7] += quote
                b[8] += 1
            if not maker:
                b[9] += qty
                b[10] += quote
        rows = [buckets[k] for k in sorted(buckets)]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [
            [
                b[0],
                f8(b[1]),
                f8(b[2]),
                f8(b[3]),
                f8(b[4]),
                f8(b[5]),
                b[6],
                f8(b[7]),
                b[8],
                f8(b[9]),
                f8(b[10]),
                "0",
            ]
            for b in rows
        ]

    def _top(self, symbol: str) -> tuple[int, int, int, int]:
        book = self.core.symbols[symbol].book
        bid = book.best_bid() if book else None
        ask = book.best_ask() if book else None
        return (bid or (0, 0))[0], (bid or (0, 0))[1], (ask or (0, 0))[0], (ask or (0, 0))[1]

    async def book_ticker(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        inst = self._symbol(params, required=False)
        self._weigh(request, 2 if inst else 4)
        insts = [inst] if inst else list(self.core.instruments.values())
        out = []
        for i in insts:
            bp, bq, ap, aq = self._top(i.symbol)
            out.append(
                {
                    "symbol": i.symbol,
                    "bidPrice": f8(bp),
                    "bidQty": f8(bq),
                    "askPrice": f8(ap),
                    "askQty": f8(aq),
                }
            )
        return self._ok(request, out[0] if inst else out)

    async def ticker_price(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        inst = self._symbol(params, required=False)
        self._weigh(request, 2 if inst else 4)
        insts = [inst] if inst else list(self.core.instruments.values())
        out = [
            {"symbol": i.symbol, "price": f8(self.core.symbols[i.symbol].last_price)} for i in insts
        ]
        return self._ok(request, out[0] if inst else out)

    async def avg_price(self, request: web.Request) -> web.Response:
        self._weigh(request, 2)
        params = await self._params(request)
        inst = self._symbol(params)
        assert inst is not None
        return self._ok(
            request,
            {
                "mins": 5,
                "price": f8(self.core.symbols[inst.symbol].mid()),
                "closeTime": self.core.clock.now_ms(),
            },
        )

    def ticker(self, inst: Instrument) -> dict[str, Any]:
        s = self.core.symbols[inst.symbol]
        now = self.core.clock.now_ms()
        rows = [t for t in s.trades if t[1] >= now - 86_400_000]
        bp, bq, ap, aq = self._top(inst.symbol)
        if rows:
            o, last = rows[0][2], rows[-1]
            hi = max(t[2] for t in rows)
            lo = min(t[2] for t in rows)
            vol = sum(t[3] for t in rows)
            qv = sum(fixed.mul(t[2], t[3]) for t in rows)
            change = last[2] - o
            pct = fixed.div(change * 100, o) if o else 0
            wavg = fixed.div(qv, vol) if vol else 0
            first_id, last_id, count = rows[0][0], last[0], len(rows)
            last_px, last_qty = last[2], last[3]
        else:
            o = hi = lo = vol = qv = change = pct = wavg = last_px = last_qty = 0
            first_id = last_id = -1
            count = 0
        return {
            "symbol": inst.symbol,
            "priceChange": f8(change),
            "priceChangePercent": format(fixed.to_decimal(pct).quantize(Decimal("0.001")), "f"),
            "weightedAvgPrice": f8(wavg),
            "prevClosePrice": f8(o),
            "lastPrice": f8(last_px),
            "lastQty": f8(last_qty),
            "bidPrice": f8(bp),
            "bidQty": f8(bq),
            "askPrice": f8(ap),
            "askQty": f8(aq),
            "openPrice": f8(o),
            "highPrice": f8(hi),
            "lowPrice": f8(lo),
            "volume": f8(vol),
            "quoteVolume": f8(qv),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": first_id,
            "lastId": last_id,
            "count": count,
        }

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        inst = self._symbol(params, required=False)
        self._weigh(request, 2 if inst else 80)
        if inst is not None:
            return self._ok(request, self.ticker(inst))
        return self._ok(request, [self.ticker(i) for i in self.core.instruments.values()])

    # -- orders ----------------------------------------------------------------------------
    def _parse_order(self, name: str, params: dict[str, str]) -> OrderRequest:
        inst = self._symbol(params)
        assert inst is not None
        side_s = params.get("side")
        if not side_s:
            raise _mandatory("side")
        if side_s.upper() not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        side = 1 if side_s.upper() == "BUY" else -1
        otype = params.get("type")
        if not otype:
            raise _mandatory("type")
        otype = otype.upper()
        if otype not in _ORDER_TYPES:
            raise BinanceError(400, -1116, "Invalid orderType.")
        needs_tif = otype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        tif = params.get("timeInForce")
        if needs_tif:
            if not tif:
                raise _mandatory("timeInForce")
            tif = tif.upper()
            if tif not in ("GTC", "IOC", "FOK"):
                raise BinanceError(400, -1115, "Invalid timeInForce.")
        elif tif:
            raise BinanceError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        has_price = otype in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        price = _num(params, "price", required=has_price)
        if not has_price and price is not None:
            raise BinanceError(400, -1106, "Parameter 'price' sent when not required.")
        stop = _num(params, "stopPrice", required=otype.startswith(("STOP", "TAKE")))
        qty = _num(params, "quantity", required=False)
        quote_qty = _num(params, "quoteOrderQty", required=False)
        if otype == "MARKET":
            if (qty is None) == (quote_qty is None):
                raise BinanceError(
                    400,
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            if qty is None:
                assert quote_qty is not None
                qty = self._qty_for_quote(inst, side, quote_qty)
        elif qty is None:
            raise _mandatory("quantity")
        self._check_filters(inst, side, qty, price, stop, otype == "MARKET")
        cid = params.get("newClientOrderId", "")
        if cid and not re.match(r"^[.A-Z:/a-z0-9_-]{1,36}$", cid):
            raise BinanceError(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; "
                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        open_count = sum(
            1
            for r in self.core.accounts[name].orders.values()
            if r.is_open and r.symbol == inst.symbol
        )
        if open_count >= self.max_num_orders:
            raise BinanceError(400, -1013, "Filter failure: MAX_NUM_ORDERS")
        kind = {
            "LIMIT": "LIMIT",
            "LIMIT_MAKER": "LIMIT",
            "MARKET": "MARKET",
            "STOP_LOSS": "STOP_MARKET",
            "TAKE_PROFIT": "STOP_MARKET",
            "STOP_LOSS_LIMIT": "STOP_LIMIT",
            "TAKE_PROFIT_LIMIT": "STOP_LIMIT",
        }[otype]
        trigger_above: bool | None = None
        if otype.startswith("STOP"):
            trigger_above = side > 0
        elif otype.startswith("TAKE"):
            trigger_above = side < 0
        return OrderRequest(
            symbol=inst.symbol,
            side=side,
            kind=kind,
            qty=qty,
            price=price,
            stop_price=stop,
            trigger_above=trigger_above,
            tif=tif or "GTC",
            post_only=otype == "LIMIT_MAKER",
            client_id=cid,
            dialect_type=otype,
            quote_qty=quote_qty or 0,
        )

    def _qty_for_quote(self, inst: Instrument, side: int, quote: int) -> int:
        book = self.core.symbols[inst.symbol].book
        qty = 0
        left = quote
        if book is not None:
            for px, size in book.levels(-side, 1000):
                cost = fixed.mul(px, size)
                if cost >= left:
                    qty += fixed.div(left, px)
                    left = 0
                    break
                qty += size
                left -= cost
        qty -= qty % inst.lot_size
        if qty <= 0:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        return qty

    def _check_filters(
        self,
        inst: Instrument,
        side: int,
        qty: int,
        price: int | None,
        stop: int | None,
        market: bool,
    ) -> None:
        for px in (price, stop):
            if px is not None and (px <= 0 or px % inst.tick_size or px > fixed.to_raw(1_000_000)):
                raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty < (inst.min_qty or inst.lot_size) or qty % inst.lot_size or qty > fixed.to_raw(9000):
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        ref = price if price is not None else self.core.symbols[inst.symbol].mid()
        if ref is not None and fixed.mul(ref, qty) < inst.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        mid = self.core.symbols[inst.symbol].mid()
        lo = fixed.mul(mid, fixed.to_raw("0.2")) if mid else 0
        hi = fixed.mul(mid, fixed.to_raw(5)) if mid else 0
        if price is not None and mid and not lo <= price <= hi:
            raise BinanceError(400, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE")

    @staticmethod
    def _rejection(exc: Rejected) -> BinanceError:
        if exc.code == "BALANCE":
            return BinanceError(
                400, -2010, "Account has insufficient balance for requested action."
            )
        if exc.code == "POST_ONLY":
            return BinanceError(400, -2010, "Order would immediately match and take.")
        if exc.code == "DUPLICATE":
            return BinanceError(400, -2010, "Duplicate order sent.")
        if exc.code == "TRIGGER":
            return BinanceError(400, -2010, "Stop price would trigger immediately.")
        if exc.code == "SYMBOL":
            return BinanceError(400, -1121, "Invalid symbol.")
        return BinanceError(400, -1013, f"Filter failure: {exc.message}")

    async def test_order(self, request: web.Request) -> web.Response:
        self._weigh(request, 1)
        params = await self._params(request)
        name = self._auth(request, params)
        self._parse_order(name, params)
        return self._ok(request, {})

    async def new_order(self, request: web.Request) -> web.Response:
        self._weigh(request, 1)
        params = await self._params(request)
        name = self._auth(request, params)
        req = self._parse_order(name, params)
        try:
            rec = self.core.submit(name, req)
        except Rejected as exc:
            raise self._rejection(exc) from None
        resp_type = (params.get("newOrderRespType") or "").upper()
        if not resp_type:
            resp_type = "FULL" if req.dialect_type in ("LIMIT", "MARKET") else "ACK"
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(
                400, -1100, "Illegal characters found in parameter 'newOrderRespType'."
            )
        base = {
            "symbol": rec.symbol,
            "orderId": rec.order_id,
            "orderListId": -1,
            "clientOrderId": rec.client_id,
            "transactTime": rec.time_ms,
        }
        if resp_type == "ACK":
            return self._ok(request, base)
        body = {**base, **self._order_fields(rec, with_time=False), "workingTime": rec.time_ms}
        if resp_type == "FULL":
            body["fills"] = [
                {
                    "price": f8(f.price),
                    "qty": f8(f.qty),
                    "commission": f8(f.commission),
                    "commissionAsset": f.commission_asset,
                    "tradeId": f.trade_id,
                }
                for f in rec.fills
            ]
        return self._ok(request, body)

    def _order_fields(self, rec: OrderRecord, with_time: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "price": f8(rec.price),
            "origQty": f8(rec.qty),
            "executedQty": f8(rec.executed),
            "origQuoteOrderQty": f8(rec.quote_qty),
            "cummulativeQuoteQty": f8(rec.quote_executed),
            "status": rec.status,
            "timeInForce": rec.tif,
            "type": rec.dialect_type,
            "side": "BUY" if rec.side > 0 else "SELL",
            "selfTradePreventionMode": "NONE",
        }
        if rec.stop_price is not None:
            out["stopPrice"] = f8(rec.stop_price)
        if with_time:
            out.update(
                {
                    "stopPrice": f8(rec.stop_price),
                    "icebergQty": "0.00000000",
                    "time": rec.time_ms,
                    "updateTime": rec.update_ms,
                    "isWorking": rec.triggered and rec.is_open,
                    "workingTime": rec.time_ms if rec.triggered else -1,
                }
            )
        return out

    def order_json(self, rec: OrderRecord) -> dict[str, Any]:
        return {
            "symbol": rec.symbol,
            "orderId": rec.order_id,
            "orderListId": -1,
            "clientOrderId": rec.client_id,
            **self._order_fields(rec),
        }

    def _find(
        self, name: str, params: dict[str, str], inst: Instrument, unknown: BinanceError
    ) -> OrderRecord:
        st = self.core.accounts[name]
        oid = _int(params, "orderId")
        ocid = params.get("origClientOrderId")
        if oid is None and not ocid:
            raise BinanceError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        rec = st.orders.get(oid) if oid is not None else st.by_client.get(ocid or "")
        if rec is None or rec.symbol != inst.symbol or (ocid and rec.client_id != ocid):
            raise unknown
        return rec

    async def query_order(self, request: web.Request) -> web.Response:
        self._weigh(request, 4)
        params = await self._params(request)
        name = self._auth(request, params)
        inst = self._symbol(params)
        assert inst is not None
        rec = self._find(name, params, inst, BinanceError(400, -2013, "Order does not exist."))
        return self._ok(request, self.order_json(rec))

    def _cancel_json(self, rec: OrderRecord, cancel_cid: str) -> dict[str, Any]:
        return {
            "symbol": rec.symbol,
            "origClientOrderId": rec.client_id,
            "orderId": rec.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_cid,
            "transactTime": rec.update_ms,
            **self._order_fields(rec, with_time=False),
        }

    async def cancel_order(self, request: web.Request) -> web.Response:
        self._weigh(request, 1)
        params = await self._params(request)
        name = self._auth(request, params)
        inst = self._symbol(params)
        assert inst is not None
        unknown = BinanceError(400, -2011, "Unknown order sent.")
        rec = self._find(name, params, inst, unknown)
        try:
            self.core.cancel(name, rec)
        except Rejected:
            raise unknown from None
        return self._ok(
            request, self._cancel_json(rec, params.get("newClientOrderId") or secrets.token_hex(11))
        )

    async def open_orders(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        inst = self._symbol(params, required=False)
        self._weigh(request, 6 if inst else 80)
        name = self._auth(request, params)
        recs = [
            r
            for r in self.core.accounts[name].orders.values()
            if r.is_open and (inst is None or r.symbol == inst.symbol)
        ]
        return self._ok(request, [self.order_json(r) for r in recs])

    async def cancel_open_orders(self, request: web.Request) -> web.Response:
        self._weigh(request, 1)
        params = await self._params(request)
        name = self._auth(request, params)
        inst = self._symbol(params)
        assert inst is not None
        recs = [
            r
            for r in self.core.accounts[name].orders.values()
            if r.is_open and r.symbol == inst.symbol
        ]
        if not recs:
            raise BinanceError(400, -2011, "Unknown order sent.")
        out = []
        for rec in recs:
            with contextlib.suppress(Rejected):
                self.core.cancel(name, rec)
            out.append(self._cancel_json(rec, secrets.token_hex(11)))
        return self._ok(request, out)

    async def all_orders(self, request: web.Request) -> web.Response:
        self._weigh(request, 20)
        params = await self._params(request)
        name = self._auth(request, params)
        inst = self._symbol(params)
        assert inst is not None
        limit = max(1, min(_int(params, "limit", 500) or 500, 1000))
        oid = _int(params, "orderId")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        recs = [
            r
            for r in self.core.accounts[name].orders.values()
            if r.symbol == inst.symbol
            and (oid is None or r.order_id >= oid)
            and (start is None or r.time_ms >= start)
            and (end is None or r.time_ms <= end)
        ]
        recs = recs[:limit] if oid is not None or start is not None else recs[-limit:]
        return self._ok(request, [self.order_json(r) for r in recs])

    async def my_trades(self, request: web.Request) -> web.Response:
        self._weigh(request, 20)
        params = await self._params(request)
        name = self._auth(request, params)
        inst = self._symbol(params)
        assert inst is not None
        limit = max(1, min(_int(params, "limit", 500) or 500, 1000))
        oid = _int(params, "orderId")
        from_id = _int(params, "fromId")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        rows = [
            (r, f)
            for r, f in self.core.accounts[name].trades
            if r.symbol == inst.symbol
            and (oid is None or r.order_id == oid)
            and (from_id is None or f.trade_id >= from_id)
            and (start is None or f.time_ms >= start)
            and (end is None or f.time_ms <= end)
        ]
        rows = rows[:limit] if from_id is not None or start is not None else rows[-limit:]
        return self._ok(request, [self.trade_json(r, f) for r, f in rows])

    @staticmethod
    def trade_json(rec: OrderRecord, f: Any) -> dict[str, Any]:
        return {
            "symbol": rec.symbol,
            "id": f.trade_id,
            "orderId": rec.order_id,
            "orderListId": -1,
            "price": f8(f.price),
            "qty": f8(f.qty),
            "quoteQty": f8(f.quote_qty),
            "commission": f8(f.commission),
            "commissionAsset": f.commission_asset,
            "time": f.time_ms,
            "isBuyer": rec.side > 0,
            "isMaker": f.is_maker,
            "isBestMatch": True,
        }

    async def account(self, request: web.Request) -> web.Response:
        self._weigh(request, 20)
        params = await self._params(request)
        name = self._auth(request, params)
        fee = next(iter(self.core.instruments.values())).taker_fee_bps
        rate = f8(fee // 10_000)
        bps = fixed.to_decimal(fee)
        return self._ok(
            request,
            {
                "makerCommission": int(bps),
                "takerCommission": int(bps),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": rate,
                    "taker": rate,
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": self.core.clock.now_ms(),
                "accountType": "SPOT",
                "balances": [
                    {"asset": ccy, "free": f8(free), "locked": f8(locked)}
                    for ccy, (free, locked) in self.core.balances(name).items()
                ],
                "permissions": ["SPOT"],
                "uid": abs(hash(name)) % 10**9,
            },
        )

    # -- listen keys -------------------------------------------------------------------------
    async def new_listen_key(self, request: web.Request) -> web.Response:
        self._weigh(request, 2)
        params = await self._params(request)
        name = self._auth(request, params, signed=False)
        key = secrets.token_urlsafe(45)[:60]
        self.listen_keys[key] = name
        return self._ok(request, {"listenKey": key})

    async def keep_listen_key(self, request: web.Request) -> web.Response:
        self._weigh(request, 2)
        params = await self._params(request)
        name = self._auth(request, params, signed=False)
        if self.listen_keys.get(params.get("listenKey", "")) != name:
            raise BinanceError(400, -1125, "This listenKey does not exist.")
        return self._ok(request, {})

    async def close_listen_key(self, request: web.Request) -> web.Response:
        self._weigh(request, 2)
        params = await self._params(request)
        name = self._auth(request, params, signed=False)
        key = params.get("listenKey", "")
        if self.listen_keys.get(key) != name:
            raise BinanceError(400, -1125, "This listenKey does not exist.")
        del self.listen_keys[key]
        for conn in list(self.conns):
            if conn.account == name and conn.channel == "user":
                conn.queue.put_nowait(None)
        return self._ok(request, {})

    # -- WebSocket: market streams --------------------------------------------------------------
    async def _serve(
        self, request: web.Request, conn: _Conn, on_text: Callable[[_Conn, str], None]
    ) -> web.WebSocketResponse:
        ws = conn.ws
        self.conns.add(conn)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        on_text(conn, msg.data)
                    except Exception:  # a bad message must not kill the connection
                        log.exception("bad websocket message")
                        conn.send({"error": {"code": 2, "msg": "Invalid request"}, "id": None})
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _writer(self, conn: _Conn) -> None:
        ws = conn.ws
        while True:
            text = await conn.queue.get()
            if text is None:
                await ws.close()
                return
            rule = self.faults.on_ws_message(conn.channel)
            if rule is not None and rule.kind == "ws_disconnect":
                await ws.close(code=1001, message=b"fault: disconnect")
                return
            if rule is not None and rule.kind == "ws_stall":
                await asyncio.sleep(rule.duration_s)
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def ws_market(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, autoping=True, compress=False)
        await ws.prepare(request)
        key = request.match_info.get("key", "")
        if key and key in self.listen_keys:
            conn = _Conn(ws, "user")
            conn.account = self.listen_keys[key]
            return await self._serve(request, conn, lambda c, t: None)
        conn = _Conn(ws, "market")
        if request.path == "/stream":
            conn.combined = True
            streams = request.query.get("streams", "")
            conn.streams.update(s for s in streams.split("/") if s)
        elif "@" in key:
            conn.streams.add(key)
        return await self._serve(request, conn, self._on_market_text)

    def _on_market_text(self, conn: _Conn, text: str) -> None:
        msg = json.loads(text)
        method = str(msg.get("method", "")).upper()
        mid = msg.get("id")
        params = msg.get("params") or []
        if method == "SUBSCRIBE":
            conn.streams.update(str(p) for p in params)
            conn.send({"result": None, "id": mid})
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(str(p) for p in params)
            conn.send({"result": None, "id": mid})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": sorted(conn.streams), "id": mid})
        else:
            conn.send(
                {
                    "error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                    "id": mid,
                }
            )

    def _publish_ticker(self, inst: Instrument, low: str, ms: int) -> None:
        """``<symbol>@ticker`` and ``@miniTicker``: rolling 24-hour statistics, once a second."""
        stream, mini = f"{low}@ticker", f"{low}@miniTicker"
        if ms - self._ticker_sent.get(inst.symbol, 0) < 1000:
            return
        if not any(stream in c.streams or mini in c.streams for c in self.conns):
            return
        self._ticker_sent[inst.symbol] = ms
        t = self.ticker(inst)
        self._publish(
            mini,
            {
                "e": "24hrMiniTicker",
                "E": ms,
                "s": inst.symbol,
                "c": t["lastPrice"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": t["volume"],
                "q": t["quoteVolume"],
            },
        )
        self._publish(
            stream,
            {
                "e": "24hrTicker",
                "E": ms,
                "s": inst.symbol,
                "p": t["priceChange"],
                "P": t["priceChangePercent"],
                "w": t["weightedAvgPrice"],
                "x": t["prevClosePrice"],
                "c": t["lastPrice"],
                "Q": t["lastQty"],
                "b": t["bidPrice"],
                "B": t["bidQty"],
                "a": t["askPrice"],
                "A": t["askQty"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": t["volume"],
                "q": t["quoteVolume"],
                "O": t["openTime"],
                "C": t["closeTime"],
                "F": t["firstId"],
                "L": t["lastId"],
                "n": t["count"],
            },
        )

    def _publish(self, stream: str, payload: dict[str, Any]) -> None:
        for conn in self.conns:
            if conn.channel == "market" and stream in conn.streams:
                conn.send({"stream": stream, "data": payload} if conn.combined else payload)

    def _on_market(self, item: MarketData, ms: int) -> None:
        if not self.conns:
            return
        inst = self.core.by_iid.get(item.instrument_id)
        if inst is None:
            return
        sym = inst.symbol
        low = sym.lower()
        if isinstance(item, BookDeltas):
            payload = {
                "e": "depthUpdate",
                "E": ms,
                "s": sym,
                "U": item.first_update_id,
                "u": item.update_id,
                "b": [[f8(lv.price), f8(lv.size)] for lv in item.bids],
                "a": [[f8(lv.price), f8(lv.size)] for lv in item.asks],
            }
            self._publish(f"{low}@depth@100ms", payload)
            self._publish(f"{low}@depth", payload)
        elif isinstance(item, BookSnapshot):
            return
        elif isinstance(item, TradeTick):
            tid, tms, px, qty, maker = self.core.symbols[sym].trades[-1]
            self._publish_ticker(inst, low, ms)
            self._publish(
                f"{low}@trade",
                {
                    "e": "trade",
                    "E": ms,
                    "s": sym,
                    "t": tid,
                    "p": f8(px),
                    "q": f8(qty),
                    "T": tms,
                    "m": maker,
                    "M": True,
                },
            )
            wanted = {s for c in self.conns for s in c.streams if "@kline_" in s}
            for interval, step in _INTERVALS.items():
                stream = f"{low}@kline_{interval}"
                if stream in wanted:
                    rows = self.kline_rows(sym, step, tms - tms % step, None, 1)
                    if rows:
                        r = rows[-1]
                        self._publish(
                            stream,
                            {
                                "e": "kline",
                                "E": ms,
                                "s": sym,
                                "k": _kline_payload(r, sym, interval, tid),
                            },
                        )
        elif isinstance(item, QuoteTick):
            self._publish(
                f"{low}@bookTicker",
                {
                    "u": self.core.symbols[sym].quote_update_id,
                    "s": sym,
                    "b": f8(item.bid),
                    "B": f8(item.bid_size),
                    "a": f8(item.ask),
                    "A": f8(item.ask_size),
                },
            )

    # -- WebSocket API: user data by signature subscription ---------------------------------------
    async def ws_api(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, autoping=True, compress=False)
        await ws.prepare(request)
        return await self._serve(request, _Conn(ws, "user"), self._on_api_text)

    def _on_api_text(self, conn: _Conn, text: str) -> None:
        msg = json.loads(text)
        mid = msg.get("id")
        method = msg.get("method")
        params = {str(k): str(v) for k, v in (msg.get("params") or {}).items()}
        try:
            if method == "ping":
                result: Any = {}
            elif method == "time":
                result = {"serverTime": self.core.clock.now_ms()}
            elif method == "userDataStream.subscribe.signature":
                name = self._ws_auth(params)
                conn.account = name
                conn.subscription_id = self._sub_seq
                self._sub_seq += 1
                result = {"subscriptionId": conn.subscription_id}
            elif method == "userDataStream.unsubscribe":
                conn.account = None
                result = {}
            else:
                raise BinanceError(400, -1100, f"Unknown method {method}.")
        except BinanceError as exc:
            conn.send(
                {"id": mid, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}}
            )
            return
        conn.send({"id": mid, "status": 200, "result": result, "rateLimits": []})

    def _ws_auth(self, params: dict[str, str]) -> str:
        key = params.get("apiKey", "")
        state = self.core.account_for_key(key)
        if state is None:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        sig = params.get("signature", "")
        payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
        ts = _int(params, "timestamp")
        if ts is None:
            raise _mandatory("timestamp")
        window = _int(params, "recvWindow", 5000) or 5000
        server = self.core.clock.now_ms()
        if ts - server > 1000 or server - ts > window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        if binance_signature(state.spec.secret, payload) != sig.lower():
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        return state.spec.name

    # -- user data ------------------------------------------------------------------------------
    def user_payloads(self, ev: UserEvent) -> list[dict[str, Any]]:
        if ev.kind == "balance":
            balances = self.core.balances(ev.account)
            if ev.exec_type == "DEPOSIT":
                asset = ev.assets[0]
                return [
                    {
                        "e": "balanceUpdate",
                        "E": ev.ts_ms,
                        "a": asset,
                        "d": f8(ev.delta),
                        "T": ev.ts_ms,
                    }
                ]
            return [
                {
                    "e": "outboundAccountPosition",
                    "E": ev.ts_ms,
                    "u": ev.ts_ms,
                    "B": [
                        {
                            "a": a,
                            "f": f8(balances.get(a, (0, 0))[0]),
                            "l": f8(balances.get(a, (0, 0))[1]),
                        }
                        for a in ev.assets
                    ],
                }
            ]
        rec = ev.record
        if rec is None or ev.exec_type == "TRIGGERED":
            return []
        fill = ev.fill
        x = ev.exec_type
        return [
            {
                "e": "executionReport",
                "E": ev.ts_ms,
                "s": rec.symbol,
                "c": rec.client_id,
                "S": "BUY" if rec.side > 0 else "SELL",
                "o": rec.dialect_type,
                "f": rec.tif,
                "q": f8(rec.qty),
                "p": f8(rec.price),
                "P": f8(rec.stop_price),
                "F": "0.00000000",
                "g": -1,
                "C": rec.client_id if x == "CANCELED" else "",
                "x": x,
                "X": rec.status,
                "r": "NONE",
                "i": rec.order_id,
                "l": f8(fill.qty if fill else 0),
                "z": f8(rec.executed),
                "L": f8(fill.price if fill else 0),
                "n": f8(fill.commission if fill else 0),
                "N": fill.commission_asset if fill else None,
                "T": ev.ts_ms,
                "t": fill.trade_id if fill else -1,
                "I": rec.order_id * 2 + len(rec.fills),
                "w": rec.is_open and rec.triggered,
                "m": bool(fill and fill.is_maker),
                "M": False,
                "O": rec.time_ms,
                "Z": f8(rec.quote_executed),
                "Y": f8(fill.quote_qty if fill else 0),
                "Q": f8(rec.quote_qty),
                "W": rec.time_ms,
                "V": "NONE",
            }
        ]

    def _on_user(self, ev: UserEvent) -> None:
        if not any(c.channel == "user" and c.account == ev.account for c in self.conns):
            return
        if ev.kind == "balance" and ev.exec_type != "DEPOSIT":
            # one outboundAccountPosition per matching step, as Binance sends it
            pending = self._dirty.setdefault(ev.account, set())
            if not pending:
                asyncio.get_running_loop().call_soon(self._flush_balances, ev.account)
            pending.update(ev.assets)
            return
        self._deliver(ev.account, self.user_payloads(ev))

    @staticmethod
    def _release_held(conn: _Conn) -> None:
        """A held-back event is late, never lost: it goes out even if nothing follows."""
        while conn.held:
            conn.queue.put_nowait(conn.held.popleft())

    def _flush_balances(self, account: str) -> None:
        assets = tuple(sorted(self._dirty.pop(account, set())))
        if assets:
            ev = UserEvent("balance", account, self.core.clock.now_ms(), assets=assets)
            self._deliver(account, self.user_payloads(ev))

    def _deliver(self, account: str, payloads: list[dict[str, Any]]) -> None:
        targets = [c for c in self.conns if c.channel == "user" and c.account == account]
        for payload in payloads:
            rule = self.faults.on_user_event()
            for conn in targets:
                wrapped: dict[str, Any] = (
                    {"subscriptionId": conn.subscription_id, "event": payload}
                    if conn.subscription_id is not None
                    else payload
                )
                text = _encode(wrapped).decode()
                if rule is None:
                    conn.queue.put_nowait(text)
                    while conn.held:
                        conn.queue.put_nowait(conn.held.popleft())
                elif rule.kind == "duplicate_event":
                    conn.queue.put_nowait(text)
                    conn.queue.put_nowait(text)
                elif rule.kind == "reorder_event":
                    conn.held.append(text)  # sent after the next event
                    asyncio.get_running_loop().call_later(1.0, self._release_held, conn)
                elif rule.kind == "delayed_fill":
                    asyncio.get_running_loop().call_later(rule.delay_s, conn.queue.put_nowait, text)
