"""Snapshots in the journal database and restore = latest snapshot + tail, on both backends.

The PostgreSQL tests need the server at ``TRADEPILOT_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); when it cannot be reached
they fail - they never skip.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import uuid
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from test_projection import (
    Run,
    assert_matches_engine,
    default_scenario,
    fold,
    instrument,
    run_scenario,
)
from tradepilot.model.enums import AccountType
from tradepilot.model.events import SessionStarted, encode
from tradepilot.persistence import (
    SCHEMA_VERSION,
    SNAPSHOT_FORMAT_VERSION,
    JournalError,
    JournalRecoveryWarning,
    PersistentJournal,
    ProjectingJournal,
    SnapshotError,
    Snapshotter,
    SnapshotVersionError,
    SnapshotWarning,
    SqliteJournal,
    StateProjection,
    open_journal,
    restore,
)

PG_URL = os.environ.get(
    "TRADEPILOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

# An unexpected recovery or unusable snapshot is a failure; tests that expect one say so.
pytestmark = [
    pytest.mark.filterwarnings("error::tradepilot.persistence.integrity.JournalRecoveryWarning"),
    pytest.mark.filterwarnings("error::tradepilot.persistence.snapshots.SnapshotWarning"),
]


# -- backends ------------------------------------------------------------------------------------
def connect_pg() -> Engine:
    """An engine on the test server; fails (never skips) when it is unreachable."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL persistence tests need a server at {PG_URL} "
            f"(set TRADEPILOT_TEST_PG_URL to use another): {exc.orig}",
            pytrace=False,
        )
    return engine


