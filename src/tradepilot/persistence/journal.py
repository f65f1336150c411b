"""The append-only journal of commands and events.

Every command and event the engine produces is appended here, in order, with a
gap-free sequence number. Appends are buffered and written in one transaction
per :meth:`flush` (group commit); the kernel flushes once per loop iteration in
paper and live mode and in large batches in a backtest.

Two backends share one behaviour: :class:`SqliteJournal` (the default, one
session per file, WAL mode) and
:class:`~tradepilot.persistence.postgres.PostgresJournal` (many sessions in one
database). :func:`open_journal` picks one from a path or URL.

Each flush is one *batch*: its rows carry the batch number, and a ``batches``
record written in the same transaction holds the batch's last sequence number,
row count and CRC-32 of its payloads. On open, an incomplete last batch (a
truncated or corrupted tail) is discarded with a warning and appending resumes
after the last complete batch (see :mod:`tradepilot.persistence.integrity`).

Rows hold only what the engine decided - sequence, event time, kind and the
event's canonical JSON - and nothing from the wall clock, so the same backtest
on the same input writes the same rows.

The same database also keeps *snapshots*: the folded state (see
:mod:`tradepilot.persistence.projection`) as of a sequence number, so a restart
loads the latest snapshot and replays only the events after it. A snapshot is
derived data: it is never part of a batch nor of the digest, and snapshots after
the last complete batch are deleted when the journal is opened.
"""

from __future__ import annotations

import errno
import hashlib
import sqlite3
import struct
import zlib
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Protocol, Self

from tradepilot.model.events import Event, decode, encode
from tradepilot.persistence.integrity import (
    BatchRecord,
    ClosingContext,
    JournalError,
    JournalRecoveryWarning,
    check_batches,
    logger,
    recover_tail,
)
from tradepilot.persistence.locks import SqliteLock

__all__ = [
    "SCHEMA_VERSION",
    "SNAPSHOT_MAGIC",
    "BatchRecord",
    "Journal",
    "JournalError",
    "JournalRecoveryWarning",
    "MemoryJournal",
    "NullJournal",
    "PersistentJournal",
    "SnapshotInfo",
    "SqliteJournal",
    "digest",
    "digest_rows",
    "is_postgres_url",
    "open_journal",
    "read_events",
    "snapshot_format_version",
]

#: Version of the SQLite journal schema this code writes (``meta.schema_version``).
#: 1: events(seq, ts, kind, payload). 2: + events.batch, the batches table, meta.session.
#: 3: + the snapshots table.
SCHEMA_VERSION = 3

DEFAULT_SESSION = "main"

Row = tuple[int, int, str, bytes]

#: Every snapshot payload starts with this magic and its format version (big-endian uint16).
SNAPSHOT_MAGIC = b"TPSNAP"
_SNAPSHOT_HEADER = struct.Struct(">6sH")


def snapshot_format_version(payload: bytes) -> int:
    """The format version in a snapshot payload's header; :class:`JournalError` if it has none."""
    if len(payload) < _SNAPSHOT_HEADER.size or not payload.startswith(SNAPSHOT_MAGIC):
        raise JournalError("not a snapshot payload (no TPSNAP header)")
    version: int = _SNAPSHOT_HEADER.unpack_from(payload)[1]
    return version


class SnapshotInfo(NamedTuple):
    """One stored snapshot, without its payload."""

    seq: int
    ts: int
    format_version: int
    size: int


class Journal(Protocol):
    def append(self, event: Event) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class PersistentJournal(Journal, Protocol):
    """A journal that stores its rows and can read them back (both backends)."""

    @property
    def session(self) -> str: ...

    @property
    def last_seq(self) -> int: ...

    @property
    def last_batch(self) -> int: ...

    def rows(
        self,
        after_seq: int = 0,
        kinds: Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Row]: ...

    def events(self, after_seq: int = 0) -> Iterator[Event]: ...

    def batches(self) -> list[BatchRecord]: ...

    def digest(self) -> str: ...

    def verify(self) -> list[str]: ...

    def write_snapshot(
        self, seq: int, ts: int, payload: bytes, format_version: int | None = None
    ) -> None: ...

    def latest_snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None: ...

    def snapshots(self) -> list[SnapshotInfo]: ...

    def prune_snapshots(self, keep: int) -> int: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


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


def digest_rows(rows: Iterable[Row]) -> str:
    """SHA-256 over journal rows ``(seq, ts, kind, payload)`` in order.

    Covers the content only - not the session name nor how rows were grouped
    into batches - so equal digests mean equal journals, whatever the backend.
    """
    h = hashlib.sha256()
    for seq, ts, kind, payload in rows:
        h.update(f"{seq}|{ts}|{kind}|".encode())
        h.update(payload)
        h.update(b"\n")
    return h.hexdigest()


