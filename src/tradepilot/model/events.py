"""Immutable, timestamped, serialisable events and commands.

State is a fold over these: orders, positions and balances are rebuilt by
applying them in journal order. Every struct is frozen, carries ``ts`` (ns since
the epoch, from the engine clock) and encodes to JSON with its class name in the
``type`` field, so a journal row can be decoded back into the same object.
Raw fixed-point ints are used for every price, quantity and amount.
"""

from __future__ import annotations

import msgspec


class Event(msgspec.Struct, frozen=True, tag_field="type", tag=True, gc=False):
    ts: int


# -- order commands ------------------------------------------------------------
class OrderInitialized(Event, frozen=True, tag=True):
    """An order was created by a strategy or an algorithm (the submit command)."""

    client_order_id: str
    instrument_id: str
    strategy_id: str
    side: int
    order_type: str
    quantity: int
    price: int | None = None
    trigger_price: int | None = None
    time_in_force: str = "GTC"
    expire_ts: int | None = None
    post_only: bool = False
    reduce_only: bool = False
    parent_id: str | None = None
    tags: str = ""


class CancelOrder(Event, frozen=True, tag=True):
    client_order_id: str
    reason: str = ""


class ModifyOrder(Event, frozen=True, tag=True):
    client_order_id: str
    quantity: int | None = None
    price: int | None = None
    trigger_price: int | None = None


class CancelAllOrders(Event, frozen=True, tag=True):
    instrument_id: str | None = None
    reason: str = ""


# -- order events ----------------------------------------------------------------
class OrderDenied(Event, frozen=True, tag=True):
    """The risk engine (or a pre-trade check) refused the order; it never left."""

    client_order_id: str
    code: str
    reason: str


class OrderSubmitted(Event, frozen=True, tag=True):
    client_order_id: str


class OrderAccepted(Event, frozen=True, tag=True):
    client_order_id: str
    venue_order_id: str


class OrderRejected(Event, frozen=True, tag=True):
    """The venue refused the order."""

    client_order_id: str
    reason: str


class OrderPendingCancel(Event, frozen=True, tag=True):
    client_order_id: str


class OrderPendingUpdate(Event, frozen=True, tag=True):
    client_order_id: str


class OrderCanceled(Event, frozen=True, tag=True):
    client_order_id: str
    reason: str = ""


class OrderExpired(Event, frozen=True, tag=True):
    client_order_id: str


class OrderTriggered(Event, frozen=True, tag=True):
    """A stop order's trigger price was reached (a stop-limit now rests as a limit)."""

    client_order_id: str


class OrderUpdated(Event, frozen=True, tag=True):
    client_order_id: str
    quantity: int
    price: int | None
    trigger_price: int | None


class OrderCancelRejected(Event, frozen=True, tag=True):
    client_order_id: str
    reason: str


class OrderModifyRejected(Event, frozen=True, tag=True):
    client_order_id: str
    reason: str


class OrderModifyDenied(Event, frozen=True, tag=True):
    """The risk engine refused a modify's new terms; the working order is unchanged.

    ``quantity``, ``price`` and ``trigger_price`` are the terms that were asked for
    (None: unchanged).
    """

    client_order_id: str
    code: str
    reason: str
    quantity: int | None = None
    price: int | None = None
    trigger_price: int | None = None


class OrderStatusUnknown(Event, frozen=True, tag=True):
    """A submit, cancel or modify whose outcome is unknown (timeout, crash before the ack).

    The order is held as UNKNOWN and nothing new is sent for it until reconciliation
    with the venue resolves it.
    """

    client_order_id: str
    reason: str


class OrderQuantityCorrected(Event, frozen=True, tag=True):
    """The venue filled more than the engine knew of: its quantity is adopted.

    Journaled before the fill that revealed it (an ``OrderUpdated`` that never
    arrived, say), so the fold never sees an overfill.
    """

    client_order_id: str
    quantity: int
    reason: str


class OrderReportAnomaly(Event, frozen=True, tag=True):
    """A venue report that could not apply to the order as the engine holds it.

    Duplicated, late or reordered reports end here instead of in an exception; the
    report itself changes nothing, and the order's status is queried from the venue.
    """

    client_order_id: str
    report: str  # the report's event kind
    reason: str


class VenueRequestFailed(Event, frozen=True, tag=True):
    """A request to the venue failed: ``outcome`` is timeout, rate_limited or disconnected.

    Journaled and published so that the circuit breaker can count venue failures.
    """

    client_order_id: str
    request: str  # submit | cancel | modify | query
    outcome: str
    reason: str


class OrderRequestDenied(Event, frozen=True, tag=True):
    """A submit refused before it became an order (its client order id is taken).

    The order that already holds the id is not touched.
    """

    client_order_id: str
    strategy_id: str
    code: str
    reason: str


class OrderFilled(Event, frozen=True, tag=True):
    """One execution against an order."""

    client_order_id: str
    instrument_id: str
    strategy_id: str
    trade_id: str
    side: int
    last_qty: int
    last_px: int
    fee: int
    fee_currency: str
    liquidity: str  # "MAKER" | "TAKER"


OrderEvent = (
    OrderDenied
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderPendingCancel
    | OrderPendingUpdate
    | OrderCanceled
    | OrderExpired
    | OrderTriggered
    | OrderUpdated
    | OrderCancelRejected
    | OrderModifyRejected
    | OrderStatusUnknown
    | OrderQuantityCorrected
    | OrderFilled
)


