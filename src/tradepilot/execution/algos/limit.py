"""``limit``: one limit order, optionally cancelled after a timeout and the rest sent at market."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradepilot.execution.algos.base import (
    DURATION,
    FIXED,
    AlgoParams,
    Algorithm,
    check_positive,
    child_failure,
)
from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.events import Event
from tradepilot.model.order import Order

if TYPE_CHECKING:
    from tradepilot.execution.algo_engine import ParentContext


@dataclass(frozen=True, kw_only=True)
class LimitParams(AlgoParams):
    """``price`` (raw; None: the near touch when the parent starts, moved by
    ``offset_ticks`` towards the market), ``timeout`` (ns; None: no timeout),
    ``fallback_to_market`` (after the timeout, the remainder goes at market; otherwise
    the parent fails with it), ``post_only``."""

    price: int | None = field(default=None, metadata=FIXED)
    offset_ticks: int = 0
    timeout: int | None = field(default=None, metadata=DURATION)
    fallback_to_market: bool = False
    post_only: bool = False

    def check(self) -> None:
        check_positive("price", self.price)
        check_positive("timeout", self.timeout)
        if self.fallback_to_market and self.timeout is None:
            raise ValueError("fallback_to_market needs a timeout")
        if self.price is not None and self.offset_ticks:
            raise ValueError("offset_ticks applies only without an explicit price")


class LimitAlgo(Algorithm[LimitParams]):
    name = "limit"
    params_type = LimitParams

    def __init__(self, ctx: ParentContext, params: LimitParams) -> None:
        super().__init__(ctx, params)
        self.ctx.check_price("price", params.price)
        self._expired = False
        self._fallback_sent = False

    def on_start(self) -> None:
        ctx, p = self.ctx, self.params
        price = p.price
        if price is None:
            touch = ctx.near_touch()
            if touch is None:
                ctx.fail("no market price yet to place the limit")
                return
            price = ctx.offset(touch, p.offset_ticks)
        ctx.submit(ctx.available(), OrderType.LIMIT, price=price, post_only=p.post_only)
        if p.timeout is not None:
            ctx.set_timer("timeout", ctx.now() + p.timeout)

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
            ctx.submit(ctx.available(), OrderType.MARKET, tags="limit:fallback")
        else:
            ctx.fail(f"timeout with {fixed.to_str(ctx.remaining)} not filled")
