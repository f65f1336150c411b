"""What a projection keeps besides orders and positions: compact, serialisable records.

They are ``msgspec`` structs (array-like, no GC tracking) so that a projection of a
long journal stays small and its snapshot encodes them as they are.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "FillRecord",
    "ParentOrderRecord",
    "ReconciliationRecord",
    "SessionInfo",
    "TradingStateRecord",
]


class FillRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One execution, compactly (raw fixed-point ints; ``side`` is +1 buy, -1 sell)."""

    seq: int
    ts: int
    client_order_id: str
    instrument_id: str
    strategy_id: str
    side: int
    qty: int
    px: int
    fee: int
    fee_currency: str
    liquidity: str
    trade_id: str


class ParentOrderRecord(msgspec.Struct, array_like=True, gc=False):
    """A parent order of an execution algorithm, folded from its ``ParentOrder*`` events.

    ``state`` is ``RUNNING`` until a ``ParentOrderFinished`` sets DONE, CANCELLED or
    FAILED.
    """

    parent_id: str
    instrument_id: str
    strategy_id: str
    side: int
    quantity: int
    algorithm: str
    params: str
    arrival_px: int | None
    urgency: str
    ts_start: int
    ts_last: int
    state: str = "RUNNING"
    filled_qty: int = 0
    remaining_qty: int = 0
    avg_px: int | None = None
    reason: str = ""


class TradingStateRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The last trading state a journal recorded (``TradingStateChanged``, or any event
    of an unknown kind carrying a ``state``)."""

    state: str
    reason: str
    until_ns: int | None
    source: str
    ts: int
    seq: int
    kind: str


class ReconciliationRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The last ``ReconciliationCompleted`` (``details`` is its JSON report)."""

    seq: int
    ts: int
    corrections: int
    details: str


class SessionInfo(msgspec.Struct, array_like=True, gc=False):
    """The last ``SessionStarted`` (and the ``SessionStopped`` after it, if any)."""

    seq: int
    ts: int
    mode: str
    config: str
    stopped_ts: int | None = None
    stop_reason: str | None = None
