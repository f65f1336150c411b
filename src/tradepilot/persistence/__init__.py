"""Persistence: the append-only event journal (SQLite or PostgreSQL), the state
projection folded from it, its snapshots (restart = latest snapshot + tail) and the
query API over it.

``PostgresJournal`` is imported on first use, so SQLAlchemy, Alembic and
psycopg are loaded only when a PostgreSQL journal is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradepilot.persistence.integrity import BatchRecord, JournalError, JournalRecoveryWarning
from tradepilot.persistence.journal import (
    SCHEMA_VERSION,
    Journal,
    MemoryJournal,
    NullJournal,
    PersistentJournal,
    SnapshotInfo,
    SqliteJournal,
    digest,
    open_journal,
    read_events,
)
from tradepilot.persistence.projection import (
    SNAPSHOT_FORMAT_VERSION,
    SnapshotError,
    SnapshotVersionError,
    StateProjection,
)
from tradepilot.persistence.queries import JournalQueries
from tradepilot.persistence.snapshots import (
    ProjectingJournal,
    Snapshotter,
    SnapshotWarning,
    restore,
)

if TYPE_CHECKING:
    from tradepilot.persistence.postgres import PostgresJournal

__all__ = [
    "SCHEMA_VERSION",
    "SNAPSHOT_FORMAT_VERSION",
    "BatchRecord",
    "Journal",
    "JournalError",
    "JournalQueries",
    "JournalRecoveryWarning",
    "MemoryJournal",
    "NullJournal",
    "PersistentJournal",
    "PostgresJournal",
    "ProjectingJournal",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotVersionError",
    "SnapshotWarning",
    "Snapshotter",
    "SqliteJournal",
    "StateProjection",
    "digest",
    "open_journal",
    "read_events",
    "restore",
]


def __getattr__(name: str) -> object:
    if name == "PostgresJournal":
        from tradepilot.persistence.postgres import PostgresJournal

        return PostgresJournal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
