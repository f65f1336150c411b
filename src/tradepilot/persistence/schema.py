"""Table definitions of the PostgreSQL journal (SQLAlchemy Core).

These describe the *current* schema. They are used for queries and as the
``target_metadata`` of the Alembic environment (autogenerate compares against
them); the schema itself is created and changed only by the revisions under
``migrations/versions``, never by ``metadata.create_all``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, Table, Text

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("session", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("kind", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("batch", BigInteger, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("session", Text, primary_key=True),
    Column("batch", BigInteger, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("n_rows", BigInteger, nullable=False),
    Column("checksum", BigInteger, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("session", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("format_version", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

#: Alembic's version table for the journal schema. Not ``alembic_version``, so the
#: journal can live in a database whose other tables are migrated by another tool.
VERSION_TABLE = "journal_schema_version"
