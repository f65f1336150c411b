"""Revisions of the PostgreSQL journal schema, oldest first."""
