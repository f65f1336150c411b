"""Reconciliation with the venue: missed fills, vanished orders, unknown outcomes, lost orders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scripted import BARS as ALL_BARS
from scripted import INST, MIN, Script, engine_with
from tradepilot.app.reconcile import reconcile
from tradepilot.engine.kernel import Engine
from tradepilot.model import fixed
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    ReconciliationCompleted,
)
from tradepilot.model.order import Order

BARS = ALL_BARS[:4]


def drop_venue_events(engine: Engine, dropped: Callable[[Event], bool]) -> None:
    """Lose some of the venue's messages on their way to the engine (the venue keeps them)."""
    forward = engine.venue._downstream

    def lossy(event: Event) -> None:
        if not dropped(event):
            forward(event)

    engine.venue._downstream = lossy


def test_missed_fills_are_applied_and_balances_agree_again() -> None:
    engine, strat, journal = engine_with({0: lambda s: s.placed.append(s.buy(INST.id, "1"))})
    drop_venue_events(engine, lambda e: isinstance(e, OrderFilled))
    engine.run(BARS)
    order = strat.placed[0]
    assert order.status is OrderStatus.ACCEPTED and engine.portfolio.fill_count == 0
    report = reconcile(engine)
    assert report.missed_fills == 1 and not report.mismatches
    assert order.status is OrderStatus.FILLED
    assert engine.portfolio.account.total == engine.venue.account.total
    assert engine.portfolio.position_qty(INST.id) == fixed.to_raw("1")
    done = [e for e in journal.events() if isinstance(e, ReconciliationCompleted)]
    assert done and done[-1].corrections == 1
    assert reconcile(engine).corrections == 0  # a second pass finds nothing


def test_vanished_orders_are_closed_with_the_venues_status() -> None:
    engine, strat, _ = engine_with(
        {
            0: lambda s: s.placed.append(
                s.submit(INST.id, OrderSide.BUY, "1", OrderType.LIMIT, price="90")
            ),
            1: lambda s: s.cancel(s.placed[0].client_order_id),
        }
    )
    drop_venue_events(engine, lambda e: isinstance(e, OrderCanceled))
    engine.run(BARS)
    order = strat.placed[0]
    assert order.status is OrderStatus.PENDING_CANCEL
    report = reconcile(engine)
    assert report.vanished == 1
    assert order.status is OrderStatus.CANCELED
    assert not engine.orders.all_open()
    assert engine.venue.account.locked.get("USDT", 0) == 0


class FlakyVenue:
    """Times out on submit: before or after the venue actually received the order."""

    def __init__(self, venue: Any, delivered: bool) -> None:
        self.venue = venue
        self.delivered = delivered

    def submit(self, order: Order) -> None:
        if self.delivered:
            self.venue.submit(order)
        raise TimeoutError("no answer within 5 s")

    def cancel(self, cid: str) -> None:
        self.venue.cancel(cid)

    def modify(self, *args: Any) -> None:
        self.venue.modify(*args)


def test_unknown_outcome_holds_the_order_until_reconciliation_resolves_it() -> None:
    engine, strat, _ = engine_with(
        {
            0: lambda s: s.placed.append(
                s.submit(INST.id, OrderSide.BUY, "1", OrderType.LIMIT, price="90")
            ),
            1: lambda s: s.cancel(s.placed[0].client_order_id),
        }
    )
    engine.orders.venue = FlakyVenue(engine.venue, delivered=True)
    drop_venue_events(engine, lambda e: isinstance(e, OrderAccepted))  # the ack is lost too
    engine.run(BARS[:1])
    order = strat.placed[0]
    # the venue accepted it, but the engine never heard: it stays UNKNOWN
    assert order.status is OrderStatus.UNKNOWN
    assert engine.venue.open_order_ids() == [order.client_order_id]
    report = reconcile(engine)
    assert report.resolved_unknown == 1
    assert order.status is OrderStatus.ACCEPTED


def test_a_late_answer_from_the_venue_resolves_an_unknown_order_too() -> None:
    engine, strat, _ = engine_with(
        {
            0: lambda s: s.placed.append(
                s.submit(INST.id, OrderSide.BUY, "1", OrderType.LIMIT, price="90")
            ),
        }
    )
    engine.orders.venue = FlakyVenue(engine.venue, delivered=True)
    engine.run(BARS[:2])
    assert strat.placed[0].status is OrderStatus.ACCEPTED


def test_a_cancel_is_not_sent_while_the_outcome_is_unknown() -> None:
    engine, strat, _ = engine_with(
        {
            0: lambda s: s.placed.append(
                s.submit(INST.id, OrderSide.BUY, "1", OrderType.LIMIT, price="90")
            ),
            1: lambda s: s.cancel(s.placed[0].client_order_id),
        }
    )
    engine.orders.venue = FlakyVenue(engine.venue, delivered=False)
    engine.orders.in_flight_ns = 10 * MIN
    engine.run(BARS[:3])
    order = strat.placed[0]
    # still within its in-flight window: the cancel is answered locally, nothing is sent
    assert order.status is OrderStatus.UNKNOWN
    assert engine.venue.order_report(order.client_order_id) is None
    assert reconcile(engine).lost == 0 and order.status is OrderStatus.UNKNOWN
    engine.clock.ts += 10 * MIN  # the window has passed: the venue never saw it
    report = reconcile(engine)
    assert report.lost == 1
    assert order.status is OrderStatus.REJECTED
    assert "not found at the venue" in order.events[-1].reason  # type: ignore[attr-defined]


def test_the_status_check_after_a_timeout_resolves_a_lost_order_by_itself() -> None:
    engine, strat, _ = engine_with(
        {
            0: lambda s: s.placed.append(
                s.submit(INST.id, OrderSide.BUY, "1", OrderType.LIMIT, price="90")
            ),
        }
    )
    engine.orders.venue = FlakyVenue(engine.venue, delivered=False)
    engine.run(BARS[:3])
    order = strat.placed[0]
    assert order.status is OrderStatus.REJECTED
    assert "in-flight window" in order.events[-1].reason  # type: ignore[attr-defined]
    assert reconcile(engine).corrections == 0


def test_an_order_still_in_flight_is_left_alone() -> None:
    from tradepilot.engine.kernel import EngineConfig

    strat = Script(
        {
            0: lambda s: s.placed.append(
                s.submit(INST.id, OrderSide.BUY, "1", OrderType.LIMIT, price="90")
            ),
        }
    )
    engine = Engine.simulated([INST], [strat], EngineConfig(latency_ns=2 * MIN))
    engine.run(BARS[:1])
    order = strat.placed[0]
    assert order.status is OrderStatus.SUBMITTED
    assert reconcile(engine).corrections == 0
    assert order.status is OrderStatus.SUBMITTED
