"""Point unmodified client libraries at a local exchange (no I/O here).

ccxt's Binance class keeps every base URL in ``exchange.urls["api"]``; replacing
them all (REST, WebSocket streams and the WebSocket API) sends every request to
the local exchange, including endpoints it does not serve, which then fail
locally instead of reaching the internet::

    exchange = ccxt.binance({"apiKey": KEY, "secret": SECRET, "options": CCXT_BINANCE_OPTIONS})
    exchange.urls["api"] = binance_urls("http://127.0.0.1:8765")
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

__all__ = ["CCXT_BINANCE_OPTIONS", "binance_urls"]

#: ccxt options for a spot-only venue: no margin, futures or currency endpoints.
CCXT_BINANCE_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": ["spot"],
    "fetchCurrencies": False,
    "fetchMargins": False,
}

_DEFAULT_API: dict[str, Any] = {
    "public": "https://api.binance.com/api/v3",
    "private": "https://api.binance.com/api/v3",
    "v1": "https://api.binance.com/api/v1",
    "v3": "https://api.binance.com/api/v3",
    "sapi": "https://api.binance.com/sapi/v1",
    "sapiV2": "https://api.binance.com/sapi/v2",
    "sapiV3": "https://api.binance.com/sapi/v3",
    "sapiV4": "https://api.binance.com/sapi/v4",
    "dapiPublic": "https://dapi.binance.com/dapi/v1",
    "dapiPrivate": "https://dapi.binance.com/dapi/v1",
    "dapiPrivateV2": "https://dapi.binance.com/dapi/v2",
    "dapiData": "https://dapi.binance.com/futures/data",
    "eapiPublic": "https://eapi.binance.com/eapi/v1",
    "eapiPrivate": "https://eapi.binance.com/eapi/v1",
    "fapiPublic": "https://fapi.binance.com/fapi/v1",
    "fapiPublicV2": "https://fapi.binance.com/fapi/v2",
    "fapiPublicV3": "https://fapi.binance.com/fapi/v3",
    "fapiPrivate": "https://fapi.binance.com/fapi/v1",
    "fapiPrivateV2": "https://fapi.binance.com/fapi/v2",
    "fapiPrivateV3": "https://fapi.binance.com/fapi/v3",
    "fapiData": "https://fapi.binance.com/futures/data",
    "papi": "https://papi.binance.com/papi/v1",
    "papiV2": "https://papi.binance.com/papi/v2",
}


def _rebase(value: Any, http: str, ws: str) -> Any:
    if isinstance(value, dict):
        return {k: _rebase(v, http, ws) for k, v in value.items()}
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        path = parts.path
        if parts.scheme.startswith("ws"):
            if "ws-api" in path:
                return f"{ws}/ws-api/v3"
            return f"{ws}{'/stream' if path.endswith('/stream') else '/ws'}"
        return f"{http}{path}"
    return value


def binance_urls(base_url: str, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """``exchange.urls["api"]`` with every URL moved to ``base_url`` (``http://host:port``)."""
    base_url = base_url.rstrip("/")
    ws = "ws" + base_url[len("http") :] if base_url.startswith("http") else base_url
    api = dict(current) if current is not None else dict(_DEFAULT_API)
    api.setdefault("ws", {"spot": "", "ws-api": {"spot": ""}})
    out = _rebase(api, base_url, ws)
    ws_urls = dict(out.get("ws") or {})
    ws_urls["spot"] = f"{ws}/ws"
    ws_urls["margin"] = f"{ws}/ws"
    ws_api = dict(ws_urls.get("ws-api") or {})
    ws_api["spot"] = f"{ws}/ws-api/v3"
    ws_urls["ws-api"] = ws_api
    out["ws"] = ws_urls
    return dict(out)
