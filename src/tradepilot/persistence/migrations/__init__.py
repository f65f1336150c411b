"""Alembic migration environment of the PostgreSQL journal schema."""
