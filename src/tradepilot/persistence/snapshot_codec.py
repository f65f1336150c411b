"""The snapshot codec: a projection's whole state as a versioned, compressed payload.

A payload is the header ``TPSNAP`` + a big-endian format version (2 bytes), then the
state as msgpack (array-like structs), zlib-compressed. :func:`encode` writes it,
:func:`decode` reads it back into a new projection; a newer version is refused with
:class:`SnapshotVersionError`, a damaged payload with :class:`SnapshotError`. The
structures below are the payload format: change them only with a new version.
"""

from __future__ import annotations

import gc
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from tradepilot.model.enums import AccountType, AssetClass, OrderStatus
from tradepilot.model.events import OrderInitialized
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.model.position import Position
from tradepilot.persistence.integrity import JournalError
from tradepilot.persistence.journal import SNAPSHOT_MAGIC
from tradepilot.persistence.records import (
    FillRecord,
    ParentOrderRecord,
    ReconciliationRecord,
    SessionInfo,
    TradingStateRecord,
)

if TYPE_CHECKING:
    from tradepilot.persistence.projection import StateProjection

P = TypeVar("P", bound="StateProjection")

#: Version of the snapshot payload this code writes and reads.
SNAPSHOT_FORMAT_VERSION: Final = 1

_HEADER = struct.Struct(">6sH")


class SnapshotError(JournalError):
    """A snapshot payload that cannot be read (not a snapshot, or damaged)."""


