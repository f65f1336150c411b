"""The journal in PostgreSQL (SQLAlchemy 2 Core + psycopg 3).

Many sessions share one database: every row carries its session name. The
schema is versioned with Alembic (``migrations/``) and brought up to date when a
journal is opened; a database migrated by a newer tradepilot is refused. A flush
writes its rows with ``COPY ... FROM STDIN (FORMAT BINARY)`` and its
``batches`` record in the same transaction.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, cast

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, delete, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from tradepilot.model.events import Event, decode, encode
from tradepilot.persistence.integrity import (
    BatchRecord,
    ClosingContext,
    JournalError,
    check_batches,
    recover_tail,
)
from tradepilot.persistence.journal import (
    DEFAULT_SESSION,
    Row,
    SnapshotInfo,
    _check_snapshot,
    _log_stale_snapshots,
    digest_rows,
)
from tradepilot.persistence.locks import JournalBusy, advisory_key
from tradepilot.persistence.schema import VERSION_TABLE, batches, events, snapshots

__all__ = [
    "MIGRATIONS_DIR",
    "PostgresJournal",
    "alembic_config",
    "drop_session",
    "list_sessions",
    "normalize_url",
    "upgrade_schema",
]

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# Transaction-level advisory lock serialising schema upgrades ("tradepil").
_MIGRATION_LOCK = 0x7472_6164_6570_696C

_COPY = "COPY events (session, seq, ts, kind, payload, batch) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["text", "int8", "int8", "text", "bytea", "int8"]
_READ_CHUNK = 10_000


def normalize_url(url: str | URL) -> URL:
    """The URL with the psycopg 3 driver (``postgresql://`` is accepted)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise JournalError(
            f"unsupported journal database driver {parsed.drivername!r}; "
            "use a postgresql+psycopg:// URL"
        )
    return parsed