# -- parent orders (execution algorithms) -------------------------------------------
class ParentOrderStarted(Event, frozen=True, tag=True):
    """An execution algorithm took a parent order; children carry ``parent_id``."""

    parent_id: str
    instrument_id: str
    strategy_id: str
    side: int
    quantity: int
    algorithm: str
    params: str  # canonical JSON of the algorithm's parameters
    arrival_px: int | None  # mid (or last) when the parent was decided
    urgency: str = "normal"


class ParentOrderProgress(Event, frozen=True, tag=True):
    parent_id: str
    filled_qty: int
    remaining_qty: int
    avg_px: int | None


class ParentOrderFinished(Event, frozen=True, tag=True):
    """A parent order ended: ``state`` is DONE, CANCELLED or FAILED (with a reason)."""

    parent_id: str
    state: str
    filled_qty: int
    avg_px: int | None
    reason: str = ""


# -- signals (intent, before it becomes an order) ------------------------------------
class SignalReceived(Event, frozen=True, tag=True):
    """A signal arrived from ``source`` (strategy, file, api, exit, rebalance)."""

    signal_id: str
    strategy_id: str
    instrument_id: str
    action: str
    source: str
    signal: str  # canonical JSON of the signal as received (after id/time assignment)


class SignalRejected(Event, frozen=True, tag=True):
    """The signal was invalid; nothing else changed."""

    signal_id: str
    strategy_id: str
    instrument_id: str
    code: str
    reason: str
    source: str = ""


class SignalExpired(Event, frozen=True, tag=True):
    """A queued signal outlived its time to live before it could be processed."""

    signal_id: str
    strategy_id: str
    instrument_id: str
    expired_ts: int


class SignalHeld(Event, frozen=True, tag=True):
    """A valid signal that produced no order: a gate or the sizer said HOLD, with why."""

    signal_id: str
    strategy_id: str
    instrument_id: str
    code: str
    reason: str


class SignalAccepted(Event, frozen=True, tag=True):
    """The signal became an order, sent through the risk engine as ``order_id``."""

    signal_id: str
    strategy_id: str
    instrument_id: str
    order_id: str  # the order's client order id (named so it is not routed as an order event)
    side: int
    quantity: int
    intent: str  # ENTRY, ADD, EXIT, REVERSAL_EXIT, REBALANCE
    reason: str


# -- session events --------------------------------------------------------------
#: Version of the journal's event format, recorded in every ``SessionStarted``.
#: 1: ``SessionStarted`` holds the mode and the run configuration only (a reader derives
#: the instruments and balances from the configuration).
#: 2: it also holds the whole setup: instruments, starting balances, base currency,
#: account type and the package version.
JOURNAL_FORMAT_VERSION = 2


class SessionStarted(Event, frozen=True, tag=True):
    """First record of a journal: what ran, on what, with which parameters.

    From format 2 on it carries the whole setup, so a projection, snapshot, query,
    report or resume reads the session's instruments and account from the journal
    alone. Records of format 1 decode with the defaults (``format_version`` 1, no
    instruments).
    """

    mode: str
    config: str  # canonical JSON of the run configuration
    format_version: int = 1
    instruments: tuple[dict[str, str], ...] = ()  # ``Instrument.to_dict()``, in engine order
    starting_balances: dict[str, str] = msgspec.field(default_factory=dict)  # decimal strings
    base_currency: str = ""
    account_type: str = ""
    package_version: str = ""


class ModelDropped(Event, frozen=True, tag=True):
    """An ensemble member was dropped: missing, corrupt, mismatched, stale or failing."""

    strategy_id: str
    model_id: str
    member: str
    code: str
    reason: str
    members_left: int


class EnsembleFallback(Event, frozen=True, tag=True):
    """Too few ensemble members are left: the fallback rule decides (``active``), or no
    longer decides."""

    strategy_id: str
    rule: str
    active: bool
    members_left: int
    min_members: int
    reason: str


class SessionStopped(Event, frozen=True, tag=True):
    reason: str


class TradingStateChanged(Event, frozen=True, tag=True):
    """The risk engine's trading state changed (ACTIVE, REDUCING, HALTED).

    ``source`` says who changed it: ``manual`` (an operator, the API), ``engine``
    (a rule, the circuit breaker, an expiry). Manual changes are inputs a replay
    must re-apply at the same point; the others it reproduces by itself.
    """

    state: str
    reason: str
    until_ns: int | None = None
    source: str = "engine"


class ReconciliationCompleted(Event, frozen=True, tag=True):
    """A reconciliation pass with the venue ended; ``details`` is its JSON report."""

    corrections: int
    details: str


class DataRejected(Event, frozen=True, tag=True):
    """A market-data item was refused (bad value, out of order); nothing changed."""

    instrument_id: str
    reason: str


AnyEvent = (
    OrderInitialized
    | CancelOrder
    | ModifyOrder
    | CancelAllOrders
    | OrderDenied
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderPendingCancel
    | OrderPendingUpdate
    | OrderCanceled
    | OrderExpired
    | OrderTriggered
    | OrderUpdated
    | OrderCancelRejected
    | OrderModifyRejected
    | OrderModifyDenied
    | OrderStatusUnknown
    | OrderQuantityCorrected
    | OrderReportAnomaly
    | VenueRequestFailed
    | OrderRequestDenied
    | OrderFilled
    | ParentOrderStarted
    | ParentOrderProgress
    | ParentOrderFinished
    | SignalReceived
    | SignalRejected
    | SignalExpired
    | SignalHeld
    | SignalAccepted
    | ModelDropped
    | EnsembleFallback
    | SessionStarted
    | SessionStopped
    | TradingStateChanged
    | ReconciliationCompleted
    | DataRejected
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(payload: bytes | str) -> Event:
    result: Event = _decoder.decode(payload)
    return result
