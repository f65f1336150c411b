"""Seeded fault injection between the order manager and a venue.

:class:`FaultyLink` speaks the venue's interface on both sides: the order manager
sends its requests and status queries through it, and the venue's reports reach the
engine through :meth:`FaultyLink.on_report`. It wraps any venue that offers the
same calls (the simulated one now, live adapters later) and injects, each with its
own probability and one seeded random stream (so a run is reproducible):

=====================  ==============================================================
fault class            what happens
=====================  ==============================================================
``lost_request``       the request never reaches the venue; the caller times out
``timeout``            the venue gets the request, the caller times out anyway
``rate_limit``         the venue refuses it for now (``RateLimited``, retry later)
``drop_report``        a report from the venue never arrives
``duplicate_report``   a report arrives twice
``reorder_report``     a report is held back and arrives after the next one
``delay_report``       a report arrives up to ``max_delay_ns`` later
``disconnect``         a window of ``disconnect_ns`` in which requests and queries
                       fail (``VenueDisconnected``) and reports are lost
=====================  ==============================================================

Every injected fault is counted by class in :attr:`FaultyLink.counts`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Protocol

from tradepilot.core.clock import Clock
from tradepilot.model.events import Event, OrderFilled
from tradepilot.model.order import Order
from tradepilot.venues.base import VenueOrderReport
from tradepilot.venues.errors import RateLimited, VenueDisconnected, VenueTimeout

Scheduler = Callable[[int, Callable[[], None]], None]

FAULT_CLASSES = (
    "lost_request",
    "timeout",
    "rate_limit",
    "drop_report",
    "duplicate_report",
    "reorder_report",
    "delay_report",
    "disconnect",
)


class LinkedVenue(Protocol):
    """What the link forwards to: a venue's commands and queries."""

    def submit(self, order: Order) -> None: ...

    def cancel(self, client_order_id: str) -> None: ...

    def modify(
        self, client_order_id: str, quantity: int | None, price: int | None, trigger: int | None
    ) -> None: ...

    def order_report(self, client_order_id: str) -> VenueOrderReport | None: ...

    def open_orders(self) -> list[VenueOrderReport]: ...

    def fills_since(self, index: int = 0) -> list[OrderFilled]: ...

    def balances(self) -> dict[str, int]: ...

    def position_quantities(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Probability of each fault class per request (requests) or per report (reports)."""

    lost_request: float = 0.0
    timeout: float = 0.0
    rate_limit: float = 0.0
    drop_report: float = 0.0
    duplicate_report: float = 0.0
    reorder_report: float = 0.0
    delay_report: float = 0.0
    disconnect: float = 0.0
    max_delay_ns: int = 5_000_000_000
    retry_after_ns: int = 1_000_000_000
    disconnect_ns: int = 30_000_000_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in FAULT_CLASSES:
                if not 0.0 <= value <= 1.0:  # also refuses NaN
                    raise ValueError(f"{f.name} must be a probability in [0, 1], got {value}")
            elif not isinstance(value, int) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative number of ns, got {value}")

    @classmethod
    def everything(cls, p: float = 0.05) -> FaultConfig:
        """Every fault class at once, each with probability ``p`` (disconnects rarer)."""
        return cls(p, p, p, p, p, p, p, p / 5)


class FaultyLink:
    """A venue link that loses, repeats, reorders and delays what passes through it."""

    def __init__(
        self,
        venue: LinkedVenue,
        clock: Clock,
        schedule: Scheduler,
        forward: Callable[[Event], None],
        config: FaultConfig,
        seed: int = 0,
    ) -> None:
        self.venue = venue
        self.clock = clock
        self._schedule = schedule
        self.forward = forward
        self.config = config
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter({name: 0 for name in FAULT_CLASSES})
        self.enabled = True
        self._down_until = -1
        self._held: list[Event] = []

    # -- faults ---------------------------------------------------------------------------------
    def _hit(self, name: str) -> bool:
        if not self.enabled:
            return False
        p: float = getattr(self.config, name)
        if p and self.rng.random() < p:
            self.counts[name] += 1
            return True
        return False

    def _disconnected(self) -> bool:
        now = self.clock.now()
        if now < self._down_until:
            return True
        if self._hit("disconnect"):
            self._down_until = now + self.config.disconnect_ns
            return True
        return False

    def _request(self, name: str, send: Callable[[], None]) -> None:
        if self._disconnected():
            raise VenueDisconnected(f"{name}: connection to the venue lost")
        if self._hit("rate_limit"):
            raise RateLimited(f"{name}: rate limit exceeded", self.config.retry_after_ns)
        if self._hit("lost_request"):
            raise VenueTimeout(f"{name}: no answer (the request was lost)")
        send()
        if self._hit("timeout"):
            raise VenueTimeout(f"{name}: no answer in time")

    # -- commands -------------------------------------------------------------------------------
    def submit(self, order: Order) -> None:
        self._request("submit", lambda: self.venue.submit(order))

    def cancel(self, client_order_id: str) -> None:
        self._request("cancel", lambda: self.venue.cancel(client_order_id))

    def modify(
        self, client_order_id: str, quantity: int | None, price: int | None, trigger: int | None
    ) -> None:
        self._request(
            "modify", lambda: self.venue.modify(client_order_id, quantity, price, trigger)
        )

    # -- queries --------------------------------------------------------------------------------
    def _query(self) -> None:
        if self.enabled and self.clock.now() < self._down_until:
            raise VenueDisconnected("query: connection to the venue lost")

    def order_report(self, client_order_id: str) -> VenueOrderReport | None:
        self._query()
        return self.venue.order_report(client_order_id)

    def open_orders(self) -> list[VenueOrderReport]:
        self._query()
        return self.venue.open_orders()

    def fills_since(self, index: int = 0) -> list[OrderFilled]:
        self._query()
        return self.venue.fills_since(index)

    def balances(self) -> dict[str, int]:
        self._query()
        return self.venue.balances()

    def position_quantities(self) -> dict[str, int]:
        self._query()
        return self.venue.position_quantities()

    # -- reports --------------------------------------------------------------------------------
    def on_report(self, event: Event) -> None:
        """A report from the venue on its way to the engine."""
        if not self.enabled:
            self.forward(event)
            return
        if self.clock.now() < self._down_until:
            self.counts["drop_report"] += 1
            return
        if self._hit("drop_report"):
            return
        if self._hit("reorder_report"):
            self._held.append(event)
            return
        if self._hit("delay_report"):
            due = self.clock.now() + self.rng.randint(1, max(self.config.max_delay_ns, 1))
            self._schedule(due, lambda: self.forward(event))
        else:
            self.forward(event)
            if self._hit("duplicate_report"):
                self.forward(event)
        held, self._held = self._held, []
        for late in held:
            self.forward(late)

    def heal(self) -> list[Event]:
        """Stop injecting faults; returns the reports still held back (not yet delivered)."""
        self.enabled = False
        self._down_until = -1
        held, self._held = self._held, []
        return held
