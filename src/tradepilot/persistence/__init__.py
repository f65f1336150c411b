"""Persistence: the append-only event journal (SQLite or PostgreSQL).

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
    SqliteJournal,
    digest,
    open_journal,
    read_events,
)

if TYPE_CHECKING:
    from tradepilot.persistence.postgres import PostgresJournal

__all__ = [
    "SCHEMA_VERSION",
    "BatchRecord",
    "Journal",
    "JournalError",
    "JournalRecoveryWarning",
    "MemoryJournal",
    "NullJournal",
    "PersistentJournal",
    "PostgresJournal",
    "SqliteJournal",
    "digest",
    "open_journal",
    "read_events",
]


def __getattr__(name: str) -> object:
    if name == "PostgresJournal":
        from tradepilot.persistence.postgres import PostgresJournal

        return PostgresJournal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