class SnapshotVersionError(SnapshotError):
    """A snapshot written in a newer format than this code reads."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"snapshot format version {version} is newer than this tradepilot reads "
            f"({SNAPSHOT_FORMAT_VERSION})"
        )
        self.version = version


# -- snapshot structures (private: the payload format) -----------------------------------------
class _InstrumentState(msgspec.Struct, array_like=True, gc=False):
    symbol: str
    venue: str
    base: str
    quote: str
    tick_size: int
    lot_size: int
    min_qty: int
    min_notional: int
    maker_fee_bps: int
    taker_fee_bps: int
    asset_class: str


class _OrderState(msgspec.Struct, array_like=True, gc=False):
    # the OrderInitialized, as created
    ts_init: int
    client_order_id: str
    instrument_id: str
    strategy_id: str
    side: int
    order_type: str
    init_quantity: int
    init_price: int | None
    init_trigger_price: int | None
    time_in_force: str
    expire_ts: int | None
    post_only: bool
    reduce_only: bool
    parent_id: str | None
    tags: str
    # its state now
    status: str
    status_before_pending: str
    venue_order_id: str | None
    filled_qty: int
    filled_notional: int
    fees: int
    quantity: int
    price: int | None
    trigger_price: int | None
    triggered: bool
    ts_last: int


class _PositionState(msgspec.Struct, array_like=True, gc=False):
    instrument_id: str
    qty: int
    cost: int
    realized_pnl: int
    fees: int
    opened_ts: int | None
    ts_last: int
    last_px: int
    trade_count: int


class _Snapshot(msgspec.Struct, array_like=True, gc=False):
    last_seq: int
    last_ts: int
    base_currency: str
    account_type: str
    starting_balances: list[tuple[str, int]]
    instruments: list[_InstrumentState]
    balances: list[tuple[str, int]]
    orders: list[_OrderState]
    fills: list[FillRecord]
    positions: list[_PositionState]
    id_counters: list[tuple[str, int]]
    child_counters: list[tuple[str, int]]
    parent_counters: list[tuple[str, int]]
    parents: list[ParentOrderRecord]
    session: SessionInfo | None
    trading_state: TradingStateRecord | None
    reconciliation: ReconciliationRecord | None
    reconciliations: int
    kind_counts: list[tuple[str, int]]
    unknown_kinds: list[tuple[str, int]]
    anomalies: list[tuple[str, int]]
    fill_count: int
    total_fees: int
    fees_by_currency: list[tuple[str, int]]
    traded_notional: int
    events_applied: int


_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(_Snapshot)
_STATUS = {s.value: s for s in OrderStatus}


@contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are created.

    Loading a snapshot or folding a long journal creates hundreds of thousands of
    orders; each automatic collection would walk all of them again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def encode(projection: StateProjection, level: int = 1) -> bytes:
    """The whole state as a versioned, compressed payload (see :meth:`from_snapshot`).

    ``level`` is the zlib compression level (1 is fast and already small).
    """
    snap = _Snapshot(
        last_seq=projection.last_seq,
        last_ts=projection.last_ts,
        base_currency=projection.base_currency,
        account_type=projection.account.account_type.value,
        starting_balances=list(projection.starting_balances.items()),
        instruments=[_instrument_state(i) for i in projection.instruments.values()],
        balances=list(projection.account.total.items()),
        orders=[_order_state(o) for o in projection.orders.values()],
        fills=projection.fills,
        positions=[_position_state(p) for p in projection.positions.values()],
        id_counters=list(projection.id_counters.items()),
        child_counters=list(projection.child_counters.items()),
        parent_counters=list(projection.parent_counters.items()),
        parents=list(projection.parents.values()),
        session=projection.session,
        trading_state=projection.trading_state,
        reconciliation=projection.reconciliation,
        reconciliations=projection.reconciliations,
        kind_counts=sorted(projection.kind_counts.items()),
        unknown_kinds=sorted(projection.unknown_kinds.items()),
        anomalies=sorted(projection.anomalies.items()),
        fill_count=projection.fill_count,
        total_fees=projection.total_fees,
        fees_by_currency=list(projection.fees_by_currency.items()),
        traded_notional=projection.traded_notional,
        events_applied=projection.events_applied,
    )
    body = zlib.compress(_encoder.encode(snap), level)
    return _HEADER.pack(SNAPSHOT_MAGIC, SNAPSHOT_FORMAT_VERSION) + body


def decode(
    cls: type[P],
    payload: bytes,
    instruments: Mapping[str, Instrument] | Iterable[Instrument] | None = None,
    *,
    keep_order_events: bool = False,
) -> P:
    """Rebuild a projection from :meth:`to_snapshot`'s payload.

    ``instruments`` replaces the instrument definitions stored in the snapshot.
    Raises :class:`SnapshotVersionError` for a newer format and
    :class:`SnapshotError` for a payload that is not a readable snapshot.
    """
    if len(payload) < _HEADER.size or not payload.startswith(SNAPSHOT_MAGIC):
        raise SnapshotError("not a snapshot payload (no TPSNAP header)")
    version = _HEADER.unpack_from(payload)[1]
    if version > SNAPSHOT_FORMAT_VERSION:
        raise SnapshotVersionError(version)
    if version != SNAPSHOT_FORMAT_VERSION:
        raise SnapshotError(f"unsupported snapshot format version {version}")
    try:
        with bulk():
            snap = _snapshot_decoder.decode(zlib.decompress(payload[_HEADER.size :]))
    except (zlib.error, msgspec.MsgspecError) as exc:
        raise SnapshotError(f"damaged snapshot payload: {exc}") from None
    try:
        with bulk():
            return _restore(cls, snap, instruments, keep_order_events)
    except (ValueError, KeyError) as exc:
        raise SnapshotError(f"inconsistent snapshot payload: {exc!r}") from None


def _restore(
    cls: type[P],
    snap: _Snapshot,
    instruments: Mapping[str, Instrument] | Iterable[Instrument] | None,
    keep_order_events: bool,
) -> P:
    insts: Mapping[str, Instrument] | Iterable[Instrument] = (
        instruments if instruments is not None else [_instrument(i) for i in snap.instruments]
    )
    projection = cls(
        insts,
        snap.base_currency,
        dict(snap.starting_balances),
        AccountType(snap.account_type),
        keep_order_events=keep_order_events,
    )
    projection.account.total = dict(snap.balances)
    orders = projection.orders
    open_orders = projection.open_orders
    closed_orders = projection.closed_orders
    for state in snap.orders:
        order = _order(state)
        cid = order.client_order_id
        orders[cid] = order
        if order.status.is_closed:
            closed_orders[cid] = order
        else:
            open_orders[cid] = order
    projection.fills = snap.fills
    for p in snap.positions:
        pos = projection.positions[p.instrument_id] = Position(p.instrument_id)
        pos.qty = p.qty
        pos.cost = p.cost
        pos.realized_pnl = p.realized_pnl
        pos.fees = p.fees
        pos.opened_ts = p.opened_ts
        pos.ts_last = p.ts_last
        pos.last_px = p.last_px
        pos.trade_count = p.trade_count
    projection.ids.restore(
        dict(snap.id_counters), dict(snap.child_counters), dict(snap.parent_counters)
    )
    projection.parents = {p.parent_id: p for p in snap.parents}
    projection.session = snap.session
    projection.trading_state = snap.trading_state
    projection.reconciliation = snap.reconciliation
    projection.reconciliations = snap.reconciliations
    projection.kind_counts = dict(snap.kind_counts)
    projection.unknown_kinds = dict(snap.unknown_kinds)
    projection.anomalies = dict(snap.anomalies)
    projection.fill_count = snap.fill_count
    projection.total_fees = snap.total_fees
    projection.fees_by_currency = dict(snap.fees_by_currency)
    projection.traded_notional = snap.traded_notional
    projection.events_applied = snap.events_applied
    projection.last_seq = snap.last_seq
    projection.last_ts = snap.last_ts
    return projection


def plain_state(projection: StateProjection) -> dict[str, Any]:
    """The whole state as plain values (raw ints), for comparisons and debugging.

    Two projections of the same events have equal states, whether built by a
    full replay or from a snapshot and the tail.
    """
    snap = _snapshot_decoder.decode(zlib.decompress(encode(projection, level=0)[_HEADER.size :]))
    out: dict[str, Any] = _plain(snap)
    return out


def _plain(value: Any) -> Any:
    """Structs as dicts (by field name), sequences as lists, recursively."""
    if isinstance(value, msgspec.Struct):
        return {name: _plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _instrument_state(inst: Instrument) -> _InstrumentState:
    return _InstrumentState(
        inst.symbol,
        inst.venue,
        inst.base,
        inst.quote,
        inst.tick_size,
        inst.lot_size,
        inst.min_qty,
        inst.min_notional,
        inst.maker_fee_bps,
        inst.taker_fee_bps,
        inst.asset_class.value,
    )


def _instrument(s: _InstrumentState) -> Instrument:
    return Instrument(
        s.symbol,
        s.venue,
        s.base,
        s.quote,
        s.tick_size,
        s.lot_size,
        s.min_qty,
        s.min_notional,
        s.maker_fee_bps,
        s.taker_fee_bps,
        AssetClass(s.asset_class),
    )


def _order_state(o: Order) -> _OrderState:
    init = o.events[0]
    assert isinstance(init, OrderInitialized)
    return _OrderState(
        init.ts,
        init.client_order_id,
        init.instrument_id,
        init.strategy_id,
        init.side,
        init.order_type,
        init.quantity,
        init.price,
        init.trigger_price,
        init.time_in_force,
        init.expire_ts,
        init.post_only,
        init.reduce_only,
        init.parent_id,
        init.tags,
        o.status.value,
        o.status_before_pending.value,
        o.venue_order_id,
        o.filled_qty,
        o.filled_notional,
        o.fees,
        o.quantity,
        o.price,
        o.trigger_price,
        o.triggered,
        o.ts_last,
    )


def _order(s: _OrderState) -> Order:
    """The order a snapshot describes: its ``OrderInitialized`` and its state now."""
    init = OrderInitialized(
        s.ts_init,
        s.client_order_id,
        s.instrument_id,
        s.strategy_id,
        s.side,
        s.order_type,
        s.init_quantity,
        s.init_price,
        s.init_trigger_price,
        s.time_in_force,
        s.expire_ts,
        s.post_only,
        s.reduce_only,
        s.parent_id,
        s.tags,
    )
    return Order.restore(
        init,
        status=_STATUS[s.status],
        quantity=s.quantity,
        price=s.price,
        trigger_price=s.trigger_price,
        filled_qty=s.filled_qty,
        filled_notional=s.filled_notional,
        fees=s.fees,
        venue_order_id=s.venue_order_id,
        triggered=s.triggered,
        ts_last=s.ts_last,
        status_before_pending=_STATUS[s.status_before_pending],
    )


def _position_state(p: Position) -> _PositionState:
    return _PositionState(
        p.instrument_id,
        p.qty,
        p.cost,
        p.realized_pnl,
        p.fees,
        p.opened_ts,
        p.ts_last,
        p.last_px,
        p.trade_count,
    )
