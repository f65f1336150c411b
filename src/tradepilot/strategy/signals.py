"""Signals: what a strategy, a file or an API call asks the engine to do.

A :class:`Signal` is a frozen request - buy, sell, close, or move a position to a
target weight or quantity - with the evidence behind it (confidence, expected
return, risk score) and its limits (price, stop-loss, take-profit, time to live).
It is not an order: the :mod:`~tradepilot.strategy.pipeline` validates it, runs it
through the gates, sizes it and only then sends an order through the risk engine.

Numbers in a signal are human numbers (floats: prices in the quote currency,
quantities in base units, weights and confidence as fractions). They are checked
here and converted to raw fixed-point at the pipeline boundary.

Every step of a signal's life is an event (``SignalReceived``, ``SignalRejected``,
``SignalExpired``, ``SignalHeld``, ``SignalAccepted``) that is journaled and
published on the bus like an order event. They subclass
:class:`tradepilot.model.events.Event`, so they encode like any other event;
:func:`decode` reads them back together with the core events.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import json
import math
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import msgspec

from tradepilot.core.time import NS_PER_SECOND, parse_duration
from tradepilot.model.events import AnyEvent, Event
from tradepilot.model.instrument import Instrument
from tradepilot.strategy.algo_choice import algo_names, choose
from tradepilot.strategy.signal_events import (
    SIGNAL_EVENTS,
    AnySignalEvent,
    SignalAccepted,
    SignalExpired,
    SignalHeld,
    SignalReceived,
    SignalRejected,
)

__all__ = [
    "SIGNAL_EVENTS",
    "AnySignalEvent",
    "FileRecord",
    "FileSignalSource",
    "QueuedSignal",
    "RejectCode",
    "Rejection",
    "Signal",
    "SignalAccepted",
    "SignalAction",
    "SignalExpired",
    "SignalHeld",
    "SignalQueue",
    "SignalReceived",
    "SignalRejected",
    "decode",
    "load_signal_file",
    "parse_record",
    "parse_time",
    "signal_json",
    "validate",
]


class SignalAction(StrEnum):
    BUY = "BUY"  # open or add to a long (or, where shorting is allowed, cover a short)
    SELL = "SELL"  # exit a long on reversal, or open a short where shorting is allowed
    CLOSE = "CLOSE"  # close the whole position, whatever its side
    TARGET = "TARGET"  # move the position to ``target_weight`` or ``target_quantity``


class Signal(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One trading signal. Only ``instrument_id`` and ``action`` are required.

    * ``ts`` - when it was issued (ns since the epoch); 0 means "when received".
    * ``quantity`` - explicit size in base units for BUY/SELL (the sizer's limits
      still apply); without it the strategy's sizer decides.
    * ``target_weight`` (fraction of the strategy's capital, 0-1) or
      ``target_quantity`` (base units) - exactly one, for TARGET signals.
    * ``price`` - limit price; without it the order is a market order.
    * ``stop_loss`` / ``take_profit`` - absolute prices; they override the exit
      policy's levels for the position the signal opens.
    * ``confidence`` in [0, 1]; ``expected_return`` (a fraction, may be negative);
      ``risk_score`` (>= 0, informational).
    * ``strategy_id`` - defaults to the strategy hosting the pipeline.
    * ``signal_id`` - unique per pipeline; assigned (``<strategy>-s<n>``) if empty.
    * ``ttl_ns`` - time to live from ``ts``; an older signal is expired.
    * ``priority`` - higher first when several signals wait in the queue.
    * ``note`` - free text from the issuer (why it was issued).
    * ``algo`` / ``algo_params`` - the execution algorithm that works the order and its
      parameters (``twap`` with ``{"duration": "10m"}``, ``bracket``, ...); empty means
      the strategy's default (see :mod:`tradepilot.strategy.algo_choice`).
    """

    instrument_id: str
    action: SignalAction
    ts: int = 0
    quantity: float | None = None
    target_weight: float | None = None
    target_quantity: float | None = None
    price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    confidence: float = 1.0
    expected_return: float | None = None
    risk_score: float | None = None
    strategy_id: str = ""
    signal_id: str = ""
    ttl_ns: int | None = None
    priority: int = 0
    note: str = ""
    algo: str = ""
    algo_params: dict[str, Any] | None = None

    @property
    def side(self) -> int:
        """+1 for BUY, -1 for SELL, 0 otherwise."""
        return _SIDES.get(self.action, 0)

    def expires_at(self, received_ts: int) -> int | None:
        if self.ttl_ns is None:
            return None
        return (self.ts or received_ts) + self.ttl_ns


_SIDES: dict[str, int] = {"BUY": 1, "SELL": -1}


# -- events ------------------------------------------------------------------------------------
# The five signal events live in tradepilot.strategy.signal_events (they depend on nothing
# but the core Event) and are re-exported here.

