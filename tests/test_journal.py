"""The journal, one suite over both backends (SQLite file, PostgreSQL session).

The PostgreSQL tests need the server at ``TRADEPILOT_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); when it cannot be
reached they fail - they never skip.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from tradepilot.model.events import (
    CancelOrder,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderInitialized,
    OrderSubmitted,
    SessionStarted,
    encode,
)
from tradepilot.persistence import (
    SCHEMA_VERSION,
    JournalError,
    JournalRecoveryWarning,
    PersistentJournal,
    SqliteJournal,
    digest,
    open_journal,
    read_events,
)
from tradepilot.persistence.schema import VERSION_TABLE, metadata

PG_URL = os.environ.get(
    "TRADEPILOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

# An unexpected recovery is a failure; tests that expect one use pytest.warns.
pytestmark = pytest.mark.filterwarnings(
    "error::tradepilot.persistence.integrity.JournalRecoveryWarning"
)


# -- events --------------------------------------------------------------------------------------
def sample_events(n: int, start: int = 0) -> list[Event]:
    """``n`` events of several kinds (optional fields set and unset, non-ASCII text)."""
    out: list[Event] = []
    for i in range(start, start + n):
        ts = 1_700_000_000_000_000_000 + i * 1_000
        oid = f"O-{i // 5}"
        match i % 7:
            case 0:
                out.append(SessionStarted(ts, "backtest", '{"name": "ümlaut €", "n": 1}'))
            case 1:
                out.append(
                    OrderInitialized(
                        ts, oid, "BTCUSDT.BINANCE", "ema", 1, "LIMIT", 1_000, price=30_000_00
                    )
                )
            case 2:
                out.append(OrderSubmitted(ts, oid))
            case 3:
                out.append(OrderAccepted(ts, oid, f"V-{i}"))
            case 4:
                out.append(
                    OrderFilled(
                        ts, oid, "BTCUSDT.BINANCE", "ema", f"T-{i}", 2, 500, 30_001_00, 3,
                        "USDT", "MAKER",
                    )
                )  # fmt: skip
            case 5:
                out.append(CancelOrder(ts, oid, reason="timeout"))
            case _:
                out.append(OrderCanceled(ts, oid))
    return out


def write(journal: PersistentJournal, events: list[Event], flush_every: int) -> None:
    for i, event in enumerate(events, 1):
        journal.append(event)
        if i % flush_every == 0:
            journal.flush()
    journal.flush()


# -- backends ------------------------------------------------------------------------------------
class Backend(Protocol):
    """Opens the journal under test and tampers with its stored rows."""

    name: str

    def open(self, batch_size: int = 4096) -> PersistentJournal: ...

    def row_batches(self) -> list[tuple[int, int]]: ...

    def delete_batch_record(self, batch: int) -> None: ...

    def delete_row(self, seq: int) -> None: ...

    def corrupt_payload(self, seq: int) -> None: ...

    def insert_rows(self, rows: list[tuple[int, Event, int]]) -> None: ...

    def make_schema_newer(self) -> None: ...


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, batch_size: int = 4096) -> PersistentJournal:
        return open_journal(str(self.path), batch_size=batch_size)

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def row_batches(self) -> list[tuple[int, int]]:
        return self._execute("SELECT seq, batch FROM events ORDER BY seq")

    def delete_batch_record(self, batch: int) -> None:
        self._execute("DELETE FROM batches WHERE batch = ?", (batch,))

    def delete_row(self, seq: int) -> None:
        self._execute("DELETE FROM events WHERE seq = ?", (seq,))

    def corrupt_payload(self, seq: int) -> None:
        self._execute(
            "UPDATE events SET payload = CAST(payload || x'20' AS BLOB) WHERE seq = ?", (seq,)
        )

    def insert_rows(self, rows: list[tuple[int, Event, int]]) -> None:
        for seq, event, batch in rows:
            self._execute(
                "INSERT INTO events(seq, ts, kind, payload, batch) VALUES (?, ?, ?, ?, ?)",
                (seq, event.ts, type(event).__name__, encode(event), batch),
            )

    def make_schema_newer(self) -> None:
        self._execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )


class PostgresBackend:
    name = "postgres"

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.session = f"test-{uuid.uuid4().hex}"

    def open(self, batch_size: int = 4096) -> PersistentJournal:
        return open_journal(self.url, session=self.session, batch_size=batch_size)

    def _execute(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.begin() as conn:
            result = conn.execute(text(sql), {"session": self.session, **params})
            return [tuple(row) for row in result] if result.returns_rows else []

    def row_batches(self) -> list[tuple[int, int]]:
        return self._execute("SELECT seq, batch FROM events WHERE session = :session ORDER BY seq")

    def delete_batch_record(self, batch: int) -> None:
        self._execute("DELETE FROM batches WHERE session = :session AND batch = :b", b=batch)

    def delete_row(self, seq: int) -> None:
        self._execute("DELETE FROM events WHERE session = :session AND seq = :s", s=seq)

    def corrupt_payload(self, seq: int) -> None:
        self._execute(
            "UPDATE events SET payload = payload || '\\x20'::bytea "
            "WHERE session = :session AND seq = :s",
            s=seq,
        )

    def insert_rows(self, rows: list[tuple[int, Event, int]]) -> None:
        for seq, event, batch in rows:
            self._execute(
                "INSERT INTO events(session, seq, ts, kind, payload, batch) "
                "VALUES (:session, :s, :ts, :k, :p, :b)",
                s=seq, ts=event.ts, k=type(event).__name__, p=encode(event), b=batch,
            )  # fmt: skip

    def make_schema_newer(self) -> None:
        # The version table is shared by every session of the database: tamper with
        # it only in a private schema (see the pg_private_url fixture).
        raise NotImplementedError

    def cleanup(self) -> None:
        self._execute("DELETE FROM events WHERE session = :session")
        self._execute("DELETE FROM batches WHERE session = :session")


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    """An engine on the test server; fails (never skips) when it is unreachable."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL journal tests need a server at {PG_URL} "
            f"(set TRADEPILOT_TEST_PG_URL to use another): {exc.orig}",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path / "journal.db")
        return
    pg = PostgresBackend(request.getfixturevalue("pg_engine"), PG_URL)
    try:
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def pg_private_url(pg_engine: Engine) -> Iterator[str]:
    """A URL whose search_path is a fresh, private schema (own tables and version table)."""
    schema = f"tp_test_{uuid.uuid4().hex[:16]}"
    with pg_engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with pg_engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


