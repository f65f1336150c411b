"""The pre-trade risk engine: every order passes :meth:`RiskEngine.check` before a venue.

Rules are small objects with a ``code`` and a ``check`` that returns a human
reason when the order must be denied. The core rules (known instrument, valid
price and quantity, trading state) are always installed; configurable limits
are added on top. An order the engine denies becomes an ``OrderDenied`` event
carrying the rule's code and reason, and never reaches the venue.

The engine also holds the trading state (ACTIVE, REDUCING, HALTED). A state may
carry an expiry in engine time (``state_until``): the first check at or after it
resets the state to ACTIVE (this is how a circuit breaker's cooldown ends). An
order with ``reduce_only=True`` that reduces the current position passes the
state gate even when HALTED, so an emergency flatten is never blocked by it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from tradepilot.model import fixed
from tradepilot.model.enums import AccountType, OrderType
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
    """What rules may read: instruments, positions, orders, balances, prices (no mutation).

    Quantities and money are raw fixed-point ints; times are ns since the epoch (UTC).
    """

    instruments: dict[str, Instrument]

    def position_qty(self, instrument_id: str) -> int: ...

    def last_price(self, instrument_id: str) -> int | None: ...

    def equity(self) -> int:
        """Account value in its base currency at the last known prices."""
        ...

    def now(self) -> int:
        """Engine time (from the engine clock, never the OS)."""
        ...

    def open_positions(self) -> Mapping[str, int]:
        """Signed quantity of every non-flat position, by instrument id."""
        ...

    def working_qty(self) -> Mapping[str, tuple[int, int]]:
        """``(buy leaves, sell leaves)`` of the open orders, by instrument id."""
        ...

    def free_balance(self, currency: str) -> int:
        """Balance not held back by open orders (a pending cancel no longer holds any)."""
        ...

    def account_type(self) -> AccountType: ...

    def leverage(self) -> int: ...


class RiskRule(Protocol):
    code: str

    def check(self, order: Order, view: RiskView) -> str | None:
        """Return a reason to deny the order, or None to let it pass."""
        ...


# Optional hooks a rule may define; the engine finds them when the rule is added.
OrderHook = Callable[[Order], None]  # ``on_pass(order)``: the order passed every rule
PriceHook = Callable[[str, int, int], None]  # ``on_price(instrument_id, ts, price)``
EquityHook = Callable[[int, int], None]  # ``on_equity(ts, equity)``
StateListener = Callable[["TradingState", str], None]  # called on every state change


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


_ACTIVE = TradingState.ACTIVE
_HALTED = TradingState.HALTED


class RiskEngine:
    """Runs the trading-state gate and every rule, in order; the first denial wins.

    Add rules with :meth:`add_rule` (or the constructor) so that their optional
    hooks are registered: ``on_pass(order)`` is called for an order that passed
    every rule (order-rate counters), ``on_price(instrument_id, ts, price)`` and
    ``on_equity(ts, equity)`` are fanned out by :meth:`on_price` and :meth:`on_equity`.
    """

    def __init__(self, view: RiskView, rules: Sequence[RiskRule] = ()) -> None:
        self._begin: Callable[[], None] | None = None
        self._end: Callable[[], None] | None = None
        self.view = view
        self.rules: list[RiskRule] = [make() for make in CORE_RULES]
        self.state = TradingState.ACTIVE
        self.state_reason = ""
        self.state_until: int | None = None
        self.listeners: list[StateListener] = []
        self._pass_hooks: list[OrderHook] = []
        self._price_hooks: list[PriceHook] = []
        self._equity_hooks: list[EquityHook] = []
        for rule in rules:
            self.add_rule(rule)

    @property
    def view(self) -> RiskView:
        return self._view

    @view.setter
    def view(self, view: RiskView) -> None:
        """Set the view; a view with ``begin_check``/``end_check`` is told where a check
        starts and ends (so it may memoise what several rules read)."""
        self._view = view
        begin = getattr(view, "begin_check", None)
        end = getattr(view, "end_check", None)
        both = callable(begin) and callable(end)
        self._begin = begin if both else None
        self._end = end if both else None

    def add_rule(self, rule: RiskRule) -> None:
        self.rules.append(rule)
        hook = getattr(rule, "on_pass", None)
        if callable(hook):
            self._pass_hooks.append(hook)
        price_hook = getattr(rule, "on_price", None)
        if callable(price_hook):
            self._price_hooks.append(price_hook)
        equity_hook = getattr(rule, "on_equity", None)
        if callable(equity_hook):
            self._equity_hooks.append(equity_hook)

    def rule(self, code: str) -> RiskRule | None:
        """The first installed rule with this code, or None."""
        for rule in self.rules:
            if rule.code == code:
                return rule
        return None

    # -- feeds (market data and equity, for the rules that keep state) -------------------
    @property
    def wants_prices(self) -> bool:
        """True if a rule listens to :meth:`on_price` (skip the feed otherwise)."""
        return bool(self._price_hooks)

    @property
    def wants_equity(self) -> bool:
        """True if a rule listens to :meth:`on_equity` (skip the feed otherwise)."""
        return bool(self._equity_hooks)

    def on_price(self, instrument_id: str, ts: int, price: int) -> None:
        for hook in self._price_hooks:
            hook(instrument_id, ts, price)

    def on_equity(self, ts: int, equity: int) -> None:
        for hook in self._equity_hooks:
            hook(ts, equity)

    # -- trading state ---------------------------------------------------------------------
    def set_state(self, state: TradingState, reason: str = "", until_ns: int | None = None) -> None:
        """Set the trading state; a non-ACTIVE state may expire at ``until_ns`` (engine time)."""
        self.state = state
        self.state_reason = reason
        self.state_until = None if state is _ACTIVE else until_ns
        for listener in self.listeners:
            listener(state, reason)

    def resume_state(self, state: TradingState, reason: str, until_ns: int | None) -> None:
        """Take over a state the journal already recorded (a restart): no listener hears it."""
        self.state = state
        self.state_reason = reason
        self.state_until = None if state is _ACTIVE else until_ns

    def expire_state(self, now: int) -> bool:
        """Reset to ACTIVE if the current state's expiry has passed; True if it did."""
        until = self.state_until
        if until is None or now < until:
            return False
        self.set_state(_ACTIVE, f"{self.state.value} ended at {until} ({self.state_reason})")
        return True

    def to_dict(self) -> dict[str, Any]:
        """The trading state as plain JSON-able values (see :meth:`restore`)."""
        return {
            "state": self.state.value,
            "reason": self.state_reason,
            "until_ns": self.state_until,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Restore a trading state written by :meth:`to_dict` (e.g. HALTED after a restart)."""
        try:
            state = TradingState(data["state"])
        except (KeyError, ValueError):
            raise ValueError(f"not a saved trading state: {dict(data)!r}") from None
        until = data.get("until_ns")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int)):
            raise ValueError(f"until_ns must be an int (ns) or null, got {until!r}")
        self.set_state(state, str(data.get("reason", "")), until)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], view: RiskView, rules: Sequence[RiskRule] = ()
    ) -> RiskEngine:
        engine = cls(view, rules)
        engine.restore(data)
        return engine

    # -- the check ------------------------------------------------------------------------
    def check(self, order: Order) -> Denial | None:
        """The first denial of the state gate or a rule, or None if the order may go."""
        begin = self._begin
        if begin is None:
            return self._check(order)
        begin()
        try:
            return self._check(order)
        finally:
            end = self._end
            assert end is not None
            end()

    def _check(self, order: Order) -> Denial | None:
        view = self._view
        rules = self.rules
        first = rules[0]
        reason = first.check(order, view)
        if reason is not None:
            return Denial(first.code, reason)
        if self.state is not _ACTIVE:
            denial = self._gate(order, view)
            if denial is not None:
                return denial
        for rule in rules[1:]:
            reason = rule.check(order, view)
            if reason is not None:
                return Denial(rule.code, reason)
        if self._pass_hooks:
            for hook in self._pass_hooks:
                hook(order)
        return None

    def _gate(self, order: Order, view: RiskView) -> Denial | None:
        if self.state_until is not None and self.expire_state(order.ts_init):
            return None
        if self.state is _HALTED:
            if order.reduce_only and reduces_position(order, view):
                return None
            return Denial("TRADING_HALTED", f"trading is halted: {self.state_reason}".strip())
        if not reduces_position(order, view):
            return Denial(
                "REDUCING_ONLY",
                f"trading state is REDUCING: only orders that reduce a position pass "
                f"({self.state_reason})",
            )
        return None
