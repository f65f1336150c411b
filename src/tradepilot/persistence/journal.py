"""The append-only journal of commands and events.

Every command and event the engine produces is appended here, in order, with a
gap-free sequence number. Appends are buffered and written in one transaction
per :meth:`flush` (group commit); the kernel flushes once per loop iteration in
paper and live mode and in large batches in a backtest.

The SQLite journal runs in WAL mode. Rows hold only what the engine decided -
sequence, event time, kind and the event's canonical JSON - and nothing from the
wall clock, so the same backtest on the same input writes the same rows.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from tradepilot.model.events import Event, decode, encode

SCHEMA_VERSION = 1


class JournalError(RuntimeError):
    pass


class Journal(Protocol):
    def append(self, event: Event) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class NullJournal:
    """Keeps nothing; for quick experiments and benchmarks of the loop alone."""

    def append(self, event: Event) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryJournal:
    """Keeps the encoded events in memory (tests, determinism checks)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str, bytes]] = []

    def append(self, event: Event) -> None:
        self.rows.append((len(self.rows) + 1, event.ts, type(event).__name__, encode(event)))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def events(self) -> list[Event]:
        return [decode(payload) for *_, payload in self.rows]


class SqliteJournal:
    """Journal in a SQLite file (WAL). ``batch_size`` bounds the in-memory buffer."""

    def __init__(self, path: str | Path, batch_size: int = 4096) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY,
                ts INTEGER NOT NULL,
                kind TEXT NOT NULL,
                payload BLOB NOT NULL
            );
            """
        )
        row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            self._conn.close()
            raise JournalError(
                f"journal {self.path.name} has schema version {row[0]}, newer than this "
                f"tradepilot understands ({SCHEMA_VERSION}); upgrade tradepilot to read it"
            )
        last = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        self._seq = int(last or 0)
        self._buffer: list[tuple[int, int, str, bytes]] = []
        self._batch_size = batch_size

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, event: Event) -> None:
        self._seq += 1
        self._buffer.append((self._seq, event.ts, type(event).__name__, encode(event)))
        if len(self._buffer) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        conn = self._conn
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events(seq, ts, kind, payload) VALUES (?, ?, ?, ?)", self._buffer
        )
        conn.execute("COMMIT")
        self._buffer.clear()

    def close(self) -> None:
        self.flush()
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()

    # -- reading ---------------------------------------------------------------------------
    def rows(self, after_seq: int = 0) -> Iterator[tuple[int, int, str, bytes]]:
        self.flush()
        cur = self._conn.execute(
            "SELECT seq, ts, kind, payload FROM events WHERE seq > ? ORDER BY seq", (after_seq,)
        )
        yield from cur

    def events(self, after_seq: int = 0) -> Iterator[Event]:
        for *_, payload in self.rows(after_seq):
            yield decode(payload)


def read_events(path: str | Path) -> list[Event]:
    """All events of a journal file, in order."""
    if not Path(path).exists():
        raise JournalError(f"no journal at {path}")
    journal = SqliteJournal(path)
    try:
        return list(journal.events())
    finally:
        journal.close()


def digest(path: str | Path) -> str:
    """SHA-256 over every journal row in order: equal digests mean equal journals."""
    h = hashlib.sha256()
    conn = sqlite3.connect(str(path))
    try:
        for seq, ts, kind, payload in conn.execute(
            "SELECT seq, ts, kind, payload FROM events ORDER BY seq"
        ):
            h.update(f"{seq}|{ts}|{kind}|".encode())
            h.update(payload)
            h.update(b"\n")
    finally:
        conn.close()
    return h.hexdigest()
