"""What every venue adapter speaks: the order reports reconciliation reads."""

from __future__ import annotations

from dataclasses import dataclass


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
