"""Exits: when an open position must be closed.

Levels are fixed when a position opens (and re-based on its average price when
it is added to), from the :class:`ExitConfig` and the ATR at entry:

* stop-loss ``entry * (1 - stop_loss) - stop_atr_mult * ATR`` for a long
  (mirrored for a short); either term may be left out;
* take-profit ``entry * (1 + take_profit) + take_profit_atr_mult * ATR``;
* trailing stop ``best - (entry * trailing_stop + trailing_atr_mult * ATR)``, where
  ``best`` is the best close (or high/low, ``intrabar``) since entry; it only tightens;
* time exit after ``max_hold_ns``;
* a forced exit when the risk engine's trading state is REDUCING or HALTED.

The ``stop_loss``, ``take_profit`` and ``trailing_stop`` settings are fractions of the
entry price (0.02 = 2 %). A signal's own stop-loss and take-profit *prices* replace
the configured levels of the position it opens. Levels are checked on every bar of
the instrument, on its close by default (``intrabar`` uses the low and high). A
triggered exit becomes a CLOSE signal with the exit's reason. If that exit order is
denied, the trigger stays quiet until the risk state or the position changes (no
retry storm).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tradepilot.core.time import NS_PER_HOUR, NS_PER_MINUTE


class ExitCode(StrEnum):
    RISK_BREACH = "RISK_BREACH"
    STOP_LOSS = "STOP_LOSS"
    TRAILING_STOP = "TRAILING_STOP"
    TAKE_PROFIT = "TAKE_PROFIT"
    TIME_EXIT = "TIME_EXIT"


FORCED_STATES = frozenset({"REDUCING", "HALTED"})


@dataclass(frozen=True)
class ExitConfig:
    stop_loss: float | None = None  # fraction of the entry price (0.02 = 2 %)
    stop_atr_mult: float = 0.0
    take_profit: float | None = None
    take_profit_atr_mult: float = 0.0
    trailing_stop: float | None = None
    trailing_atr_mult: float = 0.0
    max_hold_ns: int | None = None
    exit_on_risk_breach: bool = True
    intrabar: bool = False

    def __post_init__(self) -> None:
        for name in ("stop_loss", "take_profit", "trailing_stop"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        for name in ("stop_atr_mult", "take_profit_atr_mult", "trailing_atr_mult"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")
        if self.max_hold_ns is not None and self.max_hold_ns <= 0:
            raise ValueError("max_hold must be positive")

    @property
    def uses_atr(self) -> bool:
        return bool(self.stop_atr_mult or self.take_profit_atr_mult or self.trailing_atr_mult)

    def stop_for(self, side: int, entry: float, atr: float | None) -> float | None:
        """The stop-loss level for a position of ``side`` entered at ``entry`` (None: no stop)."""
        return _level(entry, -side, self.stop_loss, self.stop_atr_mult, atr)

    def take_profit_for(self, side: int, entry: float, atr: float | None) -> float | None:
        return _level(entry, side, self.take_profit, self.take_profit_atr_mult, atr)

    def trail_distance(self, entry: float, atr: float | None) -> float | None:
        dist = _distance(entry, self.trailing_stop, self.trailing_atr_mult, atr)
        return dist if dist else None


def _distance(entry: float, pct: float | None, mult: float, atr: float | None) -> float:
    dist = entry * pct if pct is not None else 0.0
    if mult and atr is not None:
        dist += mult * atr
    return dist


def _level(
    entry: float, direction: int, pct: float | None, mult: float, atr: float | None
) -> float | None:
    if pct is None and not (mult and atr is not None):
        return None
    level = entry + direction * _distance(entry, pct, mult, atr)
    return level if level > 0 else None


@dataclass(slots=True)
class PositionLevels:
    instrument_id: str
    side: int
    entry_px: float
    entry_ts: int
    atr: float | None
    stop: float | None
    take_profit: float | None
    trail_dist: float | None
    best: float
    fixed_stop: float | None = None  # from the signal
    fixed_take: float | None = None

    @property
    def trail_stop(self) -> float | None:
        if self.trail_dist is None:
            return None
        return self.best - self.side * self.trail_dist


@dataclass(frozen=True, slots=True)
class ExitTrigger:
    code: str
    reason: str


def _fmt_hold(ns: int) -> str:
    hours, rest = divmod(ns, NS_PER_HOUR)
    return f"{hours}h{rest // NS_PER_MINUTE:02d}m"


class ExitManager:
    """Exit levels of every open position of one strategy, and the checks against them."""

    def __init__(self, config: ExitConfig) -> None:
        self.config = config
        self.positions: dict[str, PositionLevels] = {}
        self._quiet: dict[str, str] = {}  # instrument -> risk state when an exit was denied

    def on_open(
        self,
        instrument_id: str,
        side: int,
        entry_px: float,
        ts: int,
        atr: float | None,
        stop: float | None = None,
        take_profit: float | None = None,
    ) -> PositionLevels:
        cfg = self.config
        levels = PositionLevels(
            instrument_id,
            side,
            entry_px,
            ts,
            atr,
            stop if stop is not None else cfg.stop_for(side, entry_px, atr),
            take_profit if take_profit is not None else cfg.take_profit_for(side, entry_px, atr),
            cfg.trail_distance(entry_px, atr),
            entry_px,
            stop,
            take_profit,
        )
        self.positions[instrument_id] = levels
        self._quiet.pop(instrument_id, None)
        return levels

    def on_change(self, instrument_id: str, avg_px: float) -> None:
        """Re-base the levels on a new average entry price (the position was added to)."""
        lv = self.positions.get(instrument_id)
        if lv is None:
            return
        cfg = self.config
        lv.entry_px = avg_px
        if lv.fixed_stop is None:
            lv.stop = cfg.stop_for(lv.side, avg_px, lv.atr)
        if lv.fixed_take is None:
            lv.take_profit = cfg.take_profit_for(lv.side, avg_px, lv.atr)
        lv.trail_dist = cfg.trail_distance(avg_px, lv.atr)
        self._quiet.pop(instrument_id, None)

    def on_close(self, instrument_id: str) -> None:
        self.positions.pop(instrument_id, None)
        self._quiet.pop(instrument_id, None)

    def exit_denied(self, instrument_id: str, risk_state: str) -> None:
        """An exit order was denied: stay quiet until the risk state or the position changes."""
        self._quiet[instrument_id] = risk_state

    def check(
        self,
        instrument_id: str,
        ts: int,
        close: float,
        low: float | None = None,
        high: float | None = None,
        risk_state: str = "ACTIVE",
        risk_reason: str = "",
    ) -> ExitTrigger | None:
        """The exit to take now for ``instrument_id``, if any (updates the trailing best)."""
        lv = self.positions.get(instrument_id)
        if lv is None:
            return None
        quiet = self._quiet.get(instrument_id)
        if quiet is not None:
            if quiet == risk_state:
                return None
            del self._quiet[instrument_id]
        cfg = self.config
        side = lv.side
        lo = low if cfg.intrabar and low is not None else close
        hi = high if cfg.intrabar and high is not None else close
        adverse, favourable = (lo, hi) if side > 0 else (hi, lo)
        trigger: ExitTrigger | None = None
        if cfg.exit_on_risk_breach and risk_state in FORCED_STATES:
            why = f" ({risk_reason})" if risk_reason else ""
            trigger = ExitTrigger(
                ExitCode.RISK_BREACH, f"forced exit: risk state is {risk_state}{why}"
            )
        if trigger is None:
            trigger = self._stop_hit(lv, adverse)
        take = lv.take_profit
        if trigger is None and take is not None and (favourable - take) * side >= 0:
            trigger = ExitTrigger(
                ExitCode.TAKE_PROFIT,
                f"take-profit {take:,.2f} reached (price {favourable:,.2f}, "
                f"entry {lv.entry_px:,.2f})",
            )
        if trigger is None and cfg.max_hold_ns is not None and ts - lv.entry_ts >= cfg.max_hold_ns:
            trigger = ExitTrigger(
                ExitCode.TIME_EXIT,
                f"time exit: held {_fmt_hold(ts - lv.entry_ts)} >= {_fmt_hold(cfg.max_hold_ns)}",
            )
        if (favourable - lv.best) * side > 0:
            lv.best = favourable
        return trigger

    @staticmethod
    def _stop_hit(lv: PositionLevels, adverse: float) -> ExitTrigger | None:
        side = lv.side
        stop, trail = lv.stop, lv.trail_stop
        level, code, label = stop, ExitCode.STOP_LOSS, "stop-loss"
        if trail is not None and (stop is None or (trail - stop) * side > 0):
            level, code, label = trail, ExitCode.TRAILING_STOP, "trailing stop"
        if level is None or (adverse - level) * side > 0:
            return None
        return ExitTrigger(
            code,
            f"{label} {level:,.2f} hit (price {adverse:,.2f}, entry {lv.entry_px:,.2f})",
        )

    def describe(self, instrument_id: str) -> dict[str, object]:
        lv = self.positions.get(instrument_id)
        if lv is None:
            return {}
        out: dict[str, object] = {"entry": round(lv.entry_px, 8)}
        for name, value in (
            ("stop", lv.stop),
            ("take_profit", lv.take_profit),
            ("trail_stop", lv.trail_stop),
        ):
            if value is not None:
                out[name] = round(value, 8)
        return out
