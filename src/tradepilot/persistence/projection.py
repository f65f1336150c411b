"""The state of a session as a fold over its journal.

:class:`StateProjection` applies journal events in ``seq`` order and keeps what a
restart, a report or the REST service needs: every order (an
:class:`~tradepilot.model.order.Order`, indexed as open or closed), every fill (a
compact :class:`FillRecord`), positions, account balances (cash or margin
settlement exactly as :meth:`Portfolio.on_fill
<tradepilot.portfolio.portfolio.Portfolio.on_fill>` does it), the highest number
of the deterministic ids per prefix (``<strategy>-<n>``, ``<parent>-c<n>``,
``<strategy>-P<n>``) so ids continue without a clash after a restart, parent orders
of execution algorithms, the last ``SessionStarted``, the trading state and the
last reconciliation (if the journal records them), ``last_seq`` and ``last_ts``.

The fold is lenient: an event of an unknown kind, one for an order it does not
know, or one the order's state machine refuses is counted (see
:attr:`StateProjection.anomalies` and :attr:`StateProjection.unknown_kinds`) and
otherwise ignored, so a projection can always be built from what a journal holds.

:meth:`StateProjection.to_snapshot` serialises the state and
:meth:`StateProjection.from_snapshot` reads it back (the codec is
:mod:`tradepilot.persistence.snapshot_codec`; the records are in
:mod:`tradepilot.persistence.records`); :mod:`tradepilot.persistence.snapshots`
stores snapshots in the journal
database and restores a projection from the latest one plus the events after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import msgspec

from tradepilot.model.account import Account
from tradepilot.model.enums import (
    AccountType,
    OrderStatus,
)
from tradepilot.model.events import (
    AnyEvent,
    CancelAllOrders,
    CancelOrder,
    DataRejected,
    Event,
    ModifyOrder,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderModifyDenied,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderQuantityCorrected,
    OrderRejected,
    OrderReportAnomaly,
    OrderRequestDenied,
    OrderStatusUnknown,
    OrderSubmitted,
    OrderTriggered,
    OrderUpdated,
    ParentOrderFinished,
    ParentOrderProgress,
    ParentOrderStarted,
    ReconciliationCompleted,
    SessionStarted,
    SessionStopped,
    TradingStateChanged,
    VenueRequestFailed,
)
from tradepilot.model.ids import IdRegistry
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import InvalidStateTransition, Order
from tradepilot.model.position import Position
from tradepilot.persistence import snapshot_codec
from tradepilot.persistence.journal import PersistentJournal, Row
from tradepilot.persistence.records import (
    FillRecord,
    ParentOrderRecord,
    ReconciliationRecord,
    SessionInfo,
    TradingStateRecord,
)
from tradepilot.persistence.setup import (
    SessionSetup,
    first_session_started,
    session_setup,
    setup_of,
)
from tradepilot.persistence.snapshot_codec import (
    SNAPSHOT_FORMAT_VERSION,
    SnapshotError,
    SnapshotVersionError,
    bulk,
)
from tradepilot.portfolio.locking import locked_by
from tradepilot.portfolio.settlement import settle_fill

__all__ = [
    "SNAPSHOT_FORMAT_VERSION",
    "FillRecord",
    "ParentOrderRecord",
    "ReconciliationRecord",
    "SessionInfo",
    "SessionSetup",
    "SnapshotError",
    "SnapshotVersionError",
    "StateProjection",
    "TradingStateRecord",
    "session_setup",
]

_event_decoder = msgspec.json.Decoder(AnyEvent)

_ORDER_EVENTS: tuple[type[Event], ...] = (
    OrderDenied,
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderCanceled,
    OrderExpired,
    OrderTriggered,
    OrderUpdated,
    OrderCancelRejected,
    OrderModifyRejected,
    OrderStatusUnknown,
    OrderQuantityCorrected,
)
#: Kinds that change no state: counted from the row's ``kind`` without decoding the payload.
_COUNT_ONLY = frozenset(
    cls.__name__
    for cls in (
        CancelOrder,
        ModifyOrder,
        CancelAllOrders,
        DataRejected,
        OrderReportAnomaly,
        OrderRequestDenied,
        VenueRequestFailed,
    )
)


# -- the projection ----------------------------------------------------------------------------
class StateProjection:
    """Orders, fills, positions and balances folded from journal events.

    ``instruments`` (a mapping by id, or any iterable of :class:`Instrument`) give the
    base and quote currency that a cash fill settles in; ``starting_balances`` are raw
    fixed-point ints. Events are applied with :meth:`apply` (or :meth:`fold_rows` for
    journal rows) in ``seq`` order; an event at or before :attr:`last_seq` is skipped,
    so folding overlapping ranges is harmless.

    An :class:`Order` here keeps in ``events`` its ``OrderInitialized`` and, while it
    is open, the events applied to it since; a closed order drops the rest (the
    journal keeps them) unless ``keep_order_events`` is set.
    """

    def __init__(
        self,
        instruments: Mapping[str, Instrument] | Iterable[Instrument],
        base_currency: str,
        starting_balances: Mapping[str, int],
        account_type: AccountType = AccountType.CASH,
        *,
        keep_order_events: bool = False,
    ) -> None:
        self.instruments: dict[str, Instrument] = (
            dict(instruments)
            if isinstance(instruments, Mapping)
            else {i.id: i for i in instruments}
        )
        self.base_currency = base_currency
        self.account_type = AccountType(account_type)
        self.starting_balances: dict[str, int] = dict(starting_balances)
        self.keep_order_events = keep_order_events
        self.account = Account(base_currency, dict(starting_balances), self.account_type)
        #: every order by client order id, in creation order
        self.orders: dict[str, Order] = {}
        #: orders not closed yet (INITIALIZED, SUBMITTED, ACCEPTED, PENDING_*, PARTIALLY_FILLED)
        self.open_orders: dict[str, Order] = {}
        #: closed orders (DENIED, REJECTED, FILLED, CANCELED, EXPIRED)
        self.closed_orders: dict[str, Order] = {}
        self.fills: list[FillRecord] = []
        self.positions: dict[str, Position] = {}
        #: the highest number of every deterministic id the journal holds
        self.ids = IdRegistry()
        self.parents: dict[str, ParentOrderRecord] = {}
        self.session: SessionInfo | None = None
        self.trading_state: TradingStateRecord | None = None
        self.reconciliation: ReconciliationRecord | None = None
        #: ``ReconciliationCompleted`` records seen
        self.reconciliations = 0
        #: events applied, by kind
        self.kind_counts: dict[str, int] = {}
        #: events of kinds this projection does not know, by kind (ignored)
        self.unknown_kinds: dict[str, int] = {}
        #: events that were ignored because they did not fit the state, by reason
        self.anomalies: dict[str, int] = {}
        self.fill_count = 0
        self.total_fees = 0
        self.fees_by_currency: dict[str, int] = {}
        self.traded_notional = 0
        self.events_applied = 0
        self.last_seq = 0
        self.last_ts = 0

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def for_journal(
        cls,
        journal: PersistentJournal,
        instruments: Mapping[str, Instrument] | Iterable[Instrument] | None = None,
        base_currency: str | None = None,
        starting_balances: Mapping[str, int] | None = None,
        account_type: AccountType | None = None,
        *,
        keep_order_events: bool = False,
    ) -> StateProjection:
        """An empty projection for ``journal``'s session.

        Arguments left ``None`` are taken from the journal's first ``SessionStarted``
        (see :func:`~tradepilot.persistence.setup.setup_of`).
        """
        if instruments is None or base_currency is None or starting_balances is None:
            setup = setup_of(first_session_started(journal))
            instruments = setup.instruments if instruments is None else instruments
            base_currency = base_currency or setup.base_currency
            if starting_balances is None:
                starting_balances = setup.starting_balances
            account_type = account_type or setup.account_type
        return cls(
            instruments,
            base_currency,
            starting_balances,
            account_type or AccountType.CASH,
            keep_order_events=keep_order_events,
        )

    @classmethod
    def from_journal(
        cls,
        journal: PersistentJournal,
        instruments: Mapping[str, Instrument] | Iterable[Instrument] | None = None,
        base_currency: str | None = None,
        starting_balances: Mapping[str, int] | None = None,
        account_type: AccountType | None = None,
        *,
        keep_order_events: bool = False,
    ) -> StateProjection:
        """Fold every event of ``journal`` (a full replay; see :meth:`for_journal`)."""
        projection = cls.for_journal(
            journal,
            instruments,
            base_currency,
            starting_balances,
            account_type,
            keep_order_events=keep_order_events,
        )
        projection.fold_rows(journal.rows())
        return projection

    # -- folding -------------------------------------------------------------------------------
    def fold_rows(self, rows: Iterable[Row]) -> int:
        """Apply journal rows ``(seq, ts, kind, payload)`` in order; return how many were new.

        Rows at or before :attr:`last_seq` are skipped. Kinds that change no state
        (commands, rejected data) are only counted, without decoding; a payload that
        cannot be decoded (an event kind from a newer tradepilot) is counted in
        :attr:`unknown_kinds`.
        """
        applied = 0
        decode = _event_decoder.decode
        apply = self.apply
        count_only = _COUNT_ONLY
        with bulk():
            for seq, ts, kind, payload in rows:
                if seq <= self.last_seq:
                    continue
                applied += 1
                if kind in count_only:
                    self._count(seq, ts, kind)
                    continue
                try:
                    event = decode(payload)
                except msgspec.MsgspecError:
                    self._count(seq, ts, kind)
                    self.unknown_kinds[kind] = self.unknown_kinds.get(kind, 0) + 1
                    continue
                apply(seq, event)
        return applied

    def _count(self, seq: int, ts: int, kind: str) -> None:
        counts = self.kind_counts
        counts[kind] = counts.get(kind, 0) + 1
        self.events_applied += 1
        self.last_seq = seq
        self.last_ts = ts

    def apply(self, seq: int, event: Event) -> None:
        """Fold one event journaled at ``seq`` (skipped when ``seq <= last_seq``)."""
        if seq <= self.last_seq:
            return
        kind = type(event)
        name = kind.__name__
        counts = self.kind_counts
        counts[name] = counts.get(name, 0) + 1
        self.events_applied += 1
        self.last_seq = seq
        self.last_ts = event.ts
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event, seq)
        else:
            self._on_other(event, seq)

    def _anomaly(self, reason: str) -> None:
        self.anomalies[reason] = self.anomalies.get(reason, 0) + 1

    def _on_initialized(self, event: OrderInitialized, seq: int) -> None:
        cid = event.client_order_id
        if cid in self.orders:
            self._anomaly("duplicate OrderInitialized")
            return
        try:
            order = Order(event)
        except ValueError:
            self._anomaly("unreadable OrderInitialized")
            return
        self.orders[cid] = order
        self.open_orders[cid] = order
        self.ids.observe(cid)

    def _on_order_event(self, event: Event, seq: int) -> None:
        order = self._order_for(event)
        if order is None:
            return
        try:
            order.apply(event)
        except InvalidStateTransition:
            self._anomaly(f"{type(event).__name__} not allowed by the order's status")
            return
        if order.status.is_closed:
            self._close(order)

    def _order_for(self, event: Event) -> Order | None:
        cid: str = event.client_order_id  # type: ignore[attr-defined]
        order = self.orders.get(cid)
        if order is None:
            self._anomaly(f"{type(event).__name__} for an unknown order")
        return order

    def _close(self, order: Order) -> None:
        cid = order.client_order_id
        if self.open_orders.pop(cid, None) is not None:
            self.closed_orders[cid] = order
        if not self.keep_order_events and len(order.events) > 1:
            order.events = order.events[:1]

    def _on_fill(self, fill: OrderFilled, seq: int) -> None:
        order = self._order_for(fill)
        if order is None:
            return
        try:
            order.apply(fill)
        except InvalidStateTransition:
            self._anomaly("OrderFilled not allowed by the order's status")
            return
        if order.status.is_closed:
            self._close(order)
        iid = fill.instrument_id
        qty = fill.last_qty
        px = fill.last_px
        fee = fill.fee
        pos = self.positions.get(iid)
        if pos is None:
            pos = self.positions[iid] = Position(iid)
        _, notional, settled = settle_fill(
            self.account,
            pos,
            self.instruments.get(iid),
            fill.side,
            qty,
            px,
            fee,
            fill.fee_currency,
            fill.ts,
        )
        if not settled:
            self._anomaly("fill of an unknown instrument (balances not settled)")
        self.fill_count += 1
        self.total_fees += fee
        fees = self.fees_by_currency
        fees[fill.fee_currency] = fees.get(fill.fee_currency, 0) + fee
        self.traded_notional += notional
        self.fills.append(
            FillRecord(
                seq,
                fill.ts,
                fill.client_order_id,
                iid,
                fill.strategy_id,
                fill.side,
                qty,
                px,
                fee,
                fill.fee_currency,
                fill.liquidity,
                fill.trade_id,
            )
        )

    def _on_parent_started(self, event: ParentOrderStarted, seq: int) -> None:
        if event.parent_id in self.parents:
            self._anomaly("duplicate ParentOrderStarted")
            return
        self.parents[event.parent_id] = ParentOrderRecord(
            event.parent_id,
            event.instrument_id,
            event.strategy_id,
            event.side,
            event.quantity,
            event.algorithm,
            event.params,
            event.arrival_px,
            event.urgency,
            event.ts,
            event.ts,
            remaining_qty=event.quantity,
        )
        self.ids.observe(event.parent_id)

    def _on_parent_progress(self, event: ParentOrderProgress, seq: int) -> None:
        parent = self.parents.get(event.parent_id)
        if parent is None:
            self._anomaly("ParentOrderProgress for an unknown parent")
            return
        parent.filled_qty = event.filled_qty
        parent.remaining_qty = event.remaining_qty
        parent.avg_px = event.avg_px
        parent.ts_last = event.ts

    def _on_parent_finished(self, event: ParentOrderFinished, seq: int) -> None:
        parent = self.parents.get(event.parent_id)
        if parent is None:
            self._anomaly("ParentOrderFinished for an unknown parent")
            return
        parent.state = event.state
        parent.filled_qty = event.filled_qty
        parent.remaining_qty = max(parent.quantity - event.filled_qty, 0)
        parent.avg_px = event.avg_px
        parent.reason = event.reason
        parent.ts_last = event.ts

    def _on_session_started(self, event: SessionStarted, seq: int) -> None:
        self.session = SessionInfo(seq, event.ts, event.mode, event.config)

    def _on_session_stopped(self, event: SessionStopped, seq: int) -> None:
        if self.session is None:
            self._anomaly("SessionStopped without SessionStarted")
            return
        self.session.stopped_ts = event.ts
        self.session.stop_reason = event.reason

    def _on_trading_state(self, event: TradingStateChanged, seq: int) -> None:
        self.trading_state = TradingStateRecord(
            event.state,
            event.reason,
            event.until_ns,
            event.source,
            event.ts,
            seq,
            "TradingStateChanged",
        )

    def _on_reconciliation(self, event: ReconciliationCompleted, seq: int) -> None:
        self.reconciliation = ReconciliationRecord(seq, event.ts, event.corrections, event.details)
        self.reconciliations += 1

    def _on_other(self, event: Event, seq: int) -> None:
        name = type(event).__name__
        state = getattr(event, "state", None)
        if isinstance(state, str):  # a trading state in a kind this code does not know
            until = getattr(event, "until_ns", None)
            self.trading_state = TradingStateRecord(
                state,
                str(getattr(event, "reason", "")),
                until if isinstance(until, int) and not isinstance(until, bool) else None,
                str(getattr(event, "source", "")),
                event.ts,
                seq,
                name,
            )
            return
        self.unknown_kinds[name] = self.unknown_kinds.get(name, 0) + 1

    # -- queries -------------------------------------------------------------------------------
    @property
    def id_counters(self) -> dict[str, int]:
        """Highest ``n`` of ids ``<prefix>-<n>``, by prefix (the strategy id)."""
        return self.ids.orders

    @property
    def child_counters(self) -> dict[str, int]:
        """Highest ``n`` of child ids ``<parent>-c<n>``, by parent id."""
        return self.ids.children

    @property
    def parent_counters(self) -> dict[str, int]:
        """Highest ``n`` of parent ids ``<strategy>-P<n>``, by strategy."""
        return self.ids.parents

    def next_client_order_id(self, prefix: str) -> str:
        """The id ``OrderManager.next_id(prefix)`` continues with after a restart."""
        return self.ids.peek_order_id(prefix)

    def next_child_order_id(self, parent_id: str) -> str:
        """The next child id ``<parent>-c<n>`` of a parent order."""
        return self.ids.peek_child_id(parent_id)

    def next_parent_id(self, strategy_id: str) -> str:
        """The next parent order id ``<strategy>-P<n>`` of an execution algorithm."""
        return self.ids.peek_parent_id(strategy_id)

    def locked(self, currency: str) -> int:
        """What open orders hold back, by the rule :meth:`Portfolio.locked
        <tradepilot.portfolio.portfolio.Portfolio.locked>` and the venue use
        (:mod:`tradepilot.portfolio.locking`). A market buy is valued at its instrument's
        last fill price (the journal holds no market data)."""
        cash = self.account.account_type is AccountType.CASH
        fallback = {iid: pos.last_px for iid, pos in self.positions.items()}
        sent = (o for o in self.open_orders.values() if o.status is not OrderStatus.INITIALIZED)
        return locked_by(sent, self.instruments, currency, cash, fallback)

    def balances(self) -> dict[str, tuple[int, int]]:
        """``{currency: (total, locked)}`` in raw ints, by currency name."""
        return {
            ccy: (amount, self.locked(ccy)) for ccy, amount in sorted(self.account.total.items())
        }

    def realized_pnl(self) -> int:
        return sum(pos.realized_pnl for pos in self.positions.values())

    def orders_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for order in self.orders.values():
            counts[order.status.value] = counts.get(order.status.value, 0) + 1
        return dict(sorted(counts.items()))

    def iter_orders(self, open_only: bool = False) -> Iterator[Order]:
        yield from (self.open_orders if open_only else self.orders).values()

    # -- snapshots -----------------------------------------------------------------------------
    # -- snapshots -----------------------------------------------------------------------------
    def to_snapshot(self, level: int = 1) -> bytes:
        """The whole state as a versioned, compressed payload (see :meth:`from_snapshot`).

        ``level`` is the zlib compression level (1 is fast and already small).
        """
        return snapshot_codec.encode(self, level)

    @classmethod
    def from_snapshot(
        cls,
        payload: bytes,
        instruments: Mapping[str, Instrument] | Iterable[Instrument] | None = None,
        *,
        keep_order_events: bool = False,
    ) -> StateProjection:
        """Rebuild a projection from :meth:`to_snapshot`'s payload.

        ``instruments`` replaces the instrument definitions stored in the snapshot.
        Raises :class:`SnapshotVersionError` for a newer format and
        :class:`SnapshotError` for a payload that is not a readable snapshot.
        """
        return snapshot_codec.decode(cls, payload, instruments, keep_order_events=keep_order_events)

    def clone(self) -> StateProjection:
        """An independent copy (no shared orders or positions), e.g. to seed an engine with
        while this projection keeps folding the same events."""
        return StateProjection.from_snapshot(
            self.to_snapshot(level=0), self.instruments, keep_order_events=self.keep_order_events
        )

    def state(self) -> dict[str, Any]:
        """The whole state as plain values (raw ints), for comparisons and debugging.

        Two projections of the same events have equal states, whether built by a
        full replay or from a snapshot and the tail.
        """
        return snapshot_codec.plain_state(self)


# -- helpers -----------------------------------------------------------------------------------
def _ignore(projection: StateProjection, event: Event, seq: int) -> None:
    """Commands and rejected data: recorded in the journal, no state to change."""


#: What folds each event kind (functions of the class, not bound methods: a projection
#: holds no reference to itself and is freed as soon as it is dropped).
_HANDLERS: dict[type[Event], Callable[[StateProjection, Any, int], None]] = {
    **{cls: StateProjection._on_order_event for cls in _ORDER_EVENTS},
    OrderInitialized: StateProjection._on_initialized,
    OrderFilled: StateProjection._on_fill,
    ParentOrderStarted: StateProjection._on_parent_started,
    ParentOrderProgress: StateProjection._on_parent_progress,
    ParentOrderFinished: StateProjection._on_parent_finished,
    SessionStarted: StateProjection._on_session_started,
    SessionStopped: StateProjection._on_session_stopped,
    TradingStateChanged: StateProjection._on_trading_state,
    ReconciliationCompleted: StateProjection._on_reconciliation,
    CancelOrder: _ignore,
    ModifyOrder: _ignore,
    OrderModifyDenied: _ignore,
    CancelAllOrders: _ignore,
    DataRejected: _ignore,
    OrderReportAnomaly: _ignore,
    OrderRequestDenied: _ignore,
    VenueRequestFailed: _ignore,
}