# -- behaviour of both backends -----------------------------------------------------------------
def test_append_flush_read_back_in_order(backend: Backend) -> None:
    events = sample_events(50)
    with backend.open() as journal:
        write(journal, events, flush_every=20)
        assert list(journal.events()) == events
        rows = list(journal.rows())
    assert [seq for seq, *_ in rows] == list(range(1, 51))
    assert [(ts, kind) for _, ts, kind, _ in rows] == [(e.ts, type(e).__name__) for e in events]
    assert [payload for *_, payload in rows] == [encode(e) for e in events]
    with backend.open() as journal:
        assert list(journal.events()) == events
        assert list(journal.events(after_seq=45)) == events[45:]


def test_close_flushes_and_seq_is_gap_free_across_reopen(backend: Backend) -> None:
    events = sample_events(12)
    with backend.open() as journal:
        for event in events[:5]:
            journal.append(event)  # not flushed: close does it
        assert journal.last_seq == 5
    with backend.open() as journal:
        assert journal.last_seq == 5
        assert journal.last_batch == 1
        write(journal, events[5:9], flush_every=2)
    with backend.open() as journal:
        write(journal, events[9:], flush_every=100)
        assert journal.last_seq == 12
    with backend.open() as journal:
        assert [seq for seq, *_ in journal.rows()] == list(range(1, 13))
        assert list(journal.events()) == events
        assert [b.batch for b in journal.batches()] == [1, 2, 3, 4]
        assert journal.verify() == []


