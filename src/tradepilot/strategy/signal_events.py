"""The signal events: every step of a signal's life, journaled like an order event.

They subclass :class:`tradepilot.model.events.Event` (tagged, frozen, ``ts`` first)
and depend on nothing else, so the core event union can include them.

* ``SignalReceived`` - a signal arrived (its JSON as received, and where from);
* ``SignalRejected`` - it was invalid (code and reason); nothing else changed;
* ``SignalExpired`` - it outlived its time to live while waiting in the queue;
* ``SignalHeld`` - a valid signal produced no order (a gate or the sizer, with why);
* ``SignalAccepted`` - it became an order (``order_id``), with its intent and reason.
"""

from __future__ import annotations

from tradepilot.model.events import (
    Event,
    SignalAccepted,
    SignalExpired,
    SignalHeld,
    SignalReceived,
    SignalRejected,
)

__all__ = [
    "SIGNAL_EVENTS",
    "AnySignalEvent",
    "SignalAccepted",
    "SignalExpired",
    "SignalHeld",
    "SignalReceived",
    "SignalRejected",
]


SIGNAL_EVENTS: tuple[type[Event], ...] = (
    SignalReceived,
    SignalRejected,
    SignalExpired,
    SignalHeld,
    SignalAccepted,
)
AnySignalEvent = SignalReceived | SignalRejected | SignalExpired | SignalHeld | SignalAccepted
