"""Request signatures: Binance's HMAC-SHA256 over the parameters, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["binance_signature", "split_signature", "verify_binance"]


def binance_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def split_signature(raw: str) -> tuple[str, str | None]:
    """``a=1&b=2&signature=xx`` -> (``a=1&b=2``, ``xx``): the signed part as sent."""
    if not raw:
        return "", None
    parts = raw.split("&")
    kept = [p for p in parts if not p.startswith("signature=")]
    sigs = [p[len("signature=") :] for p in parts if p.startswith("signature=")]
    return "&".join(kept), (sigs[-1] if sigs else None)


def verify_binance(secret: str, query: str, body: str) -> bool:
    """Binance signs ``totalParams``: the query string followed by the body (no separator)."""
    q, q_sig = split_signature(query)
    b, b_sig = split_signature(body)
    sig = b_sig or q_sig
    if sig is None:
        return False
    payload = q + b
    return hmac.compare_digest(binance_signature(secret, payload), sig.lower())
