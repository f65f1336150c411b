"""Gates: the checks a valid signal passes before it may be sized into an order.

:func:`evaluate` is a pure function of the signal, the strategy's position, the
instrument's one-hour momentum and the :class:`GateConfig`. It returns the
signal's *intent* (entry, add, exit, reversal exit, rebalance) or a HOLD with a
code and a human reason. In order:

1. an order for the instrument is still in flight -> HOLD;
2. CLOSE -> EXIT (HOLD if there is nothing to close); exits are never gated;
3. TARGET -> confidence gate, then REBALANCE (the sizer computes the change);
4. BUY/SELL against an open position (a SELL while long, a BUY while short) is a
   reversal: EXIT when its confidence reaches ``reversal_confidence``, else HOLD;
5. entries: confidence >= ``min_confidence`` (0.6), |momentum| >= ``min_momentum_pct``
   (1.78 %/hour; 0 disables), optionally in the signal's direction; no entry while
   a position is open (``block_entry_when_open``) - otherwise the entry adds to it;
   no short entry unless shorting is allowed (never in a cash account).

Every HOLD is counted by :class:`HoldSummary` (code -> count, with the last reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import msgspec

from tradepilot.core.time import NS_PER_HOUR
from tradepilot.strategy.signals import Signal, SignalAction


class Intent(StrEnum):
    ENTRY = "ENTRY"
    ADD = "ADD"
    EXIT = "EXIT"
    REVERSAL_EXIT = "REVERSAL_EXIT"
    REBALANCE = "REBALANCE"


class HoldCode(StrEnum):
    """Why a valid signal produced no order (gates, sizing, targets, schedule)."""

    ORDER_IN_FLIGHT = "ORDER_IN_FLIGHT"
    NO_POSITION = "NO_POSITION"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    MOMENTUM_WARMUP = "MOMENTUM_WARMUP"
    LOW_MOMENTUM = "LOW_MOMENTUM"
    MOMENTUM_AGAINST = "MOMENTUM_AGAINST"
    POSITION_OPEN = "POSITION_OPEN"
    NO_SHORTING = "NO_SHORTING"
    WEAK_REVERSAL = "WEAK_REVERSAL"
    REVERSAL_DISABLED = "REVERSAL_DISABLED"
    WARMING_UP = "WARMING_UP"
    MARKET_CLOSED = "MARKET_CLOSED"
    NO_PRICE = "NO_PRICE"
    NO_EDGE = "NO_EDGE"
    CVAR_HISTORY = "CVAR_HISTORY"
    NO_VOLATILITY = "NO_VOLATILITY"
    NO_CAPITAL = "NO_CAPITAL"
    NO_CASH = "NO_CASH"
    SIZE_ZERO = "SIZE_ZERO"
    BELOW_MIN_TRADE = "BELOW_MIN_TRADE"
    AT_TARGET = "AT_TARGET"
    DRIFT_BELOW_THRESHOLD = "DRIFT_BELOW_THRESHOLD"
    NOTHING_TO_SELL = "NOTHING_TO_SELL"


@dataclass(frozen=True)
class GateConfig:
    min_confidence: float = 0.6
    min_momentum_pct: float = 1.78  # |momentum| in % per hour; 0 disables the filter
    momentum_lookback_ns: int = NS_PER_HOUR
    momentum_must_agree: bool = False  # the momentum's sign must match the signal's side
    block_entry_when_open: bool = True
    reversal_exit: bool = True
    reversal_confidence: float = 0.8
    allow_short: bool = False

    def __post_init__(self) -> None:
        for name in ("min_confidence", "reversal_confidence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in 0-1, got {value}")
        if not self.min_momentum_pct >= 0:
            raise ValueError("min_momentum_pct cannot be negative")
        if self.momentum_lookback_ns <= 0:
            raise ValueError("the momentum lookback must be positive")


class GateResult(msgspec.Struct, frozen=True):
    intent: Intent | None  # None: HOLD
    code: str
    reason: str

    @property
    def is_hold(self) -> bool:
        return self.intent is None


def _hold(code: HoldCode, reason: str) -> GateResult:
    return GateResult(None, str(code), reason)


_CLOSE = SignalAction.CLOSE
_TARGET = SignalAction.TARGET
_ENTRY = Intent.ENTRY
_ADD = Intent.ADD
_EXIT = Intent.EXIT
_REVERSAL = Intent.REVERSAL_EXIT
_REBALANCE = Intent.REBALANCE
_ENTRY_NOTE = {a: f"{a.value} entry" for a in SignalAction}
_ADD_NOTE = {a: f"{a.value} adds to the position" for a in SignalAction}


def _side_name(qty: int) -> str:
    return "long" if qty > 0 else "short"


def evaluate(
    signal: Signal,
    position_qty: int,
    momentum_pct: float | None,
    config: GateConfig,
    in_flight: bool = False,
) -> GateResult:
    """Decide what ``signal`` means given the position; see the module docstring."""
    action = signal.action
    if in_flight:
        return _hold(
            HoldCode.ORDER_IN_FLIGHT, f"an order for {signal.instrument_id} is still in flight"
        )
    if action == _CLOSE:
        if position_qty == 0:
            return _hold(HoldCode.NO_POSITION, f"nothing to close in {signal.instrument_id}")
        return GateResult(_EXIT, "", signal.note or "close signal")
    conf = signal.confidence
    if action == _TARGET:
        if conf < config.min_confidence:
            return _hold(
                HoldCode.LOW_CONFIDENCE,
                f"confidence {conf:.2f} < {config.min_confidence:.2f}",
            )
        return GateResult(_REBALANCE, "", signal.note or "target")
    side = signal.side
    if position_qty and (position_qty > 0) != (side > 0):
        held = _side_name(position_qty)
        if not config.reversal_exit:
            return _hold(
                HoldCode.REVERSAL_DISABLED,
                f"{action} signal against a {held} position; reversal exits are disabled",
            )
        if conf >= config.reversal_confidence:
            return GateResult(
                _REVERSAL,
                "",
                f"reversal exit: {action} signal with confidence {conf:.2f} >= "
                f"{config.reversal_confidence:.2f} against a {held} position",
            )
        return _hold(
            HoldCode.WEAK_REVERSAL,
            f"{action} signal against a {held} position with confidence {conf:.2f} < "
            f"reversal threshold {config.reversal_confidence:.2f}",
        )
    if conf < config.min_confidence:
        return _hold(
            HoldCode.LOW_CONFIDENCE, f"confidence {conf:.2f} < {config.min_confidence:.2f}"
        )
    threshold = config.min_momentum_pct
    if threshold > 0 or config.momentum_must_agree:
        if momentum_pct is None:
            hours = config.momentum_lookback_ns / NS_PER_HOUR
            return _hold(
                HoldCode.MOMENTUM_WARMUP,
                f"momentum unavailable: less than {hours:g} h of prices",
            )
        if abs(momentum_pct) < threshold:
            return _hold(
                HoldCode.LOW_MOMENTUM,
                f"|momentum| {abs(momentum_pct):.2f} %/h < {threshold:.2f} %/h",
            )
        if config.momentum_must_agree and momentum_pct * side < 0:
            return _hold(
                HoldCode.MOMENTUM_AGAINST,
                f"momentum {momentum_pct:+.2f} %/h runs against the {action} signal",
            )
    if position_qty:
        if config.block_entry_when_open:
            return _hold(
                HoldCode.POSITION_OPEN,
                f"a {_side_name(position_qty)} position in {signal.instrument_id} is already open",
            )
        return GateResult(_ADD, "", signal.note or _ADD_NOTE[action])
    if side < 0 and not config.allow_short:
        return _hold(HoldCode.NO_SHORTING, "no short entries (cash account or shorting disabled)")
    return GateResult(_ENTRY, "", signal.note or _ENTRY_NOTE[action])


class HoldSummary:
    """HOLD reasons counted by code, with the last full reason of each."""

    __slots__ = ("counts", "last")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.last: dict[str, str] = {}

    def add(self, code: str, reason: str) -> None:
        code = str(code)
        self.counts[code] = self.counts.get(code, 0) + 1
        self.last[code] = reason

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, int]:
        """``reason code -> count``, most frequent first (ties by code)."""
        return dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def describe(self) -> dict[str, dict[str, object]]:
        return {code: {"count": n, "last": self.last[code]} for code, n in self.to_dict().items()}
