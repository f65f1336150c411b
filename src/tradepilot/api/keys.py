"""API keys with scopes, stored hashed.

A key is shown once, when it is created: ``tp_<id>_<secret>``. The key file keeps
its id, scopes, creation time and the SHA-256 of the whole key with a per-key salt
(keys are 256-bit random strings, so a slow password hash buys nothing). Scopes
nest: ``admin`` includes ``trade``, which includes ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("read", "trade", "admin")
_RANK = {scope: i for i, scope in enumerate(SCOPES)}


class KeyFileError(ValueError):
    """A key file or a key request that cannot be used."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    scope: str
    created: str
    salt: str
    digest: str
    label: str = ""

    def allows(self, scope: str) -> bool:
        return _RANK[self.scope] >= _RANK[scope]


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()


def check_scope(scope: str) -> str:
    if scope not in _RANK:
        raise KeyFileError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
    return scope


class KeyStore:
    """The keys of one service, in a JSON file written with mode 0600."""

    def __init__(self, keys: list[ApiKey] | None = None, path: Path | None = None) -> None:
        self._keys = {k.key_id: k for k in keys or []}
        self.path = path

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        """Read a key file; a missing file is an empty store (created on first write)."""
        if not path.exists():
            return cls([], path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            keys = [ApiKey(**item) for item in raw["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"cannot read the key file {path}: {exc}") from None
        for key in keys:
            check_scope(key.scope)
        return cls(keys, path)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"keys": [_as_dict(k) for k in self]}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(sorted(self._keys.values(), key=lambda k: k.key_id))

    def __len__(self) -> int:
        return len(self._keys)

    def create(self, scope: str, label: str = "", created: str = "") -> tuple[ApiKey, str]:
        """Add a key; return it and the secret to show once."""
        check_scope(scope)
        key_id = secrets.token_hex(6)
        while key_id in self._keys:
            key_id = secrets.token_hex(6)
        secret = f"tp_{key_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_hex(16)
        key = ApiKey(key_id, scope, created, salt, _digest(salt, secret), label)
        self._keys[key_id] = key
        return key, secret

    def revoke(self, key_id: str) -> bool:
        return self._keys.pop(key_id, None) is not None

    def verify(self, secret: str) -> ApiKey | None:
        """The key a presented secret belongs to, or ``None`` (constant-time compare)."""
        parts = secret.split("_", 2)
        if len(parts) != 3 or parts[0] != "tp":
            return None
        key = self._keys.get(parts[1])
        if key is None:
            return None
        if hmac.compare_digest(key.digest, _digest(key.salt, secret)):
            return key
        return None


def _as_dict(key: ApiKey) -> dict[str, str]:
    return {
        "key_id": key.key_id,
        "scope": key.scope,
        "created": key.created,
        "salt": key.salt,
        "digest": key.digest,
        "label": key.label,
    }
