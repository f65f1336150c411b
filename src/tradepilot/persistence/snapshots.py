"""Snapshots of the folded state, and restart = latest snapshot + the events after it.

* :class:`Snapshotter` writes ``projection.to_snapshot()`` into the journal database
  every ``every`` events (call it with the projection whenever convenient: it only
  writes when enough events have passed).
* :class:`ProjectingJournal` is a :class:`~tradepilot.persistence.journal.Journal`
  for the kernel: it appends to the real journal, folds every event into a
  projection and lets a :class:`Snapshotter` snapshot it - no other wiring needed.
* :func:`restore` rebuilds a :class:`StateProjection` from the newest usable snapshot
  and the events after it, or by a full replay when there is none.

A snapshot is derived data: the journal stays the record. A snapshot in a newer
format than this code reads, or a damaged one, is ignored with a
:class:`SnapshotWarning` and the state is rebuilt by a full replay.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping

from tradepilot.model.enums import AccountType
from tradepilot.model.events import Event
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.integrity import ClosingContext, JournalError
from tradepilot.persistence.journal import PersistentJournal
from tradepilot.persistence.projection import SnapshotError, StateProjection

__all__ = ["ProjectingJournal", "SnapshotWarning", "Snapshotter", "restore"]

logger = logging.getLogger("tradepilot.persistence")


class SnapshotWarning(UserWarning):
    """A stored snapshot could not be used; the state was rebuilt by a full replay."""


class Snapshotter:
    """Writes a snapshot of a projection every ``every`` events.

    Call it with the projection (``snapshotter(projection)``) as often as you like -
    after every event, every flush or every loop iteration: it writes only when the
    projection is at least ``every`` events past the last snapshot, and returns
    whether it did. The projection must be folded from ``journal``'s events (its
    ``last_seq`` a seq of that journal). The journal is flushed first, so a snapshot
    never describes events that are not committed. ``keep`` bounds how many
    snapshots are kept (older ones are deleted; ``None`` keeps all).
    """

    def __init__(
        self, journal: PersistentJournal, every: int = 100_000, keep: int | None = 2
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be positive, not {every}")
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be positive (or None), not {keep}")
        self.journal = journal
        self.every = every
        self.keep = keep
        stored = journal.snapshots()
        #: seq of the newest snapshot in the journal (0: none)
        self.last_snapshot_seq = stored[-1].seq if stored else 0
        self.written = 0

    def due(self, projection: StateProjection) -> bool:
        return projection.last_seq - self.last_snapshot_seq >= self.every

    def __call__(self, projection: StateProjection) -> bool:
        if projection.last_seq - self.last_snapshot_seq < self.every:
            return False
        self.snapshot(projection)
        return True

    def snapshot(self, projection: StateProjection) -> int:
        """Write a snapshot now (whatever ``every`` says); return its seq."""
        seq = projection.last_seq
        if seq <= 0:
            raise JournalError("nothing to snapshot: the projection has folded no event")
        self.journal.write_snapshot(seq, projection.last_ts, projection.to_snapshot())
        self.last_snapshot_seq = seq
        self.written += 1
        if self.keep is not None:
            self.journal.prune_snapshots(self.keep)
        return seq


class ProjectingJournal(ClosingContext):
    """A journal that also folds each appended event into ``projection``.

    Give it to the engine instead of the journal itself
    (``Engine.simulated(..., journal=ProjectingJournal(journal, projection, snapshotter))``):
    every ``append`` goes to ``journal``, is applied to the projection at the seq the
    journal gave it, and then ``snapshotter`` (if any) is offered the projection.
    """

    def __init__(
        self,
        journal: PersistentJournal,
        projection: StateProjection,
        snapshotter: Snapshotter | None = None,
    ) -> None:
        if projection.last_seq != journal.last_seq:
            raise JournalError(
                f"the projection is at seq {projection.last_seq} but the journal at "
                f"{journal.last_seq}: restore the projection from this journal first"
            )
        self.journal = journal
        self.projection = projection
        self.snapshotter = snapshotter

    def append(self, event: Event) -> None:
        journal = self.journal
        journal.append(event)
        self.projection.apply(journal.last_seq, event)
        snapshotter = self.snapshotter
        if snapshotter is not None:
            snapshotter(self.projection)

    def flush(self) -> None:
        self.journal.flush()

    def close(self) -> None:
        self.journal.close()


def _warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, SnapshotWarning, stacklevel=3)


def restore(
    journal: PersistentJournal,
    instruments: Mapping[str, Instrument] | Iterable[Instrument] | None = None,
    base_currency: str | None = None,
    starting_balances: Mapping[str, int] | None = None,
    account_type: AccountType | None = None,
    *,
    use_snapshot: bool = True,
    max_snapshot_seq: int | None = None,
    keep_order_events: bool = False,
) -> StateProjection:
    """The state of ``journal``'s session: latest snapshot + the events after it.

    The snapshot used is the newest one at or before the journal's last complete
    batch (and at or before ``max_snapshot_seq``). Without one - or with
    ``use_snapshot=False``, or when it is in a newer format or damaged (a
    :class:`SnapshotWarning`) - every event is replayed, with the setup given here or
    taken from the session's ``SessionStarted`` (see
    :meth:`StateProjection.for_journal`). ``instruments``, when given, also replace
    the definitions stored in a snapshot.
    """
    projection: StateProjection | None = None
    if use_snapshot:
        found = journal.latest_snapshot(max_seq=max_snapshot_seq)
        if found is not None:
            seq, payload = found
            try:
                projection = StateProjection.from_snapshot(
                    payload, instruments, keep_order_events=keep_order_events
                )
            except SnapshotError as exc:  # a newer format (SnapshotVersionError) or damage
                _warn(
                    f"journal session {journal.session!r}: snapshot at seq {seq} ignored "
                    f"({exc}); replaying every event"
                )
            else:
                if projection.last_seq != seq:
                    _warn(
                        f"journal session {journal.session!r}: snapshot stored at seq {seq} "
                        f"holds the state at seq {projection.last_seq}; ignored"
                    )
                    projection = None
    if projection is None:
        projection = StateProjection.for_journal(
            journal,
            instruments,
            base_currency,
            starting_balances,
            account_type,
            keep_order_events=keep_order_events,
        )
    projection.fold_rows(journal.rows(after_seq=projection.last_seq))
    return projection