_decoder = msgspec.json.Decoder(AnyEvent | AnySignalEvent)
_signal_encoder = msgspec.json.Encoder()


def decode(payload: bytes | str) -> Event:
    """Decode a journal payload: the core events and the signal events."""
    result: Event = _decoder.decode(payload)
    return result


def signal_json(signal: Signal) -> str:
    """The signal as JSON (its ``repr`` if a field holds something JSON cannot encode)."""
    try:
        return _signal_encoder.encode(signal).decode()
    except (TypeError, ValueError, OverflowError):
        return repr(signal)[:2000]


# -- validation --------------------------------------------------------------------------------
class RejectCode(StrEnum):
    INVALID_ACTION = "INVALID_ACTION"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    DUPLICATE_ID = "DUPLICATE_ID"
    INVALID_VALUE = "INVALID_VALUE"
    CONFIDENCE_RANGE = "CONFIDENCE_RANGE"
    INVALID_TARGET = "INVALID_TARGET"
    INCONSISTENT_LEVELS = "INCONSISTENT_LEVELS"
    EXPIRED = "EXPIRED"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    MALFORMED = "MALFORMED"
    BAD_ALGO = "BAD_ALGO"


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    reason: str


_ACTIONS = frozenset(a.value for a in SignalAction)
ACTION_VALUES = _ACTIONS
_POSITIVE = ("quantity", "price", "stop_loss", "take_profit", "target_quantity")


def _number_problem(name: str, value: object, allow_negative: bool = False) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} is not a number: {value!r}"
    if not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if not allow_negative and value < 0:
        return f"{name} cannot be negative, got {value!r}"
    return None


def _numbers_problem(signal: Signal) -> str | None:
    for name in _POSITIVE:
        value = getattr(signal, name)
        if value is None:
            continue
        problem = _number_problem(name, value)
        if problem is None and value == 0 and name != "target_quantity":
            problem = f"{name} must be positive, got {value!r}"
        if problem is not None:
            return problem
    for name, allow_negative in (
        ("target_weight", False),
        ("expected_return", True),
        ("risk_score", False),
    ):
        problem = _number_problem(name, getattr(signal, name), allow_negative)
        if problem is not None:
            return problem
    return None


_CLOSE = SignalAction.CLOSE
_TARGET = SignalAction.TARGET


def validate(
    signal: Signal,
    now: int,
    instruments: Mapping[str, Instrument],
    seen_ids: Container[str],
) -> Rejection | None:
    """The first reason to refuse ``signal`` at time ``now``, or None if it is valid.

    Checked in order: the action, the instrument, the id (duplicates), every
    number (NaN, infinities, negatives, zero prices or quantities), confidence in
    0-1, integer times, the target of a TARGET signal, stop-loss and take-profit on
    the right sides, a time not after ``now``, and the time to live.
    """
    if type(signal) is not Signal:
        return Rejection(RejectCode.MALFORMED, f"not a Signal: {type(signal).__name__}")
    action = signal.action
    if action not in _ACTIONS:
        return Rejection(
            RejectCode.INVALID_ACTION,
            f"unknown action {action!r} (use {', '.join(sorted(_ACTIONS))})",
        )
    if signal.instrument_id not in instruments:
        return Rejection(
            RejectCode.UNKNOWN_INSTRUMENT, f"unknown instrument {signal.instrument_id!r}"
        )
    sid = signal.signal_id
    if sid and sid in seen_ids:
        return Rejection(RejectCode.DUPLICATE_ID, f"duplicate signal id {sid!r}")
    conf = signal.confidence
    if type(conf) is not float or not 0.0 <= conf <= 1.0:
        problem = _number_problem("confidence", conf)
        if problem is not None:
            return Rejection(RejectCode.INVALID_VALUE, problem)
        if not 0.0 <= conf <= 1.0:
            return Rejection(RejectCode.CONFIDENCE_RANGE, f"confidence {conf!r} is outside 0-1")
    has_w = signal.target_weight is not None
    has_q = signal.target_quantity is not None
    if (
        has_w
        or has_q
        or signal.quantity is not None
        or signal.price is not None
        or signal.stop_loss is not None
        or signal.take_profit is not None
        or signal.expected_return is not None
        or signal.risk_score is not None
    ):
        problem = _numbers_problem(signal)
        if problem is not None:
            return Rejection(RejectCode.INVALID_VALUE, problem)
    ts, ttl, priority = signal.ts, signal.ttl_ns, signal.priority
    if type(ts) is not int or (ttl is not None and type(ttl) is not int):
        return Rejection(RejectCode.INVALID_VALUE, "ts and ttl_ns must be integers (ns)")
    if ts < 0:
        return Rejection(RejectCode.INVALID_VALUE, f"ts cannot be negative, got {ts}")
    if ttl is not None and ttl <= 0:
        return Rejection(RejectCode.INVALID_VALUE, f"ttl must be positive, got {ttl}")
    if type(priority) is not int:
        return Rejection(RejectCode.INVALID_VALUE, "priority must be an integer")
    if action == _TARGET:
        if has_w == has_q:
            return Rejection(
                RejectCode.INVALID_TARGET,
                "a TARGET signal needs exactly one of target_weight and target_quantity",
            )
        if signal.target_weight is not None and signal.target_weight > 1.0:
            return Rejection(
                RejectCode.INVALID_TARGET,
                f"target_weight {signal.target_weight!r} is above 1 (100 % of capital)",
            )
    elif has_w or has_q:
        return Rejection(RejectCode.INVALID_TARGET, f"a {action} signal cannot carry a target")
    if action == _CLOSE and signal.quantity is not None:
        return Rejection(RejectCode.INVALID_VALUE, "a CLOSE signal closes everything: no quantity")
    if signal.stop_loss is not None or signal.take_profit is not None:
        levels = _levels_problem(signal)
        if levels is not None:
            return Rejection(RejectCode.INCONSISTENT_LEVELS, levels)
    if signal.algo or signal.algo_params is not None:
        problem = _algo_problem(signal)
        if problem is not None:
            return Rejection(RejectCode.BAD_ALGO, problem)
    if ts > now:
        return Rejection(
            RejectCode.FUTURE_TIMESTAMP,
            f"issued at {ts}, after the engine time {now} (look-ahead)",
        )
    if ttl is not None:
        expires = (ts or now) + ttl
        if expires <= now:
            return Rejection(
                RejectCode.EXPIRED, f"expired at {expires}, {now - expires} ns before it arrived"
            )
    return None


