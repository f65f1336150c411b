"""The circuit breaker: halts trading on a drawdown, a daily loss or a run of venue failures.

Feed it equity with :meth:`CircuitBreaker.on_equity` and order events with
:meth:`CircuitBreaker.on_event` (or :meth:`record_failure` for failures that are
not events, such as a lost connection). When it trips it sets the risk engine to
HALTED with its reason, for ``cooldown_ns`` of engine time; the first risk check
at or after the end of the cooldown sets the engine back to ACTIVE. It can be
tripped and reset by hand, and its state round-trips through :meth:`to_dict` and
:meth:`from_dict` so that a restart restores a halt.

After a reset (automatic or manual) drawdown and the day's loss are measured
from the next equity seen, so a breaker does not trip again on the same loss.
A breaker never lifts a halt it did not set: an automatic trip while the engine
is already halted for another reason leaves the engine alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradepilot.model import fixed
from tradepilot.model.events import (
    Event,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    VenueRequestFailed,
)
from tradepilot.risk.config import CircuitBreakerConfig
from tradepilot.risk.engine import RiskEngine, TradingState
from tradepilot.risk.equity import EquityWatch, pct_raw, pct_str, share_pct

_HALTED = TradingState.HALTED


class CircuitBreaker:
    def __init__(
        self,
        risk: RiskEngine,
        max_drawdown_pct: float | None = None,
        daily_loss_pct: float | None = None,
        max_consecutive_failures: int | None = None,
        cooldown_ns: int | None = 3_600_000_000_000,
    ) -> None:
        if cooldown_ns is not None and cooldown_ns < 0:
            raise ValueError("cooldown cannot be negative")
        if max_consecutive_failures is not None and max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be at least 1")
        self.risk = risk
        self.max_drawdown_pct = max_drawdown_pct
        self.daily_loss_pct = daily_loss_pct
        self.max_consecutive_failures = max_consecutive_failures
        self.cooldown_ns = cooldown_ns
        self._dd_raw = None if max_drawdown_pct is None else pct_raw(max_drawdown_pct)
        self._daily_raw = None if daily_loss_pct is None else pct_raw(daily_loss_pct)
        self.watch = EquityWatch()
        self.tripped = False
        self.reason = ""
        self.tripped_at: int | None = None
        self.until: int | None = None
        self.trip_count = 0
        self.consecutive_failures = 0
        self.last_failure = ""
        self._rebase = False
        risk.listeners.append(self._on_state)

    @classmethod
    def from_config(cls, config: CircuitBreakerConfig, risk: RiskEngine) -> CircuitBreaker:
        return cls(
            risk,
            max_drawdown_pct=config.max_drawdown_pct,
            daily_loss_pct=config.daily_loss_pct,
            max_consecutive_failures=config.max_consecutive_failures,
            cooldown_ns=config.cooldown_ns,
        )

    # -- feeds -------------------------------------------------------------------------
    def on_equity(self, ts: int, equity: int) -> None:
        watch = self.watch
        watch.observe(ts, equity)
        if self._rebase:
            watch.rebase(equity)
            self._rebase = False
        if self.tripped:
            return
        dd_raw = self._dd_raw
        if dd_raw is not None and watch.drawdown_reached(equity, dd_raw):
            peak = watch.peak or 0
            dd = peak - equity
            self._auto_trip(
                ts,
                f"drawdown {fixed.to_str(dd)} ({share_pct(dd, peak)} below the peak "
                f"{fixed.to_str(peak)}) reached max_drawdown_pct {pct_str(dd_raw)}",
            )
            return
        daily_raw = self._daily_raw
        if daily_raw is not None and watch.daily_loss_reached(equity, daily_raw):
            start = watch.day_start or 0
            loss = start - equity
            self._auto_trip(
                ts,
                f"daily loss {fixed.to_str(loss)} ({share_pct(loss, start)} of the day's first "
                f"equity {fixed.to_str(start)}) reached daily_loss_pct {pct_str(daily_raw)}",
            )

    def on_event(self, event: Event) -> None:
        """Count venue rejections and failed requests; an acceptance or a fill ends the run."""
        kind = type(event)
        if kind is OrderRejected:
            assert isinstance(event, OrderRejected)
            self.record_failure(event.ts, f"venue rejected {event.client_order_id}: {event.reason}")
        elif kind is VenueRequestFailed:
            assert isinstance(event, VenueRequestFailed)
            self.record_failure(
                event.ts,
                f"{event.request} {event.client_order_id} failed ({event.outcome}): {event.reason}",
            )
        elif kind is OrderAccepted or kind is OrderFilled:
            self.consecutive_failures = 0

    def record_failure(self, ts: int, reason: str) -> None:
        self.consecutive_failures += 1
        self.last_failure = reason
        limit = self.max_consecutive_failures
        if limit is not None and self.consecutive_failures >= limit and not self.tripped:
            self._auto_trip(
                ts,
                f"{self.consecutive_failures} consecutive venue failures reached "
                f"max_consecutive_failures {limit} (last: {reason})",
            )

    def record_success(self) -> None:
        self.consecutive_failures = 0

    # -- trip and reset ------------------------------------------------------------------
    def _auto_trip(self, ts: int, reason: str) -> None:
        if self.risk.state is _HALTED and not self.tripped:
            return  # halted by someone else: never replace that halt with a cooldown
        self.trip(ts, reason)

    def trip(
        self, ts: int, reason: str, cooldown_ns: int | None = None, until_reset: bool = False
    ) -> None:
        """Halt trading now, for ``cooldown_ns`` (default: the configured cooldown), or
        until a reset by hand if ``until_reset`` (or if no cooldown is configured)."""
        cooldown = (
            None if until_reset else cooldown_ns if cooldown_ns is not None else self.cooldown_ns
        )
        if cooldown is not None and cooldown < 0:
            raise ValueError(f"cooldown cannot be negative: {cooldown}")
        until = None if cooldown is None else ts + cooldown
        self.tripped = True
        self.reason = f"circuit breaker: {reason}"
        self.tripped_at = ts
        self.until = until
        self.trip_count += 1
        self.risk.set_state(_HALTED, self.reason, until)

    def reset(self, reason: str = "circuit breaker reset by hand") -> None:
        """Lift the breaker's halt (a halt set by someone else is left in place)."""
        if self.tripped:
            self.risk.set_state(TradingState.ACTIVE, reason)
        self._clear()

    def poll(self, now: int) -> bool:
        """End the halt if its cooldown is over (a check does this too); True if it ended."""
        return self.tripped and self.risk.expire_state(now)

    def _on_state(self, state: TradingState, reason: str) -> None:
        if self.tripped and (state is not _HALTED or reason != self.reason):
            self._clear()

    def _clear(self) -> None:
        self.tripped = False
        self.until = None
        self.consecutive_failures = 0
        self._rebase = True

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "config": {
                "max_drawdown_pct": self.max_drawdown_pct,
                "daily_loss_pct": self.daily_loss_pct,
                "max_consecutive_failures": self.max_consecutive_failures,
                "cooldown_ns": self.cooldown_ns,
            },
            "tripped": self.tripped,
            "reason": self.reason,
            "tripped_at": self.tripped_at,
            "until_ns": self.until,
            "trip_count": self.trip_count,
            "consecutive_failures": self.consecutive_failures,
            "last_failure": self.last_failure,
            "rebase": self._rebase,
            "equity": self.watch.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], risk: RiskEngine) -> CircuitBreaker:
        """Rebuild a breaker saved by :meth:`to_dict`; a saved trip halts ``risk`` again."""
        try:
            cfg = data["config"]
            breaker = cls(
                risk,
                max_drawdown_pct=cfg.get("max_drawdown_pct"),
                daily_loss_pct=cfg.get("daily_loss_pct"),
                max_consecutive_failures=cfg.get("max_consecutive_failures"),
                cooldown_ns=cfg.get("cooldown_ns"),
            )
            breaker.reason = str(data.get("reason", ""))
            breaker.tripped_at = data.get("tripped_at")
            breaker.until = data.get("until_ns")
            breaker.trip_count = int(data.get("trip_count", 0))
            breaker.consecutive_failures = int(data.get("consecutive_failures", 0))
            breaker.last_failure = str(data.get("last_failure", ""))
            breaker._rebase = bool(data.get("rebase", False))
            breaker.watch.load(dict(data.get("equity") or {}))
            tripped = bool(data.get("tripped", False))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a saved circuit breaker state: {exc}") from None
        if tripped:
            breaker.tripped = True
            risk.set_state(_HALTED, breaker.reason, breaker.until)
        return breaker
