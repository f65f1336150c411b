"""The service application: REST under ``/api/v1``, ``/ws/events``, ``/metrics`` and the
dashboard at ``/``, over one journal session (see :class:`~tradepilot.api.source.SessionView`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepilot.api import problems
from tradepilot.api.auth import Authenticator, RateLimiter
from tradepilot.api.keys import KeyStore
from tradepilot.api.metrics import registry_for
from tradepilot.api.routes import Control, build_router
from tradepilot.api.source import SessionView
from tradepilot.api.ws import build_ws_router

_ASSETS = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


@dataclass
class ServiceSettings:
    rate_per_key: float = 50.0  # requests a second per key (0: no limit)
    burst_per_key: int = 200
    cors_origins: list[str] = field(default_factory=list)  # empty: CORS off
    command_wait_s: float = 5.0


class SecurityHeaders:
    """Adds headers to every HTTP response (a plain ASGI middleware: no per-request task)."""

    _HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _asset(name: str) -> Path:
    return Path(str(resources.files("tradepilot.api") / "dashboard" / name))


def _plotly_js() -> Path:
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def create_app(
    view: SessionView,
    keys: KeyStore,
    control: Control | None = None,
    settings: ServiceSettings | None = None,
) -> FastAPI:
    settings = settings or ServiceSettings()
    auth = Authenticator(keys, RateLimiter(settings.rate_per_key, settings.burst_per_key))
    app = FastAPI(
        title="tradepilot",
        version="1",
        description=(
            "A tradepilot session: orders, fills, positions, balances, equity, performance, "
            "execution quality, risk, and operator actions. Money is in decimal strings, "
            "times in ns since the epoch (UTC). Every endpoint needs an API key "
            "(`Authorization: Bearer <key>`) with the scope it names: read, trade or admin."
        ),
    )
    problems.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )

    app.add_middleware(SecurityHeaders)

    app.include_router(build_router(view, auth, control, settings.command_wait_s))
    app.include_router(build_ws_router(view, auth))
    registry = registry_for(view)

    @app.get(
        "/metrics",
        dependencies=[Depends(auth.require("read"))],
        tags=["service"],
        responses=problems.problem_responses(401, 403, 429),
    )
    def metrics() -> Response:
        """Prometheus metrics of the session."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the service answers (no session data, no key needed)."""
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(_asset("index.html"), media_type="text/html")

    @app.get("/dashboard/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name == "plotly.min.js":
            return FileResponse(_plotly_js(), media_type="text/javascript")
        if name not in _ASSETS:
            raise HTTPException(404, f"no asset {name!r}")
        return FileResponse(_asset(name), media_type=_ASSETS[name])

    return app