def test_group_commit_writes_one_batch_record_per_flush(backend: Backend) -> None:
    events = sample_events(13)
    with backend.open(batch_size=5) as journal:
        for event in events[:3]:
            journal.append(event)
        journal.flush()
        journal.flush()  # nothing buffered: no batch
        for event in events[3:]:
            journal.append(event)  # a full buffer (5) flushes by itself
        assert journal.last_batch == 3
        records = journal.batches()
    assert [(b.batch, b.last_seq, b.n_rows) for b in records] == [
        (1, 3, 3),
        (2, 8, 5),
        (3, 13, 5),
    ]
    bounds = [(0, 3), (3, 8), (8, 13)]
    for record, (lo, hi) in zip(records, bounds, strict=True):
        assert record.checksum == zlib.crc32(b"".join(encode(e) for e in events[lo:hi]))
    assert backend.row_batches() == [(seq, 1 if seq <= 3 else 2 if seq <= 8 else 3)
                                     for seq in range(1, 14)]  # fmt: skip


def test_missing_batch_record_discards_the_tail(backend: Backend) -> None:
    events = sample_events(9)
    with backend.open() as journal:
        write(journal, events, flush_every=3)
    backend.delete_batch_record(3)
    with pytest.warns(JournalRecoveryWarning, match=r"discarded 3 rows after seq 6"):
        journal = backend.open()
    with journal:
        assert (journal.last_seq, journal.last_batch) == (6, 2)
        assert list(journal.events()) == events[:6]
        more = sample_events(2, start=100)
        write(journal, more, flush_every=10)
    with backend.open() as journal:
        assert list(journal.events()) == events[:6] + more
        assert [(b.batch, b.last_seq) for b in journal.batches()] == [(1, 3), (2, 6), (3, 8)]
        assert journal.verify() == []
    assert backend.row_batches()[-2:] == [(7, 3), (8, 3)]


def test_rows_of_a_batch_without_its_record_are_discarded(backend: Backend) -> None:
    events = sample_events(4)
    with backend.open() as journal:
        write(journal, events, flush_every=4)
    half = sample_events(3, start=4)
    backend.insert_rows([(5 + i, event, 2) for i, event in enumerate(half)])
    with pytest.warns(JournalRecoveryWarning, match=r"discarded 3 rows after seq 4"):
        journal = backend.open()
    with journal:
        assert journal.last_seq == 4
        assert list(journal.events()) == events
        journal.append(half[0])
    with backend.open() as journal:
        assert list(journal.events()) == [*events, half[0]]


def test_orphan_rows_in_an_empty_journal_are_discarded(backend: Backend) -> None:
    with backend.open():
        pass
    backend.insert_rows([(1, sample_events(1)[0], 1)])
    with pytest.warns(JournalRecoveryWarning, match=r"discarded 1 rows .* now empty"):
        journal = backend.open()
    with journal:
        assert (journal.last_seq, journal.last_batch) == (0, 0)
        assert list(journal.rows()) == []


def test_corrupted_payload_in_last_batch_fails_checksum(backend: Backend) -> None:
    events = sample_events(10)
    with backend.open() as journal:
        write(journal, events, flush_every=4)  # batches 1-4, 5-8, 9-10
    backend.corrupt_payload(9)
    with pytest.warns(JournalRecoveryWarning, match=r"incomplete batch 3 .*checksum mismatch"):
        journal = backend.open()
    with journal:
        assert (journal.last_seq, journal.last_batch) == (8, 2)
        assert list(journal.events()) == events[:8]
        journal.append(events[8])
    with backend.open() as journal:
        assert list(journal.events()) == events[:9]
        assert journal.verify() == []


