"""Enumerations shared by the whole domain model."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class OrderSide(IntEnum):
    """Side of an order; the value is the sign it gives to a position change."""

    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide(-self.value)


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"  # good till cancelled
    IOC = "IOC"  # immediate or cancel: fill what can be filled now, cancel the rest
    FOK = "FOK"  # fill or kill: all now, or nothing
    GTD = "GTD"  # good till date (expire_time_ns)
    DAY = "DAY"  # expires at the end of the UTC day it was accepted


class OrderStatus(StrEnum):
    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_UPDATE = "PENDING_UPDATE"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"  # a request's outcome is unknown until reconciliation resolves it

    @property
    def is_closed(self) -> bool:
        return self in _CLOSED

    @property
    def is_open(self) -> bool:
        """Working at the venue (or on its way there)."""
        return self in _OPEN


_CLOSED = frozenset(
    {
        OrderStatus.DENIED,
        OrderStatus.REJECTED,
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
    }
)
_OPEN = frozenset(
    {
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_UPDATE,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.UNKNOWN,
    }
)


class LiquiditySide(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class AssetClass(StrEnum):
    CRYPTO = "CRYPTO"
    EQUITY = "EQUITY"
    FX = "FX"
    FUTURE = "FUTURE"


class AccountType(StrEnum):
    CASH = "CASH"  # spot: no shorting, no borrowing
    MARGIN = "MARGIN"  # may go short; exposure limited by equity x leverage
