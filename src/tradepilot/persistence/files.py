"""Opening a session's journal and files without ever losing one.

A *new* session refuses to start when its journal (SQLite: the file or its
``-wal``/``-shm``; PostgreSQL: a session that already holds events) or one of its
companion files (the cycle log) exists. The message names the file and the ways
on: ``--resume``, a new name, or ``--overwrite``. ``--overwrite`` never unlinks:
the old files are moved aside, together, to ``NAME.bakN`` (the lowest free
``N``), so even an explicit overwrite loses nothing. (A numbered suffix rather
than a wall-clock time keeps the file names reproducible.) A PostgreSQL session
cannot be moved aside: it needs a new session name.

Every journal opened here is owned exclusively for the session's life (see
:mod:`tradepilot.persistence.locks`), so a second writer - a second session on the
same file, two resumes of one session - is refused before it replays or sends
anything.

Journals are named by a path or a database URL (``postgresql+psycopg://...``);
``TRADEPILOT_JOURNAL_URL`` supplies one when the command line gives none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from tradepilot.persistence.integrity import JournalError
from tradepilot.persistence.journal import (
    DEFAULT_SESSION,
    Journal,
    NullJournal,
    PersistentJournal,
    SqliteJournal,
    is_postgres_url,
    open_journal,
)
from tradepilot.persistence.locks import SqliteLock

__all__ = [
    "JOURNAL_URL_ENV",
    "JournalExists",
    "JournalTarget",
    "check_name",
    "journal_target",
    "next_free",
    "open_new_journal",
    "open_resumed_journal",
]

JOURNAL_URL_ENV = "TRADEPILOT_JOURNAL_URL"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
JournalTarget = str | Path


class JournalExists(JournalError):
    """A new session would replace an existing journal or log."""


def check_name(name: object, what: str) -> str:
    """``name`` if it is safe as a file name (letters, digits, ``._-``; no separators)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"{what} {name!r} is not a valid name: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no path separators, no '..')"
        )
    return name


def journal_target(given: str | Path | None) -> JournalTarget | None:
    """The journal a command names: the option, else ``$TRADEPILOT_JOURNAL_URL``, else None.

    A database URL stays a string (it must never become a file path).
    """
    text = str(given) if given is not None else os.environ.get(JOURNAL_URL_ENV) or None
    return None if text is None else _normalize(text)


def _normalize(target: JournalTarget) -> JournalTarget:
    """A PostgreSQL URL as a string, anything else as a path."""
    if isinstance(target, Path):
        return target
    if is_postgres_url(target):
        return target
    if "://" in target and not target.startswith("sqlite:///"):
        raise ValueError(
            f"unsupported journal URL {target!r}: give a path or postgresql+psycopg://..."
        )
    return Path(target.removeprefix("sqlite:///"))


def _files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def next_free(path: Path) -> Path:
    """``path``, or ``stem-2.suffix``, ``stem-3.suffix``... whichever holds no journal yet."""
    n = 1
    candidate = path
    while any(p.exists() for p in _files(candidate)):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _check_parent(path: Path) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise JournalError(f"cannot create {path}: {parent} is not a directory")
            return


def _move_aside(paths: Sequence[Path]) -> None:
    n = 1
    while any(p.with_name(f"{p.name}.bak{n}").exists() for p in paths):
        n += 1
    for p in paths:
        if p.exists():
            p.rename(p.with_name(f"{p.name}.bak{n}"))


def _refuse(path: str | Path, what: str, resume_hint: bool) -> JournalExists:
    ways = "continue it with --resume, " if resume_hint else ""
    return JournalExists(
        f"{what} {path} already exists: {ways}choose a new name, or pass --overwrite "
        "(the old files are kept as .bakN)"
    )


def _claim(paths: Sequence[Path], overwrite: bool, resume_hint: bool) -> None:
    for p in paths:
        if p.is_dir():
            raise JournalError(f"{p} is a directory, not a file")
        _check_parent(p)
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise _refuse(existing[0], "file", resume_hint)
    if existing:
        _move_aside(paths)


def open_new_journal(
    target: JournalTarget | None,
    session: str = DEFAULT_SESSION,
    companions: Sequence[Path] = (),
    overwrite: bool = False,
    resume_hint: bool = True,
) -> Journal:
    """An empty journal for a new session, owned by this process (``None``: no journal).

    ``companions`` (the cycle log) are checked (and moved aside) with it.
    """
    logs = [Path(p) for p in companions]
    if target is None:
        _claim(logs, overwrite, resume_hint)
        return NullJournal()
    target = _normalize(target)
    if isinstance(target, str):
        journal = open_journal(target, session, exclusive=True)
        if journal.last_seq > 0:
            journal.close()
            raise JournalExists(
                f"journal session {session!r} at {target} already holds events: "
                + ("continue it with --resume or " if resume_hint else "")
                + "choose a new session name (a database session is never overwritten)"
            )
        try:
            _claim(logs, overwrite, resume_hint)
        except BaseException:
            journal.close()
            raise
        return journal
    _check_parent(target)
    lock = SqliteLock(target)
    try:
        _claim([*_files(target), *logs], overwrite, resume_hint)
        return SqliteJournal(target, exclusive=lock)
    except BaseException:
        lock.release()
        raise


def open_resumed_journal(
    target: JournalTarget, session: str = DEFAULT_SESSION
) -> PersistentJournal:
    """The journal of an interrupted session, owned by this process for the resume."""
    target = _normalize(target)
    if isinstance(target, str):
        journal = open_journal(target, session, exclusive=True)
        if journal.last_seq == 0:
            journal.close()
            raise ValueError(f"no journal session {session!r} at {target}: nothing to resume")
        return journal
    if not target.is_file():
        raise ValueError(f"no session journal at {target}: nothing to resume")
    return SqliteJournal(target, exclusive=True)