def _algo_problem(signal: Signal) -> str | None:
    if type(signal.algo) is not str or not signal.algo:
        return f"algo_params need an algo (one of {', '.join(algo_names())})"
    if signal.algo_params is not None and not isinstance(signal.algo_params, dict):
        return f"algo_params must be a mapping, got {type(signal.algo_params).__name__}"
    try:
        choose(signal)
    except ValueError as exc:
        return str(exc)
    return None


def _levels_problem(signal: Signal) -> str | None:
    side = signal.side
    stop, take, ref = signal.stop_loss, signal.take_profit, signal.price
    if side == 0:
        return None
    if stop is not None and take is not None and (stop - take) * side >= 0:
        return f"stop-loss {stop} and take-profit {take} are on the wrong sides for a {side:+d}"
    if ref is not None:
        if stop is not None and (stop - ref) * side >= 0:
            return f"stop-loss {stop} is not on the losing side of the price {ref}"
        if take is not None and (take - ref) * side <= 0:
            return f"take-profit {take} is not on the winning side of the price {ref}"
    return None


# -- the queue ---------------------------------------------------------------------------------
class QueuedSignal(msgspec.Struct, frozen=True, gc=False):
    signal: Signal
    source: str
    received_ts: int
    expires_ts: int | None


class SignalQueue:
    """Signals waiting to be processed: highest priority first, then oldest, then arrival."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, QueuedSignal]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, item: QueuedSignal) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (-item.signal.priority, item.signal.ts, self._seq, item))

    def pop(self) -> QueuedSignal:
        return heapq.heappop(self._heap)[3]

    def peek(self) -> QueuedSignal | None:
        return self._heap[0][3] if self._heap else None

    def __iter__(self) -> Iterator[QueuedSignal]:
        """The waiting signals in processing order (without removing them)."""
        return (entry[3] for entry in sorted(self._heap))


# -- file source --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FileRecord:
    """One line of a signal file: a signal, or the reason it could not be read."""

    ts: int
    line: int
    signal: Signal | None
    error: str | None = None


_FIELDS = {f for f in Signal.__struct_fields__}
_FLOAT_FIELDS = {
    "quantity",
    "target_weight",
    "target_quantity",
    "price",
    "stop_loss",
    "take_profit",
    "confidence",
    "expected_return",
    "risk_score",
}
_ALIASES = {"instrument": "instrument_id", "symbol": "instrument_id", "id": "signal_id"}
_TIME_KEYS = ("ts", "ts_ns", "ts_ms", "time")
_TTL_KEYS = ("ttl", "ttl_ns")
_KNOWN_KEYS = _FIELDS | set(_ALIASES) | set(_TIME_KEYS) | set(_TTL_KEYS)


def parse_time(value: Any) -> int:
    """ns since the epoch from an int, a digit string (ns) or an ISO time (UTC by default)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * NS_PER_SECOND + dt.microsecond * 1000


