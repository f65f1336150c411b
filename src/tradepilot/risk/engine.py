"""The pre-trade risk engine: every order passes :meth:`RiskEngine.check` before a venue.

Rules are small objects with a ``code`` and a ``check`` that returns a human
reason when the order must be denied. The core rules (known instrument, valid
price and quantity, trading state) are always installed; configurable limits
are added on top. An order the engine denies becomes an ``OrderDenied`` event
carrying the rule's code and reason, and never reaches the venue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tradepilot.model import fixed
from tradepilot.model.enums import OrderType
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"  # everything that passes the rules may trade
    REDUCING = "REDUCING"  # only orders that reduce an open position pass
    HALTED = "HALTED"  # no new orders; cancels still pass


@dataclass(frozen=True, slots=True)
class Denial:
    code: str
    reason: str


class RiskView(Protocol):
    """What rules may read: instruments, positions and prices (no mutation)."""

    instruments: dict[str, Instrument]

    def position_qty(self, instrument_id: str) -> int: ...

    def last_price(self, instrument_id: str) -> int | None: ...

    def equity(self) -> int: ...


class RiskRule(Protocol):
    code: str

    def check(self, order: Order, view: RiskView) -> str | None:
        """Return a reason to deny the order, or None to let it pass."""
        ...


def reduces_position(order: Order, view: RiskView) -> bool:
    """True if the whole order only shrinks the current position towards flat."""
    held = view.position_qty(order.instrument_id)
    if held == 0 or (held > 0) == (order.side > 0):
        return False
    return order.quantity <= abs(held)


class InstrumentKnown:
    code = "UNKNOWN_INSTRUMENT"

    def check(self, order: Order, view: RiskView) -> str | None:
        if order.instrument_id not in view.instruments:
            return f"unknown instrument {order.instrument_id}"
        return None


class QuantityValid:
    code = "INVALID_QUANTITY"

    def check(self, order: Order, view: RiskView) -> str | None:
        inst = view.instruments[order.instrument_id]
        qty = order.quantity
        if qty <= 0:
            return f"quantity must be positive, got {fixed.to_str(qty)}"
        if qty % inst.lot_size:
            return (
                f"quantity {fixed.to_str(qty)} is not a multiple of the lot size "
                f"{fixed.to_str(inst.lot_size)}"
            )
        if qty < inst.min_qty:
            return f"quantity {fixed.to_str(qty)} is below the minimum {fixed.to_str(inst.min_qty)}"
        return None


class PriceValid:
    code = "INVALID_PRICE"

    def check(self, order: Order, view: RiskView) -> str | None:
        inst = view.instruments[order.instrument_id]
        for label, px in (("price", order.price), ("trigger price", order.trigger_price)):
            if px is None:
                continue
            if px <= 0:
                return f"{label} must be positive, got {fixed.to_str(px)}"
            if px % inst.tick_size:
                return (
                    f"{label} {fixed.to_str(px)} is not on the tick {fixed.to_str(inst.tick_size)}"
                )
        t = order.order_type
        if t in (OrderType.LIMIT, OrderType.STOP_LIMIT) and order.price is None:
            return f"a {t.value} order needs a price"
        if t in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) and order.trigger_price is None:
            return f"a {t.value} order needs a trigger price"
        return None


class MinNotional:
    code = "MIN_NOTIONAL"

    def check(self, order: Order, view: RiskView) -> str | None:
        inst = view.instruments[order.instrument_id]
        if not inst.min_notional:
            return None
        ref = order.price or order.trigger_price or view.last_price(order.instrument_id)
        if ref is not None and fixed.mul(ref, order.quantity) < inst.min_notional:
            return f"notional below the instrument minimum {fixed.to_str(inst.min_notional)}"
        return None


CORE_RULES: tuple[Callable[[], RiskRule], ...] = (
    InstrumentKnown,
    QuantityValid,
    PriceValid,
    MinNotional,
)


class RiskEngine:
    """Runs the trading-state gate and every rule, in order; the first denial wins."""

    def __init__(self, view: RiskView, rules: Sequence[RiskRule] = ()) -> None:
        self.view = view
        self.rules: list[RiskRule] = [make() for make in CORE_RULES]
        self.rules.extend(rules)
        self.state = TradingState.ACTIVE
        self.state_reason = ""

    def set_state(self, state: TradingState, reason: str = "") -> None:
        self.state = state
        self.state_reason = reason

    def check(self, order: Order) -> Denial | None:
        view = self.view
        for rule in self.rules[:1]:
            reason = rule.check(order, view)
            if reason is not None:
                return Denial(rule.code, reason)
        if self.state is not TradingState.ACTIVE:
            if self.state is TradingState.HALTED:
                return Denial("TRADING_HALTED", f"trading is halted: {self.state_reason}".strip())
            if not reduces_position(order, view):
                return Denial(
                    "REDUCING_ONLY",
                    f"trading state is REDUCING: only orders that reduce a position pass "
                    f"({self.state_reason})",
                )
        for rule in self.rules[1:]:
            reason = rule.check(order, view)
            if reason is not None:
                return Denial(rule.code, reason)
        return None
