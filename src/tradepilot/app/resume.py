"""Resuming an interrupted session on a simulated venue.

A backtest or a paper session on replayed data is deterministic: the same data,
configuration and seed produce the same events, byte for byte. Resuming one is
therefore *replaying it against its own journal*: the engine is rebuilt from the
journal's first record, run over the data from the start, and every event it
produces is compared with the next journaled one instead of being written again.
This rebuilds everything - orders, positions, balances, the simulated venue's
book of working orders and every strategy's private state - exactly, and proves
it: the first difference stops the resume with an error naming the sequence
number. Once the replay passes the journal's last complete batch the session is
live again: events are appended, the pacer waits for wall time again, and the
engine reconciles with the venue before it trades on.

Nothing is sent twice: client order ids are deterministic, and a replayed order
only re-creates the venue's state as it was, it does not reach any external
venue. (A live venue cannot be replayed; there, restart restores the projected
state from the latest snapshot plus the journal's tail and reconciles with the
venue, whose answers resolve orders left UNKNOWN.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from tradepilot.model.events import Event, TradingStateChanged, decode, encode
from tradepilot.persistence.journal import JournalError, PersistentJournal, Row

#: Records that describe a previous run's stop or repair rather than the trading itself.
SKIPPED_KINDS = frozenset({"SessionStopped", "ReconciliationCompleted"})


class VerifyingJournal:
    """A journal that checks replayed events against its existing rows, then appends."""

    def __init__(
        self, inner: PersistentJournal, on_caught_up: Callable[[], None] | None = None
    ) -> None:
        self.inner = inner
        self.verified = 0
        self._on_caught_up = on_caught_up
        self._rows: Iterator[Row] = inner.rows()
        self._next: Row | None = self._advance()

    @property
    def catching_up(self) -> bool:
        return self._next is not None

    def next_manual_state(self) -> TradingStateChanged | None:
        """The next journaled record, if it is an operator's trading-state change.

        Such changes came from outside the engine; the replay re-applies them at the
        item boundary where they were journaled.
        """
        row = self._next
        if row is None or row[2] != "TradingStateChanged":
            return None
        event = decode(bytes(row[3]))
        if isinstance(event, TradingStateChanged) and event.source == "manual":
            return event
        return None

    def _advance(self) -> Row | None:
        for row in self._rows:
            if row[2] not in SKIPPED_KINDS:
                return row
        return None

    def append(self, event: Event) -> None:
        expected = self._next
        if expected is None:
            self.inner.append(event)
            return
        payload = encode(event)
        stored = bytes(expected[3])
        if payload != stored:
            at = next(
                (i for i, (a, b) in enumerate(zip(payload, stored, strict=False)) if a != b),
                min(len(payload), len(stored)),
            )
            lo = max(0, at - 40)
            raise JournalError(
                f"resume diverged from the journal at seq {expected[0]}: the journal has "
                f"{expected[2]} ...{stored[lo : at + 60]!r}, the replay produced "
                f"{type(event).__name__} ...{payload[lo : at + 60]!r}"
            )
        self.verified += 1
        self._next = self._advance()
        if self._next is None and self._on_caught_up is not None:
            self._on_caught_up()

    def flush(self) -> None:
        if self._next is None:
            self.inner.flush()

    def close(self) -> None:
        close_rows = getattr(self._rows, "close", None)
        if close_rows is not None:
            close_rows()  # release the read cursor before the journal closes
        self.inner.close()
