"""The venue is the source of truth: duplicated, late and reordered reports never end a session.

Each case below raised ``InvalidStateTransition`` out of ``Engine.run`` (or booked a
fill twice) before the order manager treated every report as possibly out of place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scripted import BARS, INST, MIN, R, Script, engine_with
from tradepilot.app.reconcile import reconcile
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderCancelRejected,
    OrderFilled,
    OrderInitialized,
    OrderModifyRejected,
    OrderUpdated,
    ReconciliationCompleted,
)
from tradepilot.model.order import Order
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.persistence.projection import StateProjection
from tradepilot.risk.config import CircuitBreakerConfig, RiskConfig


def limit(price: str, qty: str = "1") -> Callable[[Script], Any]:
    return lambda s: s.placed.append(
        s.submit(INST.id, OrderSide.BUY, qty, OrderType.LIMIT, price=price)
    )


def tamper(engine: Engine, change: Callable[[Event, Callable[[Event], None]], None]) -> None:
    """Put ``change`` on the report stream between the venue and the engine."""
    forward = engine.venue._downstream
    engine.venue._downstream = lambda event: change(event, forward)


def kinds(journal: MemoryJournal, name: str) -> list[Event]:
    return [e for e in journal.events() if type(e).__name__ == name]


def assert_agrees_with_the_venue(engine: Engine, journal: MemoryJournal) -> None:
    report = reconcile(engine)
    assert not report.mismatches, report.mismatches
    assert engine.portfolio.account.total == engine.venue.account.total
    assert engine.portfolio.position_qty(INST.id) == engine.venue.position_qty(INST.id)
    # the journal folds to the same state (nothing the engine applied is unfoldable)
    projection = StateProjection([INST], "USDT", {"USDT": R("100000")})
    for seq, event in enumerate(journal.events(), 1):
        projection.apply(seq, event)
    assert not projection.anomalies, projection.anomalies
    assert projection.account.total == engine.portfolio.account.total


class Flaky:
    """Delivers each request, then fails the ones named in ``fail`` (a timeout)."""

    def __init__(self, venue: Any, fail: set[str], exc: Exception | None = None) -> None:
        self.venue = venue
        self.fail = fail
        self.exc = exc or TimeoutError("no answer within 5 s")

    def _maybe(self, name: str) -> None:
        if name in self.fail:
            self.fail.discard(name)
            raise self.exc

    def submit(self, order: Order) -> None:
        self.venue.submit(order)
        self._maybe("submit")

    def cancel(self, cid: str) -> None:
        self.venue.cancel(cid)
        self._maybe("cancel")

    def modify(self, *args: Any) -> None:
        self.venue.modify(*args)
        self._maybe("modify")


# -- late answers for an order held as UNKNOWN -----------------------------------------------------
def test_a_late_order_updated_for_an_unknown_order_is_adopted() -> None:
    engine, strat, journal = engine_with(
        {0: limit("90"), 1: lambda s: s.modify(s.placed[0].client_order_id, price="91")}
    )
    engine.orders.venue = Flaky(engine.venue, {"modify"})
    engine.run(BARS[:3])
    order = strat.placed[0]
    # the modify timed out (UNKNOWN, settled by the status query), then OrderUpdated arrived
    assert order.status is OrderStatus.ACCEPTED
    assert order.price == R("91")
    assert kinds(journal, "VenueRequestFailed") and kinds(journal, "OrderStatusUnknown")
    assert_agrees_with_the_venue(engine, journal)


def test_an_order_updated_the_venue_contradicts_gives_way_to_the_venues_terms() -> None:
    engine, strat, journal = engine_with({0: limit("90")})
    engine.run(BARS[:2])
    order = strat.placed[0]
    engine.orders.mark_unknown(order.client_order_id, "modify timed out")
    engine.orders.on_event(
        OrderUpdated(engine.clock.now(), order.client_order_id, R("1"), R("92"), None)
    )
    # not applicable while UNKNOWN: an anomaly, then the venue's answer (still at 90) wins
    assert [a.report for a in kinds(journal, "OrderReportAnomaly")] == ["OrderUpdated"]  # type: ignore[attr-defined]
    assert order.status is OrderStatus.ACCEPTED and order.price == R("90")
    assert_agrees_with_the_venue(engine, journal)


def test_a_late_cancel_reject_for_an_unknown_order_is_an_anomaly_not_a_crash() -> None:
    engine, strat, journal = engine_with({0: limit("90")})
    engine.run(BARS[:2])
    order = strat.placed[0]
    engine.orders.mark_unknown(order.client_order_id, "cancel timed out")
    for late in (
        OrderCancelRejected(engine.clock.now(), order.client_order_id, "too late"),
        OrderModifyRejected(engine.clock.now(), order.client_order_id, "too late"),
    ):
        engine.orders.on_event(late)
        assert order.status is OrderStatus.ACCEPTED  # the status query settled it
        engine.orders.mark_unknown(order.client_order_id, "again")
    anomalies = kinds(journal, "OrderReportAnomaly")
    assert [a.report for a in anomalies] == ["OrderCancelRejected", "OrderModifyRejected"]  # type: ignore[attr-defined]


# -- an order in flight is not "lost" --------------------------------------------------------------
def test_an_in_flight_order_is_not_declared_lost_and_its_acceptance_applies() -> None:
    engine, strat, journal = engine_with(
        {0: limit("90"), 1: lambda s: reconcile(s.engine)},
        EngineConfig(latency_ns=2 * MIN + MIN // 2),
    )
    engine.orders.venue = Flaky(engine.venue, {"submit"})
    engine.run(BARS[:5])
    order = strat.placed[0]
    # reconciliation ran while the order was on its way: it stayed UNKNOWN, then arrived
    assert order.status is OrderStatus.FILLED
    assert not kinds(journal, "OrderRejected")
    assert_agrees_with_the_venue(engine, journal)


# -- overfill after a lost OrderUpdated ------------------------------------------------------------
def test_a_fill_beyond_the_known_quantity_adopts_the_venues_quantity() -> None:
    engine, strat, journal = engine_with(
        {0: limit("90"), 1: lambda s: s.modify(s.placed[0].client_order_id, quantity="2")}
    )
    tamper(engine, lambda e, fwd: None if isinstance(e, OrderUpdated) else fwd(e))
    engine.run(BARS)
    order = strat.placed[0]
    assert order.status is OrderStatus.FILLED
    assert order.quantity == R("2") and order.filled_qty == R("2")
    corrected = kinds(journal, "OrderQuantityCorrected")
    assert len(corrected) == 1 and corrected[0].quantity == R("2")  # type: ignore[attr-defined]
    assert engine.portfolio.position_qty(INST.id) == R("2")
    assert_agrees_with_the_venue(engine, journal)


# -- duplicated and reordered reports --------------------------------------------------------------
def test_a_duplicated_partial_fill_is_booked_once() -> None:
    from tradepilot.venues.sim.models import FillModel

    engine, strat, journal = engine_with(
        {0: limit("90", "150")},
        EngineConfig(
            fill_model=FillModel(bar_volume_participation=0.5),
            starting_balances={"USDT": "100000"},
        ),
    )

    def twice(event: Event, forward: Callable[[Event], None]) -> None:
        forward(event)
        if isinstance(event, OrderFilled):
            forward(event)

    tamper(engine, twice)
    engine.run(BARS)
    order = strat.placed[0]
    fills = kinds(journal, "OrderFilled")
    assert len(fills) == len({f.trade_id for f in fills}) >= 2  # type: ignore[attr-defined]
    assert order.filled_qty == engine.venue.position_qty(INST.id)
    assert len(kinds(journal, "OrderReportAnomaly")) == len(fills)
    assert_agrees_with_the_venue(engine, journal)


def test_every_report_duplicated_and_pairs_swapped_never_ends_the_session() -> None:
    engine, strat, journal = engine_with(
        {
            0: limit("90"),
            1: lambda s: s.placed.append(s.buy(INST.id, "1")),
            2: lambda s: s.modify(s.placed[0].client_order_id, price="96"),
            3: limit("50"),
            4: lambda s: s.cancel(s.placed[2].client_order_id),
        }
    )
    held: list[Event] = []

    def reorder(event: Event, forward: Callable[[Event], None]) -> None:
        if not held:
            held.append(event)
            return
        forward(event)
        forward(event)
        forward(held.pop())

    tamper(engine, reorder)
    engine.run(BARS)
    for event in held:
        engine.orders.on_event(event)
    assert_agrees_with_the_venue(engine, journal)
    assert not [o for o in strat.placed if o.status is OrderStatus.UNKNOWN]


# -- duplicate client order id ---------------------------------------------------------------------
def test_a_duplicate_client_order_id_is_denied_with_a_reason() -> None:
    def again(s: Script) -> None:
        first = s.placed[0]
        init = first.events[0]
        assert isinstance(init, OrderInitialized)
        s.placed.append(s.submit_raw(init))

    engine, strat, journal = engine_with({0: limit("90"), 1: again})
    engine.run(BARS[:3])
    first, second = strat.placed
    assert first.status is OrderStatus.ACCEPTED
    assert second.status is OrderStatus.DENIED
    denied = kinds(journal, "OrderRequestDenied")
    assert len(denied) == 1 and "duplicate client order id" in denied[0].reason  # type: ignore[attr-defined]
    assert any(type(e).__name__ == "OrderRequestDenied" for e in strat.seen)
    assert len(kinds(journal, "OrderInitialized")) == 1
    assert engine.orders.orders[first.client_order_id] is first
    assert_agrees_with_the_venue(engine, journal)


# -- rate limits, timeouts and the circuit breaker -------------------------------------------------
def test_a_rate_limited_submit_is_retried_after_the_venues_delay() -> None:
    from tradepilot.venues.errors import RateLimited

    class Limited:
        def __init__(self, venue: Any) -> None:
            self.venue = venue
            self.calls: list[int] = []

        def submit(self, order: Order) -> None:
            self.calls.append(engine.clock.now())
            if len(self.calls) == 1:
                raise RateLimited("429 too many requests", retry_after_ns=MIN // 2)
            self.venue.submit(order)

        def cancel(self, cid: str) -> None:
            self.venue.cancel(cid)

        def modify(self, *args: Any) -> None:
            self.venue.modify(*args)

    engine, strat, journal = engine_with({0: limit("90")})
    link = Limited(engine.venue)
    engine.orders.venue = link
    engine.run(BARS[:3])
    assert strat.placed[0].status is OrderStatus.ACCEPTED
    assert link.calls[1] - link.calls[0] == MIN // 2
    failed = kinds(journal, "VenueRequestFailed")
    assert [f.outcome for f in failed] == ["rate_limited"]  # type: ignore[attr-defined]
    assert not kinds(journal, "OrderStatusUnknown")


def test_venue_timeouts_are_counted_by_the_circuit_breaker() -> None:
    config = EngineConfig(
        risk=RiskConfig(circuit_breaker=CircuitBreakerConfig(max_consecutive_failures=2))
    )
    engine, _, _ = engine_with({0: limit("90"), 1: limit("91")}, config)

    class Down:
        def submit(self, order: Order) -> None:
            raise TimeoutError("no answer")

        def cancel(self, cid: str) -> None:
            raise TimeoutError("no answer")

        def modify(self, *args: Any) -> None:
            raise TimeoutError("no answer")

    engine.orders.venue = Down()
    engine.run(BARS[:3])
    assert engine.breaker is not None and engine.breaker.tripped
    assert "consecutive venue failures" in engine.breaker.reason


# -- periodic reconciliation -----------------------------------------------------------------------
def test_reconciliation_runs_periodically_during_a_session() -> None:
    engine, strat, journal = engine_with(
        {0: lambda s: s.placed.append(s.buy(INST.id, "1"))},
        EngineConfig(reconcile_interval_ns=2 * MIN),
    )
    tamper(engine, lambda e, fwd: None if isinstance(e, OrderFilled) else fwd(e))
    engine.run(BARS)
    assert strat.placed[0].status is OrderStatus.FILLED  # no explicit reconcile call
    passes = kinds(journal, "ReconciliationCompleted")
    assert len(passes) == 1  # quiet passes that found nothing are not journaled
    assert isinstance(passes[0], ReconciliationCompleted) and passes[0].corrections == 1
    assert_agrees_with_the_venue(engine, journal)


def test_a_clean_session_journals_no_anomaly() -> None:
    engine, _, journal = engine_with(
        {0: limit("90"), 1: lambda s: s.placed.append(s.buy(INST.id, "1"))},
        EngineConfig(reconcile_interval_ns=MIN),
    )
    engine.run(BARS)
    assert not kinds(journal, "OrderReportAnomaly")
    assert not kinds(journal, "ReconciliationCompleted")
    assert isinstance(kinds(journal, "OrderAccepted")[0], OrderAccepted)
