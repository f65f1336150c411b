"""A session's setup - instruments and starting account - as its journal records it.

From journal format 2 on, the first ``SessionStarted`` carries the whole setup
(:func:`session_started` writes it), so every reader - projection, snapshots,
queries, reports, resume - takes it from there, whatever command wrote the
journal. A format-1 journal of ``backtest`` or ``paper`` is still read: its setup
is derived from the run specification in the config, as those commands built it
(data set instrument with the spec's fee, the capital in its quote currency, a
cash account). Other format-1 journals (``run-config``) do not record enough and
are refused with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tradepilot import __version__
from tradepilot.data.catalog import DEFAULT_DATASET, find
from tradepilot.model import fixed
from tradepilot.model.enums import AccountType
from tradepilot.model.events import JOURNAL_FORMAT_VERSION, SessionStarted, decode
from tradepilot.model.instrument import Instrument
from tradepilot.persistence.integrity import JournalError
from tradepilot.persistence.journal import PersistentJournal

__all__ = [
    "SessionSetup",
    "first_session_started",
    "session_setup",
    "session_started",
    "setup_of",
]


@dataclass(frozen=True)
class SessionSetup:
    """What a projection needs besides the events: instruments and the starting account."""

    instruments: Mapping[str, Instrument]
    base_currency: str
    starting_balances: Mapping[str, int]
    account_type: AccountType = AccountType.CASH


def session_started(
    ts: int,
    mode: str,
    config_json: str,
    instruments: Iterable[Instrument],
    starting_balances: Mapping[str, str],
    base_currency: str,
    account_type: AccountType,
) -> SessionStarted:
    """The ``SessionStarted`` of the current format, with the whole setup."""
    return SessionStarted(
        ts,
        mode,
        config_json,
        format_version=JOURNAL_FORMAT_VERSION,
        instruments=tuple({k: str(v) for k, v in inst.to_dict().items()} for inst in instruments),
        starting_balances={
            ccy: fixed.to_str(fixed.to_raw(v)) for ccy, v in sorted(starting_balances.items())
        },
        base_currency=base_currency,
        account_type=AccountType(account_type).value,
        package_version=__version__,
    )


def setup_of(event: SessionStarted) -> SessionSetup:
    """The setup recorded in (format 2) or derived from (format 1) a ``SessionStarted``.

    Raises :class:`JournalError` for a newer format, or a format-1 record whose config
    holds no run specification.
    """
    if event.format_version > JOURNAL_FORMAT_VERSION:
        raise JournalError(
            f"journal format version {event.format_version} is newer than this tradepilot "
            f"reads ({JOURNAL_FORMAT_VERSION}); upgrade tradepilot to read it"
        )
    if event.format_version < 2:
        return session_setup(event.config)
    try:
        instruments = [Instrument.from_dict(d) for d in event.instruments]
        balances = {ccy: fixed.to_raw(v) for ccy, v in event.starting_balances.items()}
        account_type = AccountType(event.account_type)
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"the session record's setup cannot be read: {exc}") from None
    return SessionSetup({i.id: i for i in instruments}, event.base_currency, balances, account_type)


def session_setup(config_json: str) -> SessionSetup:
    """The setup of a format-1 session, derived from its ``SessionStarted.config``.

    The config is a run specification as JSON (a backtest) or ``{"spec": {...}, ...}``
    (a paper session). Raises :class:`JournalError` when it holds none - a format-1
    ``run-config`` journal, for one, records its YAML configuration but not the
    instruments it built.
    """
    try:
        config = json.loads(config_json)
        if isinstance(config, dict) and isinstance(config.get("spec"), dict):
            config = config["spec"]
        if not isinstance(config, dict) or "strategy" not in config:
            raise ValueError("the session config holds no run specification")
        dataset = str(config.get("dataset", DEFAULT_DATASET))
        fee = config.get("fee_bps")
        inst = find(dataset).instrument(None if fee is None else str(fee))
        capital = fixed.to_raw(str(config.get("capital", "100000")))
    except (TypeError, ValueError) as exc:
        raise JournalError(
            f"cannot derive instruments and balances from the session config ({exc}); "
            "a journal written before format 2 by run-config does not record them: run it "
            "again, or pass instruments, base_currency and starting_balances"
        ) from None
    return SessionSetup({inst.id: inst}, inst.quote, {inst.quote: capital}, AccountType.CASH)


def first_session_started(journal: PersistentJournal) -> SessionStarted:
    """The journal's first ``SessionStarted``; :class:`JournalError` when it has none."""
    rows = journal.rows(kinds=("SessionStarted",), limit=1)
    try:
        for _seq, _ts, _kind, payload in rows:
            event = decode(bytes(payload))
            if isinstance(event, SessionStarted):
                return event
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    raise JournalError(
        "the journal has no SessionStarted to take the setup from; "
        "pass instruments, base_currency and starting_balances"
    )