def parse_record(raw: Mapping[str, Any], line: int) -> FileRecord:
    """Turn one CSV row or JSON object into a :class:`FileRecord` (never raises)."""
    ts = -1
    try:
        row = {
            _ALIASES.get(k.strip(), k.strip()): v
            for k, v in raw.items()
            if k is not None and v not in ("", None)
        }
        unknown = sorted(set(row) - _KNOWN_KEYS)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        if "ts_ms" in row:
            ts = int(row.pop("ts_ms")) * 1_000_000
        for key in ("ts", "ts_ns", "time"):
            if key in row:
                ts = parse_time(row.pop(key))
        if ts < 0:
            raise ValueError("no valid time (ts in ns, ts_ms or an ISO time)")
        kwargs: dict[str, Any] = {"ts": ts}
        if "ttl" in row:
            kwargs["ttl_ns"] = parse_duration(str(row.pop("ttl")))
        if "ttl_ns" in row:
            kwargs["ttl_ns"] = int(row.pop("ttl_ns"))
        for key, value in row.items():
            if key in _FLOAT_FIELDS:
                try:
                    kwargs[key] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"{key} {value!r} is not a number") from None
            elif key == "priority":
                kwargs[key] = int(value)
            elif key == "algo_params":
                kwargs[key] = _algo_params(value)
            elif key == "action":
                text = str(value).strip().upper()
                if text not in _ACTIONS:
                    raise ValueError(f"unknown action {value!r}")
                kwargs[key] = SignalAction(text)
            else:
                kwargs[key] = str(value)
        if "instrument_id" not in kwargs or "action" not in kwargs:
            raise ValueError("instrument_id and action are required")
        return FileRecord(ts, line, Signal(**kwargs))
    except (ValueError, TypeError, OverflowError) as exc:
        return FileRecord(ts, line, None, f"line {line}: {exc}")


def _algo_params(value: object) -> dict[str, Any]:
    """A JSON object, given as one (JSON lines) or as its text (a CSV cell)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"algo_params is not a JSON object: {value!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"algo_params must be a JSON object, got {value!r}")
    return value


def _open_text(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return path.open(newline="")


def load_signal_file(path: str | Path) -> list[FileRecord]:
    """Read a CSV (header row) or JSON-lines file of signals, sorted by time (stable).

    Unreadable lines become records with an ``error`` and are rejected with that
    reason when replayed; a missing file or an unknown CSV column raises ValueError.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such signal file")
    if not p.is_file():
        raise ValueError(f"{p}: not a file")
    try:
        return _read_signal_file(p)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{p}: cannot read: {exc}") from None


def _read_signal_file(p: Path) -> list[FileRecord]:
    name = p.name.lower().removesuffix(".gz")
    records: list[FileRecord] = []
    with _open_text(p) as fh:
        if name.endswith((".jsonl", ".ndjson", ".json")):
            for n, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    records.append(FileRecord(-1, n, None, f"line {n}: malformed JSON: {exc}"))
                    continue
                if not isinstance(obj, dict):
                    records.append(FileRecord(-1, n, None, f"line {n}: expected a JSON object"))
                    continue
                records.append(parse_record(obj, n))
        else:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            unknown = sorted({_ALIASES.get(h, h) for h in header} - _KNOWN_KEYS)
            if unknown:
                raise ValueError(f"{p}: unknown column(s) {', '.join(unknown)}")
            for n, row in enumerate(reader, start=2):
                records.append(parse_record(row, n))
    return sorted(records, key=lambda r: r.ts)


def check_records(
    records: Sequence[FileRecord], instruments: Mapping[str, Instrument]
) -> list[FileRecord]:
    """``records`` with every signal run through :func:`validate`, the replay's own check.

    Each signal is checked at its own time (the replay sees it then), against
    ``instruments`` and the ids seen before it; a refused one gets its reason.
    """
    seen: set[str] = set()
    out: list[FileRecord] = []
    for rec in records:
        sig = rec.signal
        if sig is not None:
            rejection = validate(sig, sig.ts, instruments, seen)
            if rejection is not None:
                rec = FileRecord(rec.ts, rec.line, None, f"line {rec.line}: {rejection.reason}")
            elif sig.signal_id:
                seen.add(sig.signal_id)
        out.append(rec)
    return out


class FileSignalSource:
    """Replays a signal file by timestamp: :meth:`due` hands out what the clock reached."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or f"file:{self.path.name}"
        self.records = load_signal_file(self.path)
        self._next = 0

    def __len__(self) -> int:
        return len(self.records)

    @property
    def next_ts(self) -> int | None:
        """Time of the next record, or None when the file is exhausted."""
        return self.records[self._next].ts if self._next < len(self.records) else None

    def due(self, now: int) -> list[FileRecord]:
        out: list[FileRecord] = []
        records = self.records
        while self._next < len(records) and records[self._next].ts <= now:
            out.append(records[self._next])
            self._next += 1
        return out