# -- SQLite ------------------------------------------------------------------------------------
_SQLITE_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        payload BLOB NOT NULL,
        batch INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS batches (
        batch INTEGER PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        n_rows INTEGER NOT NULL,
        checksum INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        seq INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        format_version INTEGER NOT NULL,
        payload BLOB NOT NULL
    )""",
)
_INSERT_ROWS = "INSERT INTO events(seq, ts, kind, payload, batch) VALUES (?, ?, ?, ?, ?)"
_INSERT_BATCH = "INSERT INTO batches(batch, last_seq, n_rows, checksum) VALUES (?, ?, ?, ?)"


def _sqlite_schema_version(conn: sqlite3.Connection) -> int | None:
    """The file's schema version; ``None`` for a new (empty) database."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is not None:
            try:
                return int(row[0])
            except ValueError:
                raise JournalError(f"unreadable journal schema version {row[0]!r}") from None
    if "events" in tables:
        return 1
    return None


def _sqlite_migrate_1_to_2(conn: sqlite3.Connection, session: str) -> None:
    """All rows of a version-1 journal become batch 1 (one complete batch)."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("ALTER TABLE events ADD COLUMN batch INTEGER NOT NULL DEFAULT 1")
    conn.execute(_SQLITE_TABLES[2])
    n_rows, last_seq = conn.execute("SELECT COUNT(*), MAX(seq) FROM events").fetchone()
    if n_rows:
        crc = 0
        for (payload,) in conn.execute("SELECT payload FROM events ORDER BY seq"):
            crc = zlib.crc32(payload, crc)
        conn.execute(_INSERT_BATCH, (1, last_seq, n_rows, crc))
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('session', ?)", (session,))


def _sqlite_migrate_2_to_3(conn: sqlite3.Connection, session: str) -> None:
    """Add the (empty) snapshots table."""
    conn.execute(_SQLITE_TABLES[3])


_SQLITE_MIGRATIONS = {1: _sqlite_migrate_1_to_2, 2: _sqlite_migrate_2_to_3}


class _SqliteTail:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def last_batch(self) -> BatchRecord | None:
        row = self.conn.execute(
            "SELECT batch, last_seq, n_rows, checksum FROM batches ORDER BY batch DESC LIMIT 1"
        ).fetchone()
        return None if row is None else BatchRecord(*row)

    def previous_batch(self, batch: int) -> BatchRecord | None:
        row = self.conn.execute(
            "SELECT batch, last_seq, n_rows, checksum FROM batches WHERE batch < ? "
            "ORDER BY batch DESC LIMIT 1",
            (batch,),
        ).fetchone()
        return None if row is None else BatchRecord(*row)

    def count_after(self, seq: int) -> int:
        count: int = self.conn.execute(
            "SELECT COUNT(*) FROM events WHERE seq > ?", (seq,)
        ).fetchone()[0]
        return count

    def rows_between(self, after_seq: int, last_seq: int) -> list[tuple[int, int, bytes]]:
        return self.conn.execute(
            "SELECT seq, batch, payload FROM events WHERE seq > ? AND seq <= ? ORDER BY seq",
            (after_seq, last_seq),
        ).fetchall()

    def discard(self, after_seq: int, from_batch: int) -> None:
        self.conn.execute("DELETE FROM events WHERE seq > ?", (after_seq,))
        self.conn.execute("DELETE FROM batches WHERE batch >= ?", (from_batch,))


class SqliteJournal(ClosingContext):
    """Journal of one session in a SQLite file (WAL).

    ``session`` names the journal; a new file records it, an existing one must
    hold the same session (``None``: whichever it holds, ``"main"`` for a new
    file). ``batch_size`` bounds the in-memory buffer: a full buffer is flushed
    as one batch. ``exclusive`` makes this the journal's only writer while it is
    open (see :mod:`tradepilot.persistence.locks`); a second one is refused. A
    lock already held (a :class:`SqliteLock`) is adopted and released on close.
    """

    def __init__(
        self,
        path: str | Path,
        session: str | None = None,
        batch_size: int = 4096,
        exclusive: bool | SqliteLock = False,
    ) -> None:
        if session is not None and not session:
            raise JournalError("a journal session name must not be empty")
        if batch_size < 1:
            raise JournalError(f"batch_size must be positive, not {batch_size}")
        self.path = Path(path)
        self._lock = (
            exclusive
            if isinstance(exclusive, SqliteLock)
            else SqliteLock(self.path)
            if exclusive
            else None
        )
        try:
            self._conn = self._connect(session)
        except BaseException:
            self._release()
            raise
        self._buffer: list[tuple[int, int, str, bytes, int]] = []
        self._batch_size = batch_size
        self._closed = False

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _connect(self, session: str | None) -> sqlite3.Connection:
        try:
            if self.path.is_dir():
                raise JournalError(f"cannot open journal {self.path}: it is a directory")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # one connection, used by one thread at a time (callers serialise access)
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise JournalError(f"cannot open journal {self.path}: {reason}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._session = self._prepare(conn, session)
                last = recover_tail(_SqliteTail(conn), f"journal {self.path}")
                stale = conn.execute(
                    "DELETE FROM snapshots WHERE seq > ?",
                    (last.last_seq if last is not None else 0,),
                ).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalError(f"cannot open journal {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if stale:
            _log_stale_snapshots(f"journal {self.path}", stale)
        self._seq = last.last_seq if last is not None else 0
        self._batch = last.batch if last is not None else 0
        return conn

    def _prepare(self, conn: sqlite3.Connection, session: str | None) -> str:
        """Create, check or migrate the schema; return the session name."""
        version = _sqlite_schema_version(conn)
        if version is None:
            for ddl in _SQLITE_TABLES:
                conn.execute(ddl)
            stored = session or DEFAULT_SESSION
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("session", stored)],
            )
            return stored
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this "
                f"tradepilot understands ({SCHEMA_VERSION}); upgrade tradepilot to open it"
            )
        while version < SCHEMA_VERSION:
            _SQLITE_MIGRATIONS[version](conn, session or DEFAULT_SESSION)
            version += 1
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(version),),
            )
        row = conn.execute("SELECT value FROM meta WHERE key='session'").fetchone()
        stored = row[0] if row is not None else DEFAULT_SESSION
        if session is not None and session != stored:
            raise JournalError(
                f"journal {self.path} holds session {stored!r}, not {session!r} "
                "(a SQLite journal stores one session per file)"
            )
        return str(stored)

    @property
    def session(self) -> str:
        return self._session

    @property
    def last_seq(self) -> int:
        """Sequence number of the last appended event (flushed or not)."""
        return self._seq

    @property
    def last_batch(self) -> int:
        """Number of the last batch written."""
        return self._batch

    def append(self, event: Event) -> None:
        self._seq = seq = self._seq + 1
        buffer = self._buffer
        buffer.append((seq, event.ts, type(event).__name__, encode(event), self._batch + 1))
        if len(buffer) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events as one batch, in one transaction."""
        buffer = self._buffer
        if not buffer:
            return
        batch = self._batch + 1
        crc = zlib.crc32(b"".join([row[3] for row in buffer]))
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                conn.executemany(_INSERT_ROWS, buffer)
                conn.execute(_INSERT_BATCH, (batch, self._seq, len(buffer), crc))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.OperationalError, OSError) as exc:
            # disk full, I/O error, read-only file: the batch is not stored; the journal
            # still ends at its last complete batch, from which a resume continues
            raise JournalError(
                f"cannot write journal {self.path}: {_reason(exc)}; the session stops at "
                f"its last complete batch ({self._batch}) and can be resumed once fixed"
            ) from None
        self._buffer = []
        self._batch = batch

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._closed = True
            self._conn.close()
            self._release()

    # -- reading ---------------------------------------------------------------------------
    def rows(
        self,
        after_seq: int = 0,
        kinds: Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Row]:
        """``(seq, ts, kind, payload)`` of every event after ``after_seq``, in order.

        ``kinds`` keeps only those event kinds (class names); ``limit`` stops after
        that many rows.
        """
        self.flush()
        sql = "SELECT seq, ts, kind, payload FROM events WHERE seq > ?"
        params: list[object] = [after_seq]
        if kinds is not None:
            names = sorted(set(kinds))
            sql += f" AND kind IN ({', '.join('?' * len(names))})"
            params.extend(names)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        yield from self._conn.execute(sql, params)

    def events(self, after_seq: int = 0) -> Iterator[Event]:
        for *_, payload in self.rows(after_seq):
            yield decode(payload)

    def batches(self) -> list[BatchRecord]:
        self.flush()
        return [
            BatchRecord(*row)
            for row in self._conn.execute(
                "SELECT batch, last_seq, n_rows, checksum FROM batches ORDER BY batch"
            )
        ]

    def digest(self) -> str:
        """See :func:`digest_rows`."""
        return digest_rows(self.rows())

    def verify(self) -> list[str]:
        """Every integrity problem of the whole journal (empty when sound)."""
        self.flush()
        rows = self._conn.execute("SELECT seq, batch, payload FROM events ORDER BY seq")
        return check_batches(self.batches(), rows)

    # -- snapshots -------------------------------------------------------------------------
    def write_snapshot(
        self, seq: int, ts: int, payload: bytes, format_version: int | None = None
    ) -> None:
        """Store a snapshot of the state as of ``seq`` (replacing one at the same ``seq``).

        The buffer is flushed first, so a snapshot never refers to rows that are not
        committed. ``format_version`` defaults to the one in the payload's header.
        """
        version = _check_snapshot(self._seq, seq, payload, format_version)
        self.flush()
        conn = self._conn
        conn.execute("BEGIN")
        try:
            conn.execute(
                "INSERT OR REPLACE INTO snapshots(seq, ts, format_version, payload) "
                "VALUES (?, ?, ?, ?)",
                (seq, ts, version, payload),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def latest_snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        """``(seq, payload)`` of the newest snapshot at or before the last complete batch
        (and at or before ``max_seq``), or ``None``."""
        self.flush()
        bound = "(SELECT COALESCE(MAX(last_seq), 0) FROM batches)"
        sql = f"SELECT seq, payload FROM snapshots WHERE seq <= {bound}"
        params: tuple[int, ...] = ()
        if max_seq is not None:
            sql += " AND seq <= ?"
            params = (max_seq,)
        row = self._conn.execute(sql + " ORDER BY seq DESC LIMIT 1", params).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def snapshots(self) -> list[SnapshotInfo]:
        """Every stored snapshot (without payloads), oldest first."""
        return [
            SnapshotInfo(*row)
            for row in self._conn.execute(
                "SELECT seq, ts, format_version, length(payload) FROM snapshots ORDER BY seq"
            )
        ]

    def prune_snapshots(self, keep: int) -> int:
        """Delete all but the newest ``keep`` snapshots; return how many were deleted."""
        if keep < 0:
            raise JournalError(f"keep must not be negative, not {keep}")
        conn = self._conn
        cur = conn.execute(
            "DELETE FROM snapshots WHERE seq NOT IN "
            "(SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)",
            (keep,),
        )
        return int(cur.rowcount)


def _check_snapshot(last_seq: int, seq: int, payload: bytes, format_version: int | None) -> int:
    """The format version to store; :class:`JournalError` for a snapshot that cannot be."""
    if not 0 < seq <= last_seq:
        raise JournalError(
            f"a snapshot must be taken at a seq of the journal (1..{last_seq}), not {seq}"
        )
    header = snapshot_format_version(payload)
    if format_version is not None and format_version != header:
        raise JournalError(
            f"snapshot format_version {format_version} disagrees with its payload ({header})"
        )
    return header


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "no space left on the device"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return "no space left on the device" if "disk is full" in text else text


def _log_stale_snapshots(label: str, count: int) -> None:
    logger.warning("%s: deleted %d snapshot(s) taken after the last complete batch", label, count)


# -- choosing a backend ------------------------------------------------------------------------
_POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+")


def is_postgres_url(url_or_path: str) -> bool:
    return url_or_path.startswith(_POSTGRES_PREFIXES)


def _sqlite_path(url_or_path: str | Path) -> Path:
    text = str(url_or_path)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    return Path(text)


def open_journal(
    url_or_path: str | Path,
    session: str = DEFAULT_SESSION,
    batch_size: int = 4096,
    exclusive: bool = False,
) -> PersistentJournal:
    """Open (creating if needed) the journal of ``session``.

    A ``postgresql+psycopg://`` URL (or ``postgresql://``) opens a
    :class:`~tradepilot.persistence.postgres.PostgresJournal`; anything else is
    the path of a SQLite file (``sqlite:///`` prefix allowed). ``exclusive``: this
    process becomes the session's only writer, or :class:`JournalBusy` is raised.
    """
    if isinstance(url_or_path, str) and is_postgres_url(url_or_path):
        from tradepilot.persistence.postgres import PostgresJournal

        return PostgresJournal(url_or_path, session, batch_size=batch_size, exclusive=exclusive)
    return SqliteJournal(
        _sqlite_path(url_or_path), session, batch_size=batch_size, exclusive=exclusive
    )


def _open_existing(url_or_path: str | Path, session: str | None) -> PersistentJournal:
    if isinstance(url_or_path, str) and is_postgres_url(url_or_path):
        return open_journal(url_or_path, session or DEFAULT_SESSION)
    path = _sqlite_path(url_or_path)
    if not path.exists():
        raise JournalError(f"no journal at {path}")
    return SqliteJournal(path, session)


def read_events(url_or_path: str | Path, session: str | None = None) -> list[Event]:
    """All events of a journal, in order (a SQLite file's own session by default)."""
    with _open_existing(url_or_path, session) as journal:
        return list(journal.events())


def digest(url_or_path: str | Path, session: str | None = None) -> str:
    """SHA-256 over every journal row in order: equal digests mean equal journals."""
    with _open_existing(url_or_path, session) as journal:
        return journal.digest()