def test_truncated_last_batch_is_discarded(backend: Backend) -> None:
    events = sample_events(10)
    with backend.open() as journal:
        write(journal, events, flush_every=4)
    backend.delete_row(10)  # the batch record survives, its last row does not
    with pytest.warns(JournalRecoveryWarning, match=r"incomplete batch 3 .*1 of its 2 rows"):
        journal = backend.open()
    with journal:
        assert journal.last_seq == 8
        assert list(journal.events()) == events[:8]


def test_recovery_walks_back_over_several_bad_batches(backend: Backend) -> None:
    events = sample_events(9)
    with backend.open() as journal:
        write(journal, events, flush_every=3)
    backend.corrupt_payload(5)
    backend.delete_batch_record(3)
    with pytest.warns(JournalRecoveryWarning) as caught:
        journal = backend.open()
    with journal:
        assert journal.last_seq == 3
        assert list(journal.events()) == events[:3]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "after seq 6" in messages[0]
    assert "batch 2" in messages[1] and "checksum" in messages[1]


def test_corruption_before_the_tail_is_reported_not_discarded(backend: Backend) -> None:
    events = sample_events(9)
    with backend.open() as journal:
        write(journal, events, flush_every=3)
    backend.corrupt_payload(2)
    with backend.open() as journal:  # only the tail is checked on open
        assert journal.last_seq == 9
        problems = journal.verify()
    assert len(problems) == 1
    assert problems[0].startswith("batch 1: checksum mismatch")


def test_digest_is_equal_for_equal_content(backend: Backend, tmp_path: Path) -> None:
    events = sample_events(30)
    with backend.open() as journal:
        write(journal, events, flush_every=7)
        first = journal.digest()
    other = SqliteJournal(tmp_path / "other.db", session="other")
    with other:
        write(other, events, flush_every=30)  # other batches, other session name
        assert other.digest() == first
        other.append(sample_events(1, start=99)[0])
        assert other.digest() != first
    with backend.open() as journal:
        assert journal.digest() == first


def test_open_journal_picks_the_backend(backend: Backend) -> None:
    with backend.open() as journal:
        kind = type(journal).__name__
    assert kind == {"sqlite": "SqliteJournal", "postgres": "PostgresJournal"}[backend.name]


# -- versions ------------------------------------------------------------------------------------
def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "journal.db")
    with backend.open() as journal:
        write(journal, sample_events(3), flush_every=3)
    backend.make_schema_newer()
    with pytest.raises(JournalError, match=rf"schema version {SCHEMA_VERSION + 1}, newer"):
        backend.open()


def test_postgres_newer_schema_is_refused(pg_private_url: str, pg_engine: Engine) -> None:
    with open_journal(pg_private_url, session="s") as journal:
        write(journal, sample_events(3), flush_every=3)
    schema = pg_private_url.rsplit("%3D", 1)[1]
    with pg_engine.begin() as conn:
        conn.execute(text(f"UPDATE \"{schema}\".journal_schema_version SET version_num = '0999'"))
    with pytest.raises(JournalError, match=r"revision 0999, which this tradepilot does not know"):
        open_journal(pg_private_url, session="s")