def alembic_config(connection: Connection | None = None, url: str | URL | None = None) -> Config:
    """An Alembic configuration for the journal schema, built in code (no ``alembic.ini``).

    Pass ``connection`` to migrate on it (inside its transaction) or ``url`` for
    Alembic commands that connect by themselves.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def upgrade_schema(conn: Connection) -> None:
    """Migrate the journal schema to the newest revision, in ``conn``'s transaction.

    Raises :class:`JournalError` when the database is at a revision this code
    does not know (it was migrated by a newer tradepilot).
    """
    conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
    script = _script()
    current = set(
        MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads()
    )
    known = {revision.revision for revision in script.walk_revisions()}
    heads = set(script.get_heads())
    unknown = current - known
    if unknown:
        raise JournalError(
            f"journal database schema is at revision {', '.join(sorted(unknown))}, which this "
            f"tradepilot does not know (it knows up to {', '.join(sorted(heads))}): the "
            "database was migrated by a newer tradepilot; upgrade tradepilot to open it"
        )
    if current != heads:
        command.upgrade(alembic_config(connection=conn), "head")


class _PgTail:
    def __init__(self, conn: Connection, session: str) -> None:
        self.conn = conn
        self.session = session

    def _record(self, batch_below: int | None) -> BatchRecord | None:
        stmt = select(batches.c.batch, batches.c.last_seq, batches.c.n_rows, batches.c.checksum)
        stmt = stmt.where(batches.c.session == self.session)
        if batch_below is not None:
            stmt = stmt.where(batches.c.batch < batch_below)
        row = self.conn.execute(stmt.order_by(batches.c.batch.desc()).limit(1)).first()
        return None if row is None else BatchRecord(row[0], row[1], row[2], row[3])

    def last_batch(self) -> BatchRecord | None:
        return self._record(None)

    def previous_batch(self, batch: int) -> BatchRecord | None:
        return self._record(batch)

    def count_after(self, seq: int) -> int:
        stmt = select(func.count()).where(events.c.session == self.session, events.c.seq > seq)
        count: int = self.conn.execute(stmt).scalar_one()
        return count

    def rows_between(self, after_seq: int, last_seq: int) -> list[tuple[int, int, bytes]]:
        stmt = (
            select(events.c.seq, events.c.batch, events.c.payload)
            .where(
                events.c.session == self.session,
                events.c.seq > after_seq,
                events.c.seq <= last_seq,
            )
            .order_by(events.c.seq)
        )
        return [(row[0], row[1], bytes(row[2])) for row in self.conn.execute(stmt)]

    def discard(self, after_seq: int, from_batch: int) -> None:
        self.conn.execute(
            delete(events).where(events.c.session == self.session, events.c.seq > after_seq)
        )
        self.conn.execute(
            delete(batches).where(batches.c.session == self.session, batches.c.batch >= from_batch)
        )


class PostgresJournal(ClosingContext):
    """Journal of one session in a PostgreSQL database shared by many sessions.

    ``url`` is a SQLAlchemy URL (``postgresql+psycopg://user@host:port/db``);
    ``batch_size`` bounds the in-memory buffer. Holds one connection for writing
    while open. One writer per session: a second writer's flush fails with a
    :class:`JournalError` (the rows' primary key), never interleaves; with
    ``exclusive`` a second writer is refused when it opens (an advisory lock).
    """

    def __init__(
        self,
        url: str | URL,
        session: str = DEFAULT_SESSION,
        batch_size: int = 4096,
        exclusive: bool = False,
    ) -> None:
        if not session:
            raise JournalError("a journal session name must not be empty")
        if batch_size < 1:
            raise JournalError(f"batch_size must be positive, not {batch_size}")
        self.url = normalize_url(url)
        self._session = session
        self._label = f"journal session {session!r} at {self.url.render_as_string()}"
        self._engine: Engine = create_engine(self.url, pool_size=2, max_overflow=2)
        try:
            self._conn = self._engine.connect()
        except OperationalError as exc:
            self._engine.dispose()
            raise JournalError(f"cannot connect to {self.url.render_as_string()}: {exc}") from exc
        try:
            if exclusive:
                self._own(session)
            with self._conn.begin():
                upgrade_schema(self._conn)
            with self._conn.begin():
                last = recover_tail(_PgTail(self._conn, session), self._label)
                stale = self._conn.execute(
                    delete(snapshots).where(
                        snapshots.c.session == session,
                        snapshots.c.seq > (last.last_seq if last is not None else 0),
                    )
                ).rowcount
            if stale:
                _log_stale_snapshots(self._label, stale)
        except BaseException:
            self._conn.close()
            self._engine.dispose()
            raise
        self._seq = last.last_seq if last is not None else 0
        self._batch = last.batch if last is not None else 0
        self._buffer: list[tuple[str, int, int, str, bytes, int]] = []
        self._batch_size = batch_size
        self._closed = False

    def _own(self, session: str) -> None:
        """Take the session's advisory lock; it lasts as long as this connection."""
        with self._conn.begin():
            owned = self._conn.execute(
                select(func.pg_try_advisory_lock(advisory_key(session)))
            ).scalar_one()
        if not owned:
            raise JournalBusy(f"{self._label} is in use by another session; stop that one first")

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
        buffer.append(
            (self._session, seq, event.ts, type(event).__name__, encode(event), self._batch + 1)
        )
        if len(buffer) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events as one batch, in one transaction."""
        buffer = self._buffer
        if not buffer:
            return
        batch = self._batch + 1
        crc = zlib.crc32(b"".join([row[4] for row in buffer]))
        conn = self._conn
        try:
            with conn.begin():
                driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
                with driver.cursor() as cur, cur.copy(_COPY) as copy:
                    copy.set_types(_COPY_TYPES)
                    for row in buffer:
                        copy.write_row(row)
                conn.execute(
                    insert(batches).values(
                        session=self._session,
                        batch=batch,
                        last_seq=self._seq,
                        n_rows=len(buffer),
                        checksum=crc,
                    )
                )
        except (psycopg.errors.UniqueViolation, IntegrityError) as exc:
            raise JournalError(
                f"{self._label}: batch {batch} (seq {buffer[0][1]}..{self._seq}) conflicts "
                "with rows already stored - is another writer appending to this session?"
            ) from exc
        except (OperationalError, psycopg.OperationalError) as exc:
            raise JournalError(
                f"{self._label}: cannot write batch {batch}: {exc}; the session stops at its "
                "last complete batch and can be resumed once fixed"
            ) from None
        self._buffer = []
        self._batch = batch

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._conn.close()
            self._engine.dispose()

    # -- reading ---------------------------------------------------------------------------
    def rows(
        self,
        after_seq: int = 0,
        kinds: Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Row]:
        """``(seq, ts, kind, payload)`` of every event after ``after_seq``, in order.

        ``kinds`` keeps only those event kinds (class names); ``limit`` stops after
        that many rows. Rows are streamed from a server-side cursor in binary format.
        """
        self.flush()
        sql = "SELECT seq, ts, kind, payload FROM events WHERE session = %s AND seq > %s"
        params: list[object] = [self._session, after_seq]
        if kinds is not None:
            sql += " AND kind = ANY(%s)"
            params.append(sorted(set(kinds)))
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(max(limit, 0))
        with self._engine.connect() as conn, conn.begin():
            driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
            with driver.cursor(name="tradepilot_rows", binary=True) as cur:
                cur.itersize = _READ_CHUNK
                cur.execute(sql, params)
                yield from cur

    def events(self, after_seq: int = 0) -> Iterator[Event]:
        for *_, payload in self.rows(after_seq):
            yield decode(payload)

    def batches(self) -> list[BatchRecord]:
        self.flush()
        stmt = (
            select(batches.c.batch, batches.c.last_seq, batches.c.n_rows, batches.c.checksum)
            .where(batches.c.session == self._session)
            .order_by(batches.c.batch)
        )
        with self._engine.connect() as conn:
            return [BatchRecord(r[0], r[1], r[2], r[3]) for r in conn.execute(stmt)]

    def digest(self) -> str:
        """See :func:`~tradepilot.persistence.journal.digest_rows`."""
        return digest_rows(self.rows())

    def verify(self) -> list[str]:
        """Every integrity problem of the whole session (empty when sound)."""
        records = self.batches()
        stmt = (
            select(events.c.seq, events.c.batch, events.c.payload)
            .where(events.c.session == self._session)
            .order_by(events.c.seq)
        )
        with self._engine.connect() as conn:
            result = conn.execution_options(yield_per=_READ_CHUNK).execute(stmt)
            return check_batches(records, ((r[0], r[1], bytes(r[2])) for r in result))

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
        where = (snapshots.c.session == self._session, snapshots.c.seq == seq)
        with self._conn.begin():
            self._conn.execute(delete(snapshots).where(*where))
            self._conn.execute(
                insert(snapshots).values(
                    session=self._session,
                    seq=seq,
                    ts=ts,
                    format_version=version,
                    payload=payload,
                )
            )

    def latest_snapshot(self, max_seq: int | None = None) -> tuple[int, bytes] | None:
        """``(seq, payload)`` of the newest snapshot at or before the last complete batch
        (and at or before ``max_seq``), or ``None``."""
        self.flush()
        sql = (
            "SELECT seq, payload FROM snapshots WHERE session = %s AND seq <= "
            "(SELECT COALESCE(MAX(last_seq), 0) FROM batches WHERE session = %s)"
        )
        params: list[object] = [self._session, self._session]
        if max_seq is not None:
            sql += " AND seq <= %s"
            params.append(max_seq)
        with self._engine.connect() as conn:
            driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
            with driver.cursor(binary=True) as cur:  # binary: no hex decoding of the payload
                cur.execute(sql + " ORDER BY seq DESC LIMIT 1", params)
                row = cur.fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def snapshots(self) -> list[SnapshotInfo]:
        """Every stored snapshot (without payloads), oldest first."""
        stmt = (
            select(
                snapshots.c.seq,
                snapshots.c.ts,
                snapshots.c.format_version,
                func.octet_length(snapshots.c.payload),
            )
            .where(snapshots.c.session == self._session)
            .order_by(snapshots.c.seq)
        )
        with self._engine.connect() as conn:
            return [SnapshotInfo(r[0], r[1], r[2], r[3]) for r in conn.execute(stmt)]

    def prune_snapshots(self, keep: int) -> int:
        """Delete all but the newest ``keep`` snapshots; return how many were deleted."""
        if keep < 0:
            raise JournalError(f"keep must not be negative, not {keep}")
        newest = (
            select(snapshots.c.seq)
            .where(snapshots.c.session == self._session)
            .order_by(snapshots.c.seq.desc())
            .limit(keep)
        )
        stmt = delete(snapshots).where(
            snapshots.c.session == self._session, snapshots.c.seq.not_in(newest)
        )
        with self._conn.begin():
            return int(self._conn.execute(stmt).rowcount)


def list_sessions(url: str | URL) -> list[str]:
    """Names of the sessions with at least one complete batch in the database."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn, conn.begin():
            upgrade_schema(conn)
            stmt = select(batches.c.session).distinct().order_by(batches.c.session)
            return [row[0] for row in conn.execute(stmt)]
    finally:
        engine.dispose()


def drop_session(url: str | URL, session: str) -> None:
    """Delete every row and batch record of ``session`` (irreversible)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn, conn.begin():
            upgrade_schema(conn)
            conn.execute(delete(events).where(events.c.session == session))
            conn.execute(delete(batches).where(batches.c.session == session))
            conn.execute(delete(snapshots).where(snapshots.c.session == session))
    finally:
        engine.dispose()
