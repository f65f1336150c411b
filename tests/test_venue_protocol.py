"""The Venue protocol: the simulated venue implements it, and the engine runs on any venue
it is given, refusing what the venue cannot take before anything is sent."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from sim_helpers import IID, MIDNIGHT, SEC, R, Scripted, bar, make_instrument, trade
from tradepilot.core.clock import SimClock
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model.account import Account
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from tradepilot.model.events import OrderCanceled, OrderDenied, OrderModifyRejected
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.venues.base import Venue, VenueCapabilities, VenueQueries
from tradepilot.venues.sim.venue import SimulatedVenue

IOC = TimeInForce.IOC


def _members(*classes: type) -> dict[str, Any]:
    return {
        name: value
        for cls in classes
        for name, value in vars(cls).items()
        if not name.startswith("_") and callable(value)
    }


def _venue(capabilities: VenueCapabilities | None = None) -> tuple[SimulatedVenue, SimClock]:
    clock = SimClock()
    account = Account("USDT", {"USDT": R("100000"), "BTC": R("10")})
    venue = SimulatedVenue("SIM", [make_instrument()], account, clock)
    if capabilities is not None:
        venue.capabilities = capabilities
    return venue, clock


def test_simulated_venue_implements_every_protocol_method_with_its_signature() -> None:
    venue, _ = _venue()
    assert isinstance(venue, Venue)
    for name, proto in _members(VenueQueries, Venue).items():
        impl = getattr(SimulatedVenue, name)
        want = list(inspect.signature(proto).parameters)
        got = list(inspect.signature(impl).parameters)
        assert got == want, f"{name}: {got} != {want}"
    assert isinstance(venue.capabilities, VenueCapabilities)


def test_engine_uses_the_venue_and_clock_it_is_given() -> None:
    venue, clock = _venue()
    strat = Scripted({0: lambda s: s.buy(IID, "1")})
    engine = Engine([make_instrument()], [strat], venue=venue, clock=clock)
    assert engine.venue is venue and engine.clock is clock
    assert venue.subscriptions() == frozenset({IID})
    engine.run([bar(0, "100", "101", "99", "100"), bar(1, "100", "101", "99", "100")])
    assert venue.position_qty(IID) == R("1")
    assert engine.portfolio.positions[IID].qty == R("1")


def test_an_order_the_venue_cannot_take_is_denied_and_never_sent() -> None:
    caps = VenueCapabilities(
        order_types=frozenset({OrderType.MARKET, OrderType.LIMIT}),
        time_in_force=frozenset({TimeInForce.GTC}),
        post_only=False,
    )
    venue, clock = _venue(caps)
    strat = Scripted(
        {
            0: lambda s: [
                s.submit(IID, OrderSide.BUY, "1", OrderType.STOP_MARKET, trigger_price="105"),
                s.submit(
                    IID,
                    OrderSide.BUY,
                    "1",
                    OrderType.LIMIT,
                    price="90",
                    time_in_force=TimeInForce.IOC,
                ),
                s.submit(IID, OrderSide.BUY, "1", OrderType.LIMIT, price="90", post_only=True),
                s.submit(IID, OrderSide.BUY, "1", OrderType.LIMIT, price="90"),
            ]
        }
    )
    engine = Engine([make_instrument()], [strat], venue=venue, clock=clock, journal=MemoryJournal())
    engine.run([bar(0, "100", "101", "99", "100"), bar(1, "100", "101", "99", "100")])
    denied = [e for e in strat.seen if isinstance(e, OrderDenied)]
    assert [d.code for d in denied] == ["VENUE_UNSUPPORTED"] * 3
    assert [d.reason for d in denied] == [
        "the venue does not support STOP_MARKET orders",
        "the venue does not support time in force IOC",
        "the venue does not support post-only orders",
    ]
    assert venue.open_order_ids() == ["s-4"]  # only the supported order reached the venue


def test_modify_on_a_venue_without_modify_is_rejected_and_changes_nothing() -> None:
    venue, clock = _venue(VenueCapabilities(modify=False))
    strat = Scripted(
        {
            0: lambda s: s.submit(IID, OrderSide.BUY, "1", OrderType.LIMIT, price="90"),
            1: lambda s: s.modify("s-1", price="91"),
        }
    )
    engine = Engine([make_instrument()], [strat], venue=venue, clock=clock)
    engine.run([bar(k, "100", "101", "99", "100") for k in range(3)])
    rejected = [e for e in strat.seen if isinstance(e, OrderModifyRejected)]
    assert [r.reason for r in rejected] == ["the venue does not support modifying an order"]
    order = engine.orders.orders["s-1"]
    assert order.price == R("90") and order.status is OrderStatus.ACCEPTED


def test_cancel_all_at_the_venue_cancels_every_working_order_of_the_instrument() -> None:
    venue, clock = _venue()
    strat = Scripted(
        {
            0: lambda s: [
                s.submit(IID, OrderSide.BUY, "1", OrderType.LIMIT, price="90"),
                s.submit(IID, OrderSide.SELL, "1", OrderType.LIMIT, price="110"),
            ],
            1: lambda s: s.engine.venue.cancel_all(IID),
        }
    )
    engine = Engine([make_instrument()], [strat], venue=venue, clock=clock)
    engine.run([trade(MIDNIGHT + k * SEC, "100") for k in range(3)])
    canceled = [e.client_order_id for e in strat.seen if isinstance(e, OrderCanceled)]
    assert canceled == ["s-1", "s-2"]
    assert venue.open_order_ids() == [] and engine.orders.all_open() == []


def test_the_simulated_factory_builds_the_venue_from_the_config() -> None:
    cfg = EngineConfig(venue="XSIM", starting_balances={"USDT": "5"}, latency_ns=7)
    engine = Engine.simulated([make_instrument()], [], cfg)
    venue = engine.venue
    assert isinstance(venue, SimulatedVenue)
    assert venue.name == "XSIM" and venue.account.total == {"USDT": R("5")}
    assert venue.latency.fixed_ns == 7 and venue.clock is engine.clock
    assert dataclasses.asdict(venue.capabilities)["modify"] is True
