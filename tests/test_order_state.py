"""The order lifecycle state machine (``tradepilot.model.order``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderModifyRejected,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderQuantityCorrected,
    OrderRejected,
    OrderStatusUnknown,
    OrderSubmitted,
    OrderTriggered,
    OrderUpdated,
)
from tradepilot.model.order import _TRANSITIONS, InvalidStateTransition, Order

S = OrderStatus
R = fixed.to_raw
CID = "o-1"
IID = "BTCUSDT.SIM"
QTY = R("2")
PX = R("100")


def new_order(order_type: str = "LIMIT") -> Order:
    trigger = R("101") if order_type.startswith("STOP") else None
    price = None if order_type in ("MARKET", "STOP_MARKET") else PX
    return Order(OrderInitialized(1, CID, IID, "s", 1, order_type, QTY, price, trigger))


def fill(qty: str, px: str = "100", ts: int = 50) -> OrderFilled:
    return OrderFilled(ts, CID, IID, "s", f"t{ts}", 1, R(qty), R(px), 0, "USDT", "MAKER")


# One instance of every order event, keyed by type (fills are built with ``fill``).
EVENTS: dict[type[Event], Callable[[int], Event]] = {
    OrderDenied: lambda ts: OrderDenied(ts, CID, "CODE", "denied"),
    OrderSubmitted: lambda ts: OrderSubmitted(ts, CID),
    OrderAccepted: lambda ts: OrderAccepted(ts, CID, "V-1"),
    OrderRejected: lambda ts: OrderRejected(ts, CID, "rejected"),
    OrderPendingCancel: lambda ts: OrderPendingCancel(ts, CID),
    OrderPendingUpdate: lambda ts: OrderPendingUpdate(ts, CID),
    OrderCanceled: lambda ts: OrderCanceled(ts, CID, "cancelled"),
    OrderExpired: lambda ts: OrderExpired(ts, CID),
    OrderTriggered: lambda ts: OrderTriggered(ts, CID),
    OrderUpdated: lambda ts: OrderUpdated(ts, CID, R("3"), R("99"), None),
    OrderCancelRejected: lambda ts: OrderCancelRejected(ts, CID, "too late"),
    OrderModifyRejected: lambda ts: OrderModifyRejected(ts, CID, "bad modify"),
    OrderFilled: lambda ts: fill("0.5", ts=ts),
    OrderStatusUnknown: lambda ts: OrderStatusUnknown(ts, CID, "timeout"),
}

# How to reach each status from INITIALIZED.
PATHS: dict[OrderStatus, list[Event]] = {
    S.INITIALIZED: [],
    S.DENIED: [OrderDenied(2, CID, "CODE", "no")],
    S.SUBMITTED: [OrderSubmitted(2, CID)],
    S.REJECTED: [OrderSubmitted(2, CID), OrderRejected(3, CID, "no")],
    S.ACCEPTED: [OrderSubmitted(2, CID), OrderAccepted(3, CID, "V-1")],
    S.PARTIALLY_FILLED: [OrderSubmitted(2, CID), OrderAccepted(3, CID, "V-1"), fill("0.5", ts=4)],
    S.PENDING_CANCEL: [
        OrderSubmitted(2, CID),
        OrderAccepted(3, CID, "V-1"),
        OrderPendingCancel(4, CID),
    ],
    S.PENDING_UPDATE: [
        OrderSubmitted(2, CID),
        OrderAccepted(3, CID, "V-1"),
        OrderPendingUpdate(4, CID),
    ],
    S.FILLED: [OrderSubmitted(2, CID), OrderAccepted(3, CID, "V-1"), fill("2", ts=4)],
    S.CANCELED: [OrderSubmitted(2, CID), OrderAccepted(3, CID, "V-1"), OrderCanceled(4, CID, "x")],
    S.EXPIRED: [OrderSubmitted(2, CID), OrderAccepted(3, CID, "V-1"), OrderExpired(4, CID)],
    S.UNKNOWN: [OrderSubmitted(2, CID), OrderStatusUnknown(3, CID, "timeout")],
}


def order_in(status: OrderStatus, order_type: str = "STOP_LIMIT") -> Order:
    order = new_order(order_type)
    for event in PATHS[status]:
        order.apply(event)
    assert order.status is status
    return order


def snapshot(order: Order) -> tuple[object, ...]:
    return (
        order.status,
        order.filled_qty,
        order.filled_notional,
        order.quantity,
        order.price,
        order.trigger_price,
        order.venue_order_id,
        order.triggered,
        order.ts_last,
        len(order.events),
    )


def assert_illegal(order: Order, event: Event) -> None:
    before = snapshot(order)
    assert not order.can_apply(event)
    with pytest.raises(InvalidStateTransition):
        order.apply(event)
    assert snapshot(order) == before


# -- legal transitions -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "kind", "after"),
    [(s, k, a) for (s, k), a in _TRANSITIONS.items()],
    ids=[f"{s.value}-{k.__name__}" for (s, k) in _TRANSITIONS],
)
def test_every_listed_transition_works(
    status: OrderStatus, kind: type[Event], after: OrderStatus
) -> None:
    order = order_in(status)
    event = EVENTS[kind](10)
    assert order.can_apply(event)
    order.apply(event)
    assert order.status is after
    assert order.events[-1] is event
    assert order.ts_last == 10


def test_happy_path_records_every_event() -> None:
    order = new_order()
    events = [
        OrderSubmitted(2, CID),
        OrderAccepted(3, CID, "V-9"),
        fill("0.5", "100", ts=4),
        fill("1.5", "101", ts=5),
    ]
    for event in events:
        order.apply(event)
    assert order.status is S.FILLED
    assert order.venue_order_id == "V-9"
    assert order.filled_qty == QTY
    assert order.leaves_qty == 0
    # (0.5 * 100 + 1.5 * 101) / 2 = (50 + 151.5) / 2 = 100.75
    assert order.avg_px == R("100.75")
    assert order.events[1:] == events
    assert order.is_closed and not order.is_open


def test_trigger_marks_the_order_triggered() -> None:
    order = order_in(S.ACCEPTED)
    order.apply(OrderTriggered(5, CID))
    assert order.triggered and order.status is S.ACCEPTED


# -- illegal transitions --------------------------------------------------------------------------
ILLEGAL = [
    (S.INITIALIZED, OrderAccepted),
    (S.INITIALIZED, OrderFilled),
    (S.INITIALIZED, OrderCanceled),
    (S.INITIALIZED, OrderCancelRejected),
    (S.INITIALIZED, OrderUpdated),
    (S.SUBMITTED, OrderSubmitted),
    (S.SUBMITTED, OrderDenied),
    (S.SUBMITTED, OrderPendingUpdate),
    (S.SUBMITTED, OrderCancelRejected),
    (S.ACCEPTED, OrderSubmitted),
    (S.ACCEPTED, OrderAccepted),
    (S.ACCEPTED, OrderRejected),
    (S.ACCEPTED, OrderCancelRejected),
    (S.ACCEPTED, OrderModifyRejected),
    (S.PARTIALLY_FILLED, OrderAccepted),
    (S.PARTIALLY_FILLED, OrderRejected),
    (S.PENDING_CANCEL, OrderPendingCancel),
    (S.PENDING_CANCEL, OrderPendingUpdate),
    (S.PENDING_UPDATE, OrderPendingUpdate),
    (S.PENDING_UPDATE, OrderAccepted),
    (S.DENIED, OrderSubmitted),
    (S.DENIED, OrderFilled),
    (S.REJECTED, OrderAccepted),
    (S.REJECTED, OrderFilled),
    (S.FILLED, OrderFilled),
    (S.FILLED, OrderCanceled),
    (S.FILLED, OrderPendingCancel),
    (S.FILLED, OrderUpdated),
    (S.FILLED, OrderTriggered),
    (S.CANCELED, OrderAccepted),
    (S.CANCELED, OrderExpired),
    (S.EXPIRED, OrderCanceled),
    (S.EXPIRED, OrderPendingCancel),
    (S.EXPIRED, OrderUpdated),
]


@pytest.mark.parametrize(
    ("status", "kind"), ILLEGAL, ids=[f"{s.value}-{k.__name__}" for s, k in ILLEGAL]
)
def test_illegal_transition_raises_and_changes_nothing(
    status: OrderStatus, kind: type[Event]
) -> None:
    order = order_in(status)
    assert_illegal(order, EVENTS[kind](10))


def test_can_apply_agrees_with_apply_everywhere() -> None:
    """For every status and every event type, can_apply predicts whether apply raises."""
    for status in PATHS:
        for kind, make in EVENTS.items():
            order = order_in(status)
            event = make(10)
            before = snapshot(order)
            predicted = order.can_apply(event)
            try:
                order.apply(event)
            except InvalidStateTransition:
                assert not predicted, (status, kind)
                assert snapshot(order) == before, (status, kind)
            else:
                assert predicted, (status, kind)


# -- the venue is the source of truth ------------------------------------------------------------
@pytest.mark.parametrize("status", [S.CANCELED, S.EXPIRED])
def test_a_fill_that_crossed_the_close_is_booked_and_keeps_the_status(status: OrderStatus) -> None:
    order = order_in(status)
    order.apply(fill("0.5"))
    assert order.status is status and order.filled_qty == R("0.5")
    order.apply(fill("1.5", ts=60))
    assert order.status is S.FILLED


def test_quantity_correction_adopts_the_venues_quantity_before_an_overfill() -> None:
    order = order_in(S.PARTIALLY_FILLED)  # 0.5 of 2 filled
    assert not order.can_apply(fill("2"))
    order.apply(OrderQuantityCorrected(7, CID, R("2.5"), "venue filled more"))
    assert order.quantity == R("2.5") and order.status is S.PARTIALLY_FILLED
    order.apply(fill("2"))
    assert order.status is S.FILLED
    assert not order.can_apply(OrderQuantityCorrected(9, CID, R("1"), "below filled"))


def test_quantity_correction_to_the_filled_quantity_closes_the_order() -> None:
    order = order_in(S.UNKNOWN)
    order.apply(fill("0.5"))
    order.apply(OrderQuantityCorrected(7, CID, R("0.5"), "the venue says it is filled"))
    assert order.status is S.FILLED


# -- fills -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("start", [S.SUBMITTED, S.ACCEPTED])
def test_partial_then_full_fill(start: OrderStatus) -> None:
    order = order_in(start)
    order.apply(fill("0.5"))
    assert order.status is S.PARTIALLY_FILLED
    assert order.filled_qty == R("0.5") and order.leaves_qty == R("1.5")
    order.apply(fill("1"))
    assert order.status is S.PARTIALLY_FILLED
    order.apply(fill("0.5"))
    assert order.status is S.FILLED
    assert order.filled_qty == QTY


def test_one_full_fill() -> None:
    order = order_in(S.ACCEPTED)
    order.apply(fill("2"))
    assert order.status is S.FILLED


@pytest.mark.parametrize("status", [S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL])
def test_overfill_raises_and_changes_nothing(status: OrderStatus) -> None:
    order = order_in(status)
    left = fixed.to_str(order.leaves_qty + R("0.001"))
    assert_illegal_fill(order, fill(left))


def assert_illegal_fill(order: Order, event: OrderFilled) -> None:
    before = snapshot(order)
    with pytest.raises(InvalidStateTransition):
        order.apply(event)
    assert snapshot(order) == before


@pytest.mark.parametrize("qty", ["0", "-1"])
def test_non_positive_fill_raises(qty: str) -> None:
    assert_illegal_fill(order_in(S.ACCEPTED), fill(qty))


def test_fill_while_pending_cancel_then_cancel_rejected_restores_partially_filled() -> None:
    order = order_in(S.PENDING_CANCEL)
    order.apply(fill("0.5"))
    assert order.status is S.PENDING_CANCEL
    order.apply(OrderCancelRejected(60, CID, "no"))
    assert order.status is S.PARTIALLY_FILLED


def test_full_fill_while_pending_cancel_closes_the_order() -> None:
    order = order_in(S.PENDING_CANCEL)
    order.apply(fill("2"))
    assert order.status is S.FILLED


# -- pending cancel / update -----------------------------------------------------------------------
@pytest.mark.parametrize("before", [S.SUBMITTED, S.ACCEPTED, S.PARTIALLY_FILLED])
def test_cancel_rejected_restores_previous_status(before: OrderStatus) -> None:
    order = order_in(before)
    order.apply(OrderPendingCancel(20, CID))
    assert order.status is S.PENDING_CANCEL
    order.apply(OrderCancelRejected(21, CID, "not open"))
    assert order.status is before


@pytest.mark.parametrize("before", [S.ACCEPTED, S.PARTIALLY_FILLED])
def test_modify_rejected_restores_previous_status(before: OrderStatus) -> None:
    order = order_in(before)
    qty, price = order.quantity, order.price
    order.apply(OrderPendingUpdate(20, CID))
    assert order.status is S.PENDING_UPDATE
    order.apply(OrderModifyRejected(21, CID, "bad"))
    assert order.status is before
    assert (order.quantity, order.price) == (qty, price)


@pytest.mark.parametrize("before", [S.ACCEPTED, S.PARTIALLY_FILLED])
def test_update_applies_new_terms_and_restores_status(before: OrderStatus) -> None:
    order = order_in(before)
    order.apply(OrderPendingUpdate(20, CID))
    order.apply(OrderUpdated(21, CID, R("3"), R("98"), R("102")))
    assert order.status is before
    assert (order.quantity, order.price, order.trigger_price) == (R("3"), R("98"), R("102"))


def test_update_without_pending_request_is_allowed_on_a_working_order() -> None:
    order = order_in(S.ACCEPTED)
    order.apply(OrderUpdated(21, CID, R("1"), R("97"), None))
    assert order.status is S.ACCEPTED
    assert order.quantity == R("1")


def test_cancel_from_pending_update_then_update_keeps_cancel_pending() -> None:
    order = order_in(S.ACCEPTED)
    order.apply(OrderPendingUpdate(20, CID))
    order.apply(OrderPendingCancel(21, CID))
    order.apply(OrderUpdated(22, CID, R("3"), R("98"), None))
    assert order.status is S.PENDING_CANCEL
    assert order.quantity == R("3")
    order.apply(OrderCanceled(23, CID, "cancelled"))
    assert order.status is S.CANCELED


def test_cancel_rejected_after_pending_update_then_cancel_restores_working_status() -> None:
    order = order_in(S.PARTIALLY_FILLED)
    order.apply(OrderPendingUpdate(20, CID))
    order.apply(OrderPendingCancel(21, CID))
    order.apply(OrderCancelRejected(22, CID, "no"))
    assert order.status is S.PARTIALLY_FILLED


@pytest.mark.parametrize("status", [S.PENDING_UPDATE, S.PARTIALLY_FILLED])
def test_update_below_filled_quantity_raises_and_changes_nothing(status: OrderStatus) -> None:
    order = order_in(S.ACCEPTED)
    order.apply(fill("1"))
    if status is S.PENDING_UPDATE:
        order.apply(OrderPendingUpdate(20, CID))
    assert order.status is status
    assert_illegal(order, OrderUpdated(21, CID, R("0.5"), R("99"), None))


# -- answers that arrive after the order closed ----------------------------------------------------
@pytest.mark.parametrize("status", [S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED])
@pytest.mark.parametrize("kind", [OrderCancelRejected, OrderModifyRejected])
def test_late_cancel_or_modify_reject_is_recorded_without_a_status_change(
    status: OrderStatus, kind: type[Event]
) -> None:
    order = order_in(status)
    event = EVENTS[kind](30)
    assert order.can_apply(event)
    order.apply(event)
    assert order.status is status
    assert order.events[-1] is event


def test_order_rejected_while_a_cancel_is_pending() -> None:
    order = order_in(S.SUBMITTED)
    order.apply(OrderPendingCancel(3, CID))
    order.apply(OrderRejected(4, CID, "insufficient balance"))
    assert order.status is S.REJECTED


@pytest.mark.parametrize("pending", [OrderPendingCancel, OrderPendingUpdate])
def test_trigger_while_a_request_is_pending(pending: type[Event]) -> None:
    order = order_in(S.ACCEPTED)
    order.apply(EVENTS[pending](20))
    status = order.status
    order.apply(OrderTriggered(21, CID))
    assert order.status is status and order.triggered


def test_unknown_is_resolved_by_reconciliation_events() -> None:
    order = order_in(S.UNKNOWN)
    assert order.is_open
    order.apply(fill("0.5", ts=4))
    assert order.status is S.UNKNOWN  # still unresolved: more may have happened
    order.apply(OrderAccepted(5, CID, "V-1"))
    assert order.status is S.PARTIALLY_FILLED
    assert_illegal(order_in(S.UNKNOWN), OrderPendingCancel(4, CID))
