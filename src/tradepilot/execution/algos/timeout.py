"""A resting child with a timeout: cancelled then, the remainder at market or a failure.

Shared by ``limit`` and ``chaser``: their parameters extend :class:`TimeoutParams`
and their algorithm extends :class:`TimeoutFallback`, which owns the timer, the
cancel, the fallback market order and the failure when there is no fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from tradepilot.execution.algos.base import (
    DURATION,
    AlgoParams,
    Algorithm,
    check_positive,
    child_failure,
)
from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.events import Event
from tradepilot.model.order import Order


@dataclass(frozen=True, kw_only=True)
class TimeoutParams(AlgoParams):
    """``timeout`` (ns; None: no timeout); ``fallback_to_market``: after it, the
    remainder goes at market (otherwise the parent fails with it)."""

    timeout: int | None = field(default=None, metadata=DURATION)
    fallback_to_market: bool = False

    def check(self) -> None:
        check_positive("timeout", self.timeout)
        if self.fallback_to_market and self.timeout is None:
            raise ValueError("fallback_to_market needs a timeout")


T = TypeVar("T", bound=TimeoutParams)


class TimeoutFallback(Algorithm[T]):
    _expired = False
    _fallback_sent = False

    def start_timeout(self) -> None:
        if self.params.timeout is not None:
            self.ctx.set_timer("timeout", self.ctx.now() + self.params.timeout)

    def on_timer(self, name: str) -> None:
        self._expired = True
        if self.ctx.open_children():
            self.ctx.cancel_all(reason="timeout")
        else:
            self._after_timeout()

    def on_child_closed(self, order: Order, event: Event) -> None:
        ctx = self.ctx
        if order.status is OrderStatus.FILLED or self.is_complete():
            return
        if self._expired and not self._fallback_sent and order.status is OrderStatus.CANCELED:
            if not ctx.open_children():
                self._after_timeout()
            return
        ctx.fail(child_failure(order, event))

    def _after_timeout(self) -> None:
        ctx = self.ctx
        if self.is_complete():
            return
        if self.params.fallback_to_market:
            self._fallback_sent = True
            ctx.submit(ctx.available(), OrderType.MARKET, tags=f"{self.name}:fallback")
        else:
            ctx.fail(f"timeout with {fixed.to_str(ctx.remaining)} not filled")
