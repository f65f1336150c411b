"""The local exchange's HTTP/WebSocket server, and a handle to run it in a thread.

One server speaks one dialect (``binance`` or ``alpaca``) on one port, over an
:class:`~tradepilot.venues.exchange.core.ExchangeCore`. Around the dialect's
routes it adds:

* fault injection on every request (:mod:`tradepilot.venues.exchange.faults`);
* a last-resort handler: an unexpected error is logged with its reason and
  answered in the dialect's error format (Binance ``-1000``, Alpaca 500), never
  with a traceback;
* observability endpoints outside the dialect namespace, under ``/_tp/``:
  ``requests`` (the request log), ``state`` (balances, orders, fills and the
  replay's position), ``faults`` (faults fired, by kind) and
  ``deposit`` (credit an account; Binance clients see a ``balanceUpdate``).

:func:`start_exchange` runs a server in a background thread (for tests and
embedding) and returns a :class:`RunningExchange` with the base URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from tradepilot.model import fixed
from tradepilot.venues.exchange.accounts import AccountSpec
from tradepilot.venues.exchange.alpaca import AlpacaDialect, AlpacaError
from tradepilot.venues.exchange.binance import BinanceDialect, BinanceError
from tradepilot.venues.exchange.core import ExchangeCore, Rejected
from tradepilot.venues.exchange.faults import FaultInjector, FaultProfile
from tradepilot.venues.exchange.replay import ReplayData

__all__ = ["ExchangeServer", "RunningExchange", "free_port", "start_exchange"]

log = logging.getLogger("tradepilot.exchange")
T = TypeVar("T")
_TICKER = web.AppKey("ticker", asyncio.Task[None])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RequestRecord:
    seq: int
    method: str
    path: str
    status: int
    ms: float
    fault: str = ""
    account: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "ms": round(self.ms, 3),
            "fault": self.fault,
        }


@dataclass
class ExchangeServer:
    """An aiohttp application speaking one dialect over an exchange core."""

    core: ExchangeCore
    dialect: str = "binance"
    faults: FaultInjector = field(default_factory=FaultInjector)
    tick_s: float = 0.005
    requests: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=20_000))
    _seq: int = 0

    def __post_init__(self) -> None:
        self.core.clock.skew_ms = self.faults.clock_skew_ms
        if self.faults.clock_skew_ms:
            self.faults.hits["clock_skew"] += 1
        self.api: Any
        if self.dialect == "binance":
            self.api = BinanceDialect(self.core, self.faults)
        elif self.dialect == "alpaca":
            self.api = AlpacaDialect(self.core, self.faults)
        else:
            raise ValueError(f"unknown dialect {self.dialect!r} (binance or alpaca)")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        self.api.add_routes(app)
        app.router.add_get("/_tp/requests", self._requests)
        app.router.add_get("/_tp/state", self._state)
        app.router.add_get("/_tp/faults", self._faults)
        app.router.add_post("/_tp/deposit", self._deposit)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    # -- lifecycle ----------------------------------------------------------------------
    async def _on_startup(self, app: web.Application) -> None:
        app[_TICKER] = asyncio.create_task(self._tick_loop())

    async def _on_shutdown(self, app: web.Application) -> None:
        task = app.get(_TICKER)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conns: set[Any] = getattr(self.api, "conns", set())
        for conn in list(conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()

    async def _tick_loop(self) -> None:
        while True:
            try:
                self.core.tick()
            except Exception:  # a bad data item must not stop the market
                log.exception("replay tick failed")
            await asyncio.sleep(self.tick_s)

    # -- middleware ------------------------------------------------------------------------
    def _error(
        self, status: int, code: int, msg: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        if self.dialect == "binance":
            return BinanceError(status, code, msg, headers).response()
        return web.json_response(
            {"code": status * 100_000, "message": msg},
            status=status,
            headers=headers,
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        self._seq += 1
        seq = self._seq
        fault = ""
        internal = request.path.startswith("/_tp/")
        rule = (
            None
            if internal or request.headers.get("Upgrade", "").lower() == "websocket"
            else self.faults.on_request(request.method, request.path)
        )
        response: web.StreamResponse
        try:
            if rule is not None:
                fault = rule.kind
                if rule.kind == "http_429":
                    response = self._error(
                        429,
                        -1003,
                        "Too many requests; current limit exceeded.",
                        {"Retry-After": str(rule.retry_after)},
                    )
                elif rule.kind == "http_418":
                    response = self._error(
                        418,
                        -1003,
                        "Way too many requests; IP banned.",
                        {"Retry-After": str(rule.retry_after)},
                    )
                elif rule.kind == "http_5xx":
                    # what a gateway in front of the venue answers: a page, not JSON
                    response = web.Response(
                        status=rule.status,
                        text=f"<html><body><h1>{rule.status} Service Unavailable</h1></body>"
                        "</html>",
                        content_type="text/html",
                    )
                elif rule.kind == "timeout":
                    await asyncio.sleep(rule.delay_s)
                    response = self._error(
                        503,
                        -1007,
                        "Timeout waiting for response from backend server. "
                        "Send status unknown; execution status unknown.",
                    )
                else:  # response_lost: executed, then the connection drops
                    await handler(request)
                    transport = request.transport
                    if transport is not None:
                        transport.close()
                    raise ConnectionResetError("fault: response lost")
            else:
                response = await handler(request)
        except BinanceError as exc:
            response = exc.response()
        except AlpacaError as exc:
            response = exc.response()
        except web.HTTPException as exc:
            if exc.status == 404 and self.dialect == "binance":
                response = web.json_response(
                    {"code": -1000, "msg": f"Unknown endpoint {request.path}."}, status=404
                )
            else:
                response = self._error(exc.status, -1000, exc.reason)
        except ConnectionResetError:
            self._log(seq, request, 0, start, fault)
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the last resort: the venue's error, never a traceback
            log.exception("unexpected error on %s %s", request.method, request.path)
            response = self._error(
                500,
                -1000,
                f"An unknown error occurred while processing the request. ({type(exc).__name__})",
            )
        self._log(seq, request, response.status, start, fault)
        return response

    def _log(self, seq: int, request: web.Request, status: int, start: float, fault: str) -> None:
        if request.path.startswith("/_tp/"):
            return
        self.requests.append(
            RequestRecord(
                seq,
                request.method,
                request.path,
                status,
                (time.perf_counter() - start) * 1000,
                fault,
            )
        )

    # -- observability ----------------------------------------------------------------------
    async def _requests(self, request: web.Request) -> web.Response:
        return web.json_response([r.to_dict() for r in self.requests])

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.core.state())

    async def _faults(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.faults.hits))

    async def _deposit(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            self.core.deposit(
                str(body["account"]), str(body["asset"]), fixed.to_raw(str(body["amount"]))
            )
        except (KeyError, ValueError, Rejected) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})


class RunningExchange:
    """A server running on 127.0.0.1 in a background thread."""

    def __init__(self, server: ExchangeServer, port: int) -> None:
        self.server = server
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name=f"exchange-{port}", daemon=True)

    @property
    def core(self) -> ExchangeCore:
        return self.server.core

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.server.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()

    def start(self, timeout: float = 10.0) -> RunningExchange:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the exchange did not start")
        if self._error is not None:
            raise RuntimeError(f"the exchange did not start: {self._error}") from self._error
        return self

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the server's loop (the only thread that touches the core)."""
        fut: Future[T] = Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
            with contextlib.suppress(Exception):
                fut.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> RunningExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_exchange(
    data: ReplayData,
    accounts: list[AccountSpec],
    dialect: str = "binance",
    speed: float = 1.0,
    faults: FaultProfile | None = None,
    port: int | None = None,
    skip_s: float = 0.0,
) -> RunningExchange:
    """Start a local exchange in a background thread; returns once it listens."""
    core = ExchangeCore(
        data,
        accounts,
        speed=speed,
        clock_mode="wall" if dialect == "binance" else "replay",
        skip_ns=int(skip_s * 1e9),
    )
    server = ExchangeServer(core, dialect, FaultInjector(faults))
    return RunningExchange(server, port or free_port()).start()
