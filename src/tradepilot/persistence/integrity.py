"""Batch integrity: what a complete batch is, and recovery of a journal's tail.

Every flush writes its rows and one ``batches`` record in a single transaction.
The record states the batch's last sequence number, its row count and the
CRC-32 of its payloads (in sequence order). A batch is *complete* when its rows
are exactly the sequence numbers after the previous batch's ``last_seq`` up to
its own ``last_seq``, all tagged with its batch number, and their payloads have
the recorded checksum.

On open, :func:`recover_tail` checks the end of the journal: rows after the last
recorded batch (no ``batches`` record) and a last batch that is not complete are
discarded with a :class:`JournalRecoveryWarning`, repeatedly, until the last
batch is complete. Appending then resumes after it. :func:`check_batches` checks
a whole journal without changing it.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import NamedTuple, Protocol, Self

logger = logging.getLogger("tradepilot.persistence")


class JournalError(RuntimeError):
    """A journal cannot be opened, read or written as asked."""


class JournalRecoveryWarning(UserWarning):
    """An incomplete tail of a journal was discarded when it was opened."""


class BatchRecord(NamedTuple):
    """One row of the ``batches`` table."""

    batch: int
    last_seq: int
    n_rows: int
    checksum: int


def checksum(payloads: Iterable[bytes]) -> int:
    """CRC-32 of the payloads in order (as if concatenated), as an unsigned int."""
    crc = 0
    for payload in payloads:
        crc = zlib.crc32(payload, crc)
    return crc


def batch_problem(
    record: BatchRecord, prev_last_seq: int, rows: Sequence[tuple[int, int, bytes]]
) -> str | None:
    """Why ``rows`` - ``(seq, batch, payload)`` in seq order, every row with
    ``prev_last_seq < seq <= record.last_seq`` - are not the complete batch
    ``record``; ``None`` when they are."""
    expected = record.last_seq - prev_last_seq
    if record.n_rows != expected:
        return (
            f"its record claims {record.n_rows} rows but spans seq {prev_last_seq + 1}.."
            f"{record.last_seq} ({expected} rows)"
        )
    if len(rows) != expected:
        return f"{len(rows)} of its {expected} rows are present"
    seq = prev_last_seq
    for row_seq, row_batch, payload in rows:
        seq += 1
        if row_seq != seq:
            return f"seq {seq} is missing"
        if row_batch != record.batch:
            return f"row seq {row_seq} is tagged with batch {row_batch}"
        if not isinstance(payload, bytes):
            return f"row seq {row_seq} has a {type(payload).__name__} payload, not bytes"
    crc = checksum(payload for *_, payload in rows)
    if crc != record.checksum:
        return f"checksum mismatch (recorded {record.checksum:#010x}, computed {crc:#010x})"
    return None


class TailStore(Protocol):
    """What :func:`recover_tail` needs from a backend (all within one transaction)."""

    def last_batch(self) -> BatchRecord | None: ...

    def previous_batch(self, batch: int) -> BatchRecord | None: ...

    def count_after(self, seq: int) -> int: ...

    def rows_between(self, after_seq: int, last_seq: int) -> list[tuple[int, int, bytes]]:
        """``(seq, batch, payload)`` with ``after_seq < seq <= last_seq``, by seq."""
        ...

    def discard(self, after_seq: int, from_batch: int) -> None:
        """Delete rows with ``seq > after_seq`` and records with ``batch >= from_batch``."""
        ...


def _warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, JournalRecoveryWarning, stacklevel=4)


def recover_tail(store: TailStore, label: str) -> BatchRecord | None:
    """Discard the incomplete tail of a journal; return its last complete batch."""
    while True:
        last = store.last_batch()
        if last is None:
            orphans = store.count_after(0)
            if orphans:
                _warn(
                    f"{label}: discarded {orphans} rows that belong to no complete batch "
                    "(no batch record); the journal is now empty"
                )
                store.discard(0, 1)
            return None
        orphans = store.count_after(last.last_seq)
        if orphans:
            _warn(
                f"{label}: discarded {orphans} rows after seq {last.last_seq} that belong "
                f"to no complete batch (no batch record; truncated tail); appending resumes "
                f"after batch {last.batch}"
            )
            store.discard(last.last_seq, last.batch + 1)
        prev = store.previous_batch(last.batch)
        prev_last_seq = prev.last_seq if prev is not None else 0
        if prev_last_seq >= last.last_seq:
            problem: str | None = (
                f"its last_seq {last.last_seq} does not follow the previous batch's {prev_last_seq}"
            )
        else:
            problem = batch_problem(
                last, prev_last_seq, store.rows_between(prev_last_seq, last.last_seq)
            )
        if problem is None:
            return last
        resume = f"batch {prev.batch}" if prev is not None else "the start"
        _warn(
            f"{label}: discarded incomplete batch {last.batch} (seq {prev_last_seq + 1}.."
            f"{last.last_seq}): {problem}; appending resumes after {resume}"
        )
        store.discard(prev_last_seq, last.batch)


def check_batches(
    records: Iterable[BatchRecord], rows: Iterable[tuple[int, int, bytes]]
) -> list[str]:
    """Every integrity problem of a whole journal (empty when sound).

    ``records`` by batch and ``rows`` - ``(seq, batch, payload)`` - by seq, both
    complete; the journal is not changed.
    """
    problems: list[str] = []
    row_iter = iter(rows)
    pending: tuple[int, int, bytes] | None = next(row_iter, None)
    prev_last_seq = 0
    prev_batch = 0
    for record in records:
        if record.batch != prev_batch + 1:
            problems.append(f"batch {record.batch} follows batch {prev_batch}")
        if record.last_seq <= prev_last_seq:
            problems.append(
                f"batch {record.batch}: last_seq {record.last_seq} does not follow {prev_last_seq}"
            )
        group: list[tuple[int, int, bytes]] = []
        while pending is not None and pending[0] <= record.last_seq:
            if pending[0] > prev_last_seq:
                group.append(pending)
            else:
                problems.append(f"row seq {pending[0]} is out of order")
            pending = next(row_iter, None)
        if record.last_seq > prev_last_seq:
            problem = batch_problem(record, prev_last_seq, group)
            if problem is not None:
                problems.append(f"batch {record.batch}: {problem}")
            prev_last_seq = record.last_seq
        prev_batch = record.batch
    extra = 0
    while pending is not None:
        extra += 1
        pending = next(row_iter, None)
    if extra:
        problems.append(f"{extra} rows after seq {prev_last_seq} belong to no batch")
    return problems


class ClosingContext:
    """``with`` support for anything with a ``close()``: the block's end closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
