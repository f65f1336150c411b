"""Authentication (API keys with scopes) and per-key rate limiting for the service.

A request presents its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``
(the WebSocket may use ``?key=`` since browsers cannot set headers there). No key or
an unknown key is 401; a key without the endpoint's scope is 403; a key over its
request budget is 429 with ``Retry-After``. Keys are never logged or echoed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from tradepilot.api.keys import ApiKey, KeyStore


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, bursts of ``burst``.

    Wall-clock time is right here: the limit protects the service, not the trading logic.
    """

    def __init__(self, rate: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._now = now
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float:
        """0 if the request may go, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._now()
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


class Authenticator:
    def __init__(self, keys: KeyStore, limiter: RateLimiter) -> None:
        self.keys = keys
        self.limiter = limiter

    def identify(self, secret: str | None) -> ApiKey:
        if not secret:
            raise HTTPException(
                401,
                "an API key is required: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = self.keys.verify(secret)
        if key is None:
            raise HTTPException(
                401, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"}
            )
        return key

    def require(self, scope: str) -> Callable[[Request], ApiKey]:
        """A FastAPI dependency that admits keys with ``scope`` (or a wider one)."""

        def dependency(request: Request) -> ApiKey:
            key = self.identify(presented_key(request))
            if not key.allows(scope):
                raise HTTPException(
                    403, f"this endpoint needs a key with the '{scope}' scope (yours: {key.scope})"
                )
            wait = self.limiter.take(key.key_id)
            if wait > 0:
                raise HTTPException(
                    429,
                    "request rate limit of this key exceeded",
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
            return key

        return dependency