@dataclass
class Target:
    """Where a test's journal lives: a SQLite file or a PostgreSQL session."""

    name: str
    location: str
    session: str
    pg: Engine | None = None

    def open(self, batch_size: int = 4096) -> PersistentJournal:
        return open_journal(self.location, session=self.session, batch_size=batch_size)

    def execute(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run SQL on the stored tables; ``:session`` is this target's session (PostgreSQL)."""
        if self.pg is not None:
            with self.pg.begin() as conn:
                result = conn.execute(text(sql), {"session": self.session, **params})
                return [tuple(row) for row in result] if result.returns_rows else []
        conn = sqlite3.connect(self.location)
        try:
            with conn:
                return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def where(self) -> str:
        """The session condition to add to a PostgreSQL query (nothing for SQLite)."""
        return "session = :session AND " if self.pg is not None else ""

    def cleanup(self) -> None:
        if self.pg is not None:
            from tradepilot.persistence.postgres import drop_session

            drop_session(self.location, self.session)


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    engine = connect_pg()
    yield engine
    engine.dispose()


def make_target(name: str, tmp_path: Path, pg: Engine | None) -> Target:
    if name == "sqlite":
        return Target("sqlite", str(tmp_path / "journal.db"), "main")
    return Target("postgres", PG_URL, f"test-{uuid.uuid4().hex}", pg)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    pg = request.getfixturevalue("pg_engine") if request.param == "postgres" else None
    t = make_target(request.param, tmp_path, pg)
    try:
        yield t
    finally:
        t.cleanup()


@pytest.fixture
def scenario() -> Run:
    return default_scenario()


def full_replay(journal: PersistentJournal, run: Run) -> StateProjection:
    return StateProjection.from_journal(journal, [run.instrument], "USDT", run.balances)


def header(version: int) -> bytes:
    return struct.pack(">6sH", b"TPSNAP", version)


# -- storage ---------------------------------------------------------------------------------------
def test_write_list_read_and_prune_snapshots(target: Target, scenario: Run) -> None:
    proj = scenario.projection()
    with target.open() as journal:
        scenario.write(journal)
        assert journal.latest_snapshot() is None and journal.snapshots() == []
        payloads = {}
        for seq in (100, 500, 900):
            part = scenario.projection()
            fold(scenario.events[:seq], part)
            payloads[seq] = part.to_snapshot()
            journal.write_snapshot(seq, part.last_ts, payloads[seq])
        infos = journal.snapshots()
        assert [(i.seq, i.format_version, i.size) for i in infos] == [
            (seq, SNAPSHOT_FORMAT_VERSION, len(p)) for seq, p in payloads.items()
        ]
        assert [i.ts for i in infos] == [scenario.events[seq - 1].ts for seq in payloads]
        assert journal.latest_snapshot() == (900, payloads[900])
        assert journal.latest_snapshot(max_seq=899) == (500, payloads[500])
        assert journal.latest_snapshot(max_seq=99) is None
        fold(scenario.events, proj)
        journal.write_snapshot(900, 1, proj.to_snapshot())  # same seq: replaced
        assert journal.latest_snapshot() == (900, proj.to_snapshot())
        assert len(journal.snapshots()) == 3
        assert journal.prune_snapshots(keep=2) == 1
        assert [i.seq for i in journal.snapshots()] == [500, 900]
        assert journal.prune_snapshots(keep=5) == 0
        with pytest.raises(JournalError, match="keep must not be negative"):
            journal.prune_snapshots(-1)
    with target.open() as journal:  # kept across reopening
        assert [i.seq for i in journal.snapshots()] == [500, 900]


def test_write_snapshot_refuses_what_it_cannot_store(target: Target, scenario: Run) -> None:
    with target.open() as journal:
        scenario.write(journal)
        n = journal.last_seq
        good = scenario.projection().to_snapshot()
        for seq in (0, -1, n + 1):
            with pytest.raises(JournalError, match=r"a snapshot must be taken at a seq"):
                journal.write_snapshot(seq, 0, good)
        with pytest.raises(JournalError, match="not a snapshot payload"):
            journal.write_snapshot(n, 0, b"just bytes")
        with pytest.raises(JournalError, match="disagrees with its payload"):
            journal.write_snapshot(n, 0, good, format_version=SNAPSHOT_FORMAT_VERSION + 1)
        journal.write_snapshot(n, 0, good, format_version=SNAPSHOT_FORMAT_VERSION)
        assert [i.seq for i in journal.snapshots()] == [n]


def test_write_snapshot_flushes_the_buffer_first(target: Target, scenario: Run) -> None:
    with target.open() as journal:
        for event in scenario.events[:300]:
            journal.append(event)  # buffered, not flushed
        proj = scenario.projection()
        fold(scenario.events[:300], proj)
        journal.write_snapshot(300, proj.last_ts, proj.to_snapshot())
        stored = target.execute(f"SELECT COUNT(*) FROM events WHERE {target.where()}seq > 0")
        assert stored == [(300,)]
        assert journal.last_batch == 1


def test_snapshots_after_the_last_complete_batch_are_deleted_on_open(
    target: Target, scenario: Run
) -> None:
    events = scenario.events[:1000]
    with target.open() as journal:
        for i, event in enumerate(events, 1):
            journal.append(event)
            if i % 250 == 0:
                journal.flush()
        for seq in (500, 1000):
            proj = scenario.projection()
            fold(events[:seq], proj)
            journal.write_snapshot(seq, proj.last_ts, proj.to_snapshot())
    target.execute(f"DELETE FROM batches WHERE {target.where()}batch = 4")  # seq 751..1000
    with pytest.warns(JournalRecoveryWarning, match=r"discarded 250 rows after seq 750"):
        journal = target.open()
    with journal:
        assert [i.seq for i in journal.snapshots()] == [500]
        restored = restore(journal, [scenario.instrument], "USDT", scenario.balances)
        assert restored.state() == full_replay(journal, scenario).state()
        assert restored.last_seq == 750
        # appending resumes at 751: a snapshot at a seq written again is a new one
        for event in events[750:]:
            journal.append(event)
        assert restore(journal).state() == full_replay(journal, scenario).state()


def test_latest_snapshot_is_never_beyond_the_complete_batches(
    target: Target, scenario: Run
) -> None:
    with target.open() as journal:
        scenario.write(journal)
        n = journal.last_seq
        proj = scenario.projection()
        fold(scenario.events[:400], proj)
        journal.write_snapshot(400, proj.last_ts, proj.to_snapshot())
        # a row from elsewhere (e.g. a damaged copy) describing events that do not exist
        session_col = "session, " if target.pg is not None else ""
        session_val = ":session, " if target.pg is not None else ""
        target.execute(
            f"INSERT INTO snapshots ({session_col}seq, ts, format_version, payload) "
            f"VALUES ({session_val}:seq, 0, 1, :payload)",
            seq=n + 5,
            payload=header(1) + b"x",
        )
        assert journal.latest_snapshot() is not None
        assert journal.latest_snapshot()[0] == 400  # type: ignore[index]
        assert restore(journal).state() == full_replay(journal, scenario).state()


# -- restore --------------------------------------------------------------------------------------
@pytest.mark.parametrize("every", [97, 700, 100_000])
def test_restore_equals_full_replay_equals_the_engine(target: Target, every: int) -> None:
    """The kernel writes through a ProjectingJournal that snapshots every ``every`` events."""
    with target.open(batch_size=512) as journal:
        proj = StateProjection([instrument()], "USDT", default_scenario().balances)
        snapshotter = Snapshotter(journal, every=every, keep=None)
        run = run_scenario(journal=ProjectingJournal(journal, proj, snapshotter))
        n = journal.last_seq
    expected = default_scenario()
    assert n == len(expected.events)
    assert_matches_engine(proj, run.engine)
    with target.open() as journal:
        seqs = [i.seq for i in journal.snapshots()]
        assert seqs == list(range(every, n + 1, every))
        setup = ([run.instrument], "USDT", run.balances)
        full = full_replay(journal, run)
        restored = restore(journal, *setup)
        assert restored.state() == full.state() == proj.state()
        assert_matches_engine(restored, run.engine)
        for seq in seqs[-3:]:  # from older snapshots too
            older = restore(journal, max_snapshot_seq=seq)
            assert older.state() == full.state()
        no_snapshot = restore(journal, *setup, use_snapshot=False)
        assert no_snapshot.state() == full.state()


def test_restore_without_any_snapshot_is_a_full_replay(target: Target, scenario: Run) -> None:
    with target.open() as journal:
        scenario.write(journal)
        restored = restore(journal, [scenario.instrument], "USDT", scenario.balances)
    assert_matches_engine(restored, scenario.engine)


def test_restore_takes_the_setup_from_the_snapshot(target: Target, scenario: Run) -> None:
    """A format-1 SessionStarted whose config is not a run spec: only a snapshot knows the setup."""
    first = scenario.events[0]
    assert isinstance(first, SessionStarted)
    legacy = SessionStarted(first.ts, first.mode, first.config)  # format 1: no setup recorded
    with target.open() as journal:
        Run(
            scenario.engine,
            scenario.instrument,
            [legacy, *scenario.events[1:]],
            {},
            AccountType.CASH,
        ).write(journal)
        with pytest.raises(JournalError, match="cannot derive instruments"):
            restore(journal)
        proj = scenario.projection()
        fold(scenario.events[:1500], proj)
        journal.write_snapshot(1500, proj.last_ts, proj.to_snapshot())
        restored = restore(journal)
    assert_matches_engine(restored, scenario.engine)


def test_a_newer_snapshot_format_is_ignored_with_a_warning(target: Target, scenario: Run) -> None:
    newer = header(SNAPSHOT_FORMAT_VERSION + 1) + zlib.compress(b"\x90")
    with pytest.raises(SnapshotVersionError, match="newer than this tradepilot reads"):
        StateProjection.from_snapshot(newer)
    with target.open() as journal:
        scenario.write(journal)
        journal.write_snapshot(1000, 0, newer)
        assert journal.snapshots()[0].format_version == SNAPSHOT_FORMAT_VERSION + 1
        with pytest.warns(SnapshotWarning, match=r"snapshot at seq 1000 ignored .*newer"):
            restored = restore(journal, [scenario.instrument], "USDT", scenario.balances)
    assert_matches_engine(restored, scenario.engine)


@pytest.mark.parametrize(
    "payload",
    [
        header(SNAPSHOT_FORMAT_VERSION) + b"not zlib",
        header(SNAPSHOT_FORMAT_VERSION) + zlib.compress(b"\x93\x01\x02\x03"),
        header(0) + b"",
    ],
)
def test_a_damaged_snapshot_is_ignored_with_a_warning(
    tmp_path: Path, scenario: Run, payload: bytes
) -> None:
    with pytest.raises(SnapshotError):
        StateProjection.from_snapshot(payload)
    with SqliteJournal(tmp_path / "j.db") as journal:
        scenario.write(journal)
        journal.write_snapshot(800, 0, payload)
        with pytest.warns(SnapshotWarning, match=r"snapshot at seq 800 ignored"):
            restored = restore(journal, [scenario.instrument], "USDT", scenario.balances)
    assert_matches_engine(restored, scenario.engine)


def test_a_snapshot_of_another_seq_is_ignored(tmp_path: Path, scenario: Run) -> None:
    proj = scenario.projection()
    fold(scenario.events[:600], proj)
    with SqliteJournal(tmp_path / "j.db") as journal:
        scenario.write(journal)
        journal.write_snapshot(700, 0, proj.to_snapshot())  # holds seq 600
        with pytest.warns(SnapshotWarning, match="holds the state at seq 600"):
            restored = restore(journal, [scenario.instrument], "USDT", scenario.balances)
    assert_matches_engine(restored, scenario.engine)


def test_snapshotter_keeps_the_newest_and_resumes(target: Target, scenario: Run) -> None:
    with target.open() as journal:
        proj = scenario.projection()
        snapshotter = Snapshotter(journal, every=300, keep=2)
        writer = ProjectingJournal(journal, proj, snapshotter)
        for event in scenario.events[:1000]:
            writer.append(event)
        assert snapshotter.written == 3
        assert [i.seq for i in journal.snapshots()] == [600, 900]
    with target.open() as journal:
        proj = restore(journal)
        assert proj.last_seq == 1000
        snapshotter = Snapshotter(journal, every=300, keep=2)
        assert snapshotter.last_snapshot_seq == 900
        assert not snapshotter(proj)  # only 100 events since the last one
        writer = ProjectingJournal(journal, proj, snapshotter)
        for event in scenario.events[1000:]:
            writer.append(event)
        writer.flush()
        assert snapshotter.written == (len(scenario.events) - 900) // 300
        assert snapshotter.snapshot(proj) == len(scenario.events)  # on demand
        assert journal.snapshots()[-1].seq == len(scenario.events)
        assert restore(journal).state() == full_replay(journal, scenario).state()
    assert_matches_engine(proj, scenario.engine)


def test_snapshotter_arguments(tmp_path: Path, scenario: Run) -> None:
    with SqliteJournal(tmp_path / "j.db") as journal:
        with pytest.raises(ValueError, match="every must be positive"):
            Snapshotter(journal, every=0)
        with pytest.raises(ValueError, match="keep must be positive"):
            Snapshotter(journal, keep=0)
        with pytest.raises(JournalError, match="nothing to snapshot"):
            Snapshotter(journal).snapshot(scenario.projection())


def test_projecting_journal_needs_a_projection_at_the_journal_seq(
    tmp_path: Path, scenario: Run
) -> None:
    with SqliteJournal(tmp_path / "j.db") as journal:
        scenario.write(journal)
        with pytest.raises(JournalError, match="restore the projection from this journal first"):
            ProjectingJournal(journal, scenario.projection())
        with ProjectingJournal(journal, restore(journal, [scenario.instrument], "USDT", {})):
            pass


def test_restart_continues_ids_and_state(target: Target, scenario: Run) -> None:
    """Crash after 60 % of the events; restart from snapshot + tail and carry on."""
    cut = len(scenario.events) * 6 // 10
    with target.open() as journal:
        proj = scenario.projection()
        writer = ProjectingJournal(journal, proj, Snapshotter(journal, every=400))
        for event in scenario.events[:cut]:
            writer.append(event)
    with target.open() as journal:
        restarted = restore(journal)
        assert restarted.last_seq == cut
        assert restarted.state() == proj.state()
        assert restarted.id_counters == proj.id_counters
        writer = ProjectingJournal(journal, restarted, Snapshotter(journal, every=400))
        for event in scenario.events[cut:]:
            writer.append(event)
    assert_matches_engine(restarted, scenario.engine)


def test_cross_backend_snapshots_are_equal(tmp_path: Path, pg_engine: Engine) -> None:
    run = default_scenario()
    sqlite_t = make_target("sqlite", tmp_path, None)
    pg_t = make_target("postgres", tmp_path, pg_engine)
    try:
        states = []
        for t in (sqlite_t, pg_t):
            with t.open() as journal:
                proj = run.projection()
                writer = ProjectingJournal(journal, proj, Snapshotter(journal, every=555))
                for event in run.events:
                    writer.append(event)
            with t.open() as journal:
                found = journal.latest_snapshot()
                assert found is not None
                states.append((found, restore(journal).state()))
        assert states[0] == states[1]
    finally:
        pg_t.cleanup()


# -- schema ----------------------------------------------------------------------------------------
def test_sqlite_version_2_journal_is_migrated(tmp_path: Path, scenario: Run) -> None:
    path = tmp_path / "v2.db"
    events = scenario.events[:50]
    payloads = [encode(e) for e in events]
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE events (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
                                 kind TEXT NOT NULL, payload BLOB NOT NULL,
                                 batch INTEGER NOT NULL);
            CREATE TABLE batches (batch INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL,
                                  n_rows INTEGER NOT NULL, checksum INTEGER NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '2'), ('session', 'old');
            """
        )
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, 1)",
            [
                (i, e.ts, type(e).__name__, p)
                for i, (e, p) in enumerate(zip(events, payloads, strict=True), 1)
            ],
        )
        crc = 0
        for p in payloads:
            crc = zlib.crc32(p, crc)
        conn.execute("INSERT INTO batches VALUES (1, 50, 50, ?)", (crc,))
    conn.close()
    with SqliteJournal(path) as journal:
        assert journal.session == "old"
        assert journal.verify() == []
        proj = scenario.projection()
        fold(events, proj)
        journal.write_snapshot(50, proj.last_ts, proj.to_snapshot())
        assert restore(journal).state() == proj.state()
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        columns = [row[1] for row in conn.execute("PRAGMA table_info(snapshots)")]
    finally:
        conn.close()
    assert version == (str(SCHEMA_VERSION),) and SCHEMA_VERSION == 3
    assert columns == ["seq", "ts", "format_version", "payload"]


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


_TABLES = text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")


def test_postgres_revision_0002_adds_snapshots(pg_private_url: str, scenario: Run) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from tradepilot.persistence.postgres import alembic_config, drop_session, list_sessions
    from tradepilot.persistence.schema import VERSION_TABLE, metadata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        command.upgrade(alembic_config(url=pg_private_url), "0001")
    engine = create_engine(pg_private_url)
    try:
        with engine.connect() as conn:
            tables = set(conn.execute(_TABLES).scalars())
        assert tables == {"events", "batches", "journal_schema_version"}
        with open_journal(pg_private_url, session="s") as journal:  # upgrades to 0002
            scenario.write(journal)
            proj = scenario.projection()
            fold(scenario.events, proj)
            journal.write_snapshot(journal.last_seq, proj.last_ts, proj.to_snapshot())
        with engine.connect() as conn:
            version = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
            tables = set(conn.execute(_TABLES).scalars())
        assert version == "0002"
        assert tables == {"events", "batches", "snapshots", "journal_schema_version"}
        assert list_sessions(pg_private_url) == ["s"]
        drop_session(pg_private_url, "s")
        with engine.connect() as conn:
            left = conn.execute(text("SELECT COUNT(*) FROM snapshots")).scalar_one()
        assert left == 0
    finally:
        engine.dispose()
