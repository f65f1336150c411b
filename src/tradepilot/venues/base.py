"""What every venue speaks: the ``Venue`` protocol, its capabilities and its order reports.

The engine talks to a venue only through :class:`Venue`: the order manager sends
commands (submit, cancel, modify, cancel-all), reconciliation asks what the venue
knows (order status, its trades, balances, positions), and the kernel hands it the
market data it subscribed to. Everything a venue says back - acks, fills, rejects,
cancels - goes to the ``emit`` sink given to :meth:`Venue.connect`; every report may
come late, twice or out of order, and the order manager copes with that.

:class:`~tradepilot.venues.sim.venue.SimulatedVenue` implements it for backtest and
paper; a live adapter implements the same methods over an exchange's API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import OrderType, TimeInForce
from tradepilot.model.events import Event, OrderFilled
from tradepilot.model.order import Order

__all__ = [
    "Emit",
    "Scheduler",
    "Venue",
    "VenueCapabilities",
    "VenueOrderReport",
    "VenueQueries",
]

#: Where a venue delivers what it says (acks, fills, rejects, cancels).
Emit = Callable[[Event], None]
#: Run a callback at an engine time (a simulated venue's latency uses it).
Scheduler = Callable[[int, Callable[[], None]], None]


@dataclass(frozen=True, slots=True)
class VenueOrderReport:
    """An order as the venue sees it (the reconciliation query's answer)."""

    client_order_id: str
    instrument_id: str
    status: str  # OPEN | FILLED | CANCELED | EXPIRED | REJECTED
    filled_qty: int
    leaves_qty: int
    venue_order_id: str
    reason: str
    quantity: int = 0  # the order's quantity at the venue (0: not reported)
    price: int | None = None  # its limit price, when it has one and it is reported


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """What a venue accepts. An order asking for more is refused before it is sent."""

    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    post_only: bool = True
    reduce_only: bool = True
    modify: bool = True

    def refusal(self, order: Order) -> str | None:
        """Why this venue cannot take ``order`` (None when it can)."""
        if order.order_type not in self.order_types:
            return f"the venue does not support {order.order_type.value} orders"
        if order.time_in_force not in self.time_in_force:
            return f"the venue does not support time in force {order.time_in_force.value}"
        if order.post_only and not self.post_only:
            return "the venue does not support post-only orders"
        if order.reduce_only and not self.reduce_only:
            return "the venue does not support reduce-only orders"
        return None


@runtime_checkable
class VenueQueries(Protocol):
    """What reconciliation asks a venue: its orders, its trades, balances and positions."""

    def order_report(self, client_order_id: str) -> VenueOrderReport | None: ...

    def open_orders(self) -> list[VenueOrderReport]: ...

    def fills_since(self, index: int = 0) -> list[OrderFilled]: ...

    def balances(self) -> dict[str, int]: ...

    def position_quantities(self) -> dict[str, int]: ...


@runtime_checkable
class Venue(VenueQueries, Protocol):
    """A trading venue as the engine uses it (simulated or live)."""

    name: str
    capabilities: VenueCapabilities

    def connect(self, emit: Emit, schedule: Scheduler) -> None:
        """Start delivering reports to ``emit``; ``schedule`` runs work at engine time."""

    # -- commands (from the order manager, after the risk engine) --------------------
    def submit(self, order: Order) -> None: ...

    def cancel(self, client_order_id: str) -> None: ...

    def modify(
        self, client_order_id: str, quantity: int | None, price: int | None, trigger: int | None
    ) -> None: ...

    def cancel_all(self, instrument_id: str | None = None) -> None: ...

    # -- market data ------------------------------------------------------------------
    def subscribe(self, instrument_id: str) -> None:
        """The session wants this instrument's market data (a live venue opens its feed)."""

    def subscriptions(self) -> frozenset[str]: ...

    def on_bar(self, bar: Bar) -> None: ...

    def on_trade(self, tick: TradeTick) -> None: ...

    def on_quote(self, quote: QuoteTick) -> None: ...

    def on_book(self, item: BookSnapshot | BookDeltas) -> None: ...

    def reference_price(self, instrument_id: str) -> int | None:
        """The venue's current price of an instrument (book mid, last trade or close)."""
