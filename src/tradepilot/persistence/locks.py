"""Exclusive ownership of a journal: one writer per session, refused at start.

A SQLite journal is owned through ``flock`` on a lock file next to it
(``NAME.db.lock``): the kernel releases the lock when its holder exits, however
it exits (``kill -9`` included), so a crashed session never leaves a stale lock.
The lock file itself holds nothing and is left in place (removing it would let
two processes lock two different files of the same name).

A PostgreSQL journal is owned through a session-level advisory lock keyed on the
session name, taken on the journal's own connection: it lasts exactly as long as
that connection.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path

from tradepilot.persistence.integrity import JournalError

__all__ = ["JournalBusy", "SqliteLock", "advisory_key", "lock_path"]


class JournalBusy(JournalError):
    """Another process writes this journal."""


def lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


class SqliteLock:
    """An exclusive ``flock`` on ``NAME.lock``; :meth:`release` (or process exit) frees it."""

    def __init__(self, journal: Path) -> None:
        self.path = lock_path(journal)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise JournalError(f"cannot lock journal {journal}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise JournalBusy(
                    f"journal {journal} is in use by another session (locked through "
                    f"{self.path}); stop that one first"
                ) from None
            raise JournalError(f"cannot lock journal {journal}: {exc.strerror}") from None
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock


def advisory_key(session: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from a session name."""
    digest = hashlib.sha256(f"tradepilot journal session {session}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