def test_postgres_schema_is_created_by_the_migration(
    pg_private_url: str, pg_engine: Engine
) -> None:
    from tradepilot.persistence.postgres import _script

    with open_journal(pg_private_url, session="s"):
        pass
    schema = pg_private_url.rsplit("%3D", 1)[1]
    with pg_engine.connect() as conn:
        tables = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
            ).scalars()
        )
        version = conn.execute(
            text(f'SELECT version_num FROM "{schema}".journal_schema_version')
        ).scalar_one()
    assert tables == {"events", "batches", "snapshots", "journal_schema_version"}
    assert version == _script().get_current_head()
    # the revisions and the Core table definitions describe the same schema
    engine = create_engine(pg_private_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_sqlite_version_1_journal_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    events = sample_events(5)
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
                                 kind TEXT NOT NULL, payload BLOB NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            """
        )
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            [(i, e.ts, type(e).__name__, encode(e)) for i, e in enumerate(events, 1)],
        )
    conn.close()
    with SqliteJournal(path) as journal:
        assert journal.session == "main"
        assert [(b.batch, b.last_seq, b.n_rows) for b in journal.batches()] == [(1, 5, 5)]
        journal.append(sample_events(1, start=5)[0])
    with SqliteJournal(path) as journal:
        assert list(journal.events()) == sample_events(6)
        assert journal.verify() == []
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    conn.close()


# -- SQLite specifics ---------------------------------------------------------------------------
def test_sqlite_file_holds_one_session(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with open_journal(str(path), session="alpha") as journal:
        write(journal, sample_events(2), flush_every=2)
    with SqliteJournal(path) as journal:
        assert journal.session == "alpha"
    with pytest.raises(JournalError, match=r"holds session 'alpha', not 'beta'"):
        open_journal(str(path), session="beta")
    assert read_events(path) == sample_events(2)
    assert digest(path) == digest(f"sqlite:///{path}", session="alpha")


def test_sqlite_payload_of_the_wrong_type_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        write(journal, sample_events(6), flush_every=3)
    conn = sqlite3.connect(path)
    with conn:  # || makes TEXT of a BLOB
        conn.execute("UPDATE events SET payload = payload || '' WHERE seq = 6")
    conn.close()
    with pytest.warns(JournalRecoveryWarning, match=r"row seq 6 has a str payload"):
        journal = SqliteJournal(path)
    with journal:
        assert list(journal.events()) == sample_events(3)


def test_sqlite_refuses_a_file_that_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(JournalError, match="cannot open journal"):
        SqliteJournal(path)
    with pytest.raises(JournalError, match="no journal at"):
        read_events(tmp_path / "missing.db")


# -- PostgreSQL specifics -----------------------------------------------------------------------
def test_postgres_sessions_share_a_database(pg_engine: Engine) -> None:
    a, b = PostgresBackend(pg_engine, PG_URL), PostgresBackend(pg_engine, PG_URL)
    try:
        with a.open() as ja, b.open() as jb:
            write(ja, sample_events(4), flush_every=2)
            write(jb, sample_events(3, start=50), flush_every=3)
        with a.open() as ja, b.open() as jb:
            assert list(ja.events()) == sample_events(4)
            assert list(jb.events()) == sample_events(3, start=50)
            assert [r.batch for r in ja.batches()] == [1, 2]
            assert [r.batch for r in jb.batches()] == [1]
    finally:
        a.cleanup()
        b.cleanup()


def test_postgres_second_writer_conflicts(pg_engine: Engine) -> None:
    pg = PostgresBackend(pg_engine, PG_URL)
    try:
        with pg.open() as first:
            second = pg.open()
            first.append(sample_events(1)[0])
            first.flush()
            second.append(sample_events(1)[0])
            with pytest.raises(JournalError, match="another writer"):
                second.flush()
            with pytest.raises(JournalError):
                second.close()
    finally:
        pg.cleanup()


def test_postgres_url_forms(pg_engine: Engine) -> None:
    from tradepilot.persistence.postgres import normalize_url

    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(JournalError, match="unsupported journal database driver"):
        normalize_url("postgresql+psycopg2://u@h/db")
    with pytest.raises(JournalError, match="cannot connect"):
        open_journal("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")


def test_cross_backend_digest(tmp_path: Path, pg_engine: Engine) -> None:
    events = sample_events(25)
    pg = PostgresBackend(pg_engine, PG_URL)
    try:
        with pg.open() as journal:
            write(journal, events, flush_every=10)
        with open_journal(str(tmp_path / "j.db")) as journal:
            write(journal, events, flush_every=4)
        assert digest(PG_URL, session=pg.session) == digest(tmp_path / "j.db")
        assert read_events(PG_URL, session=pg.session) == events
    finally:
        pg.cleanup()
