"""Alembic environment of the journal schema.

Run programmatically by :func:`tradepilot.persistence.postgres.upgrade_schema`,
which passes its connection in ``config.attributes["connection"]`` (migrations
then run inside that connection's transaction). Alembic commands given a
``sqlalchemy.url`` instead (see ``alembic_config(url=...)``) connect by
themselves; offline mode (``--sql``) renders the SQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from tradepilot.persistence.schema import VERSION_TABLE, metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url in the Alembic configuration")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
