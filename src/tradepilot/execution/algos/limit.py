"""``limit``: one limit order, optionally cancelled after a timeout and the rest sent at market."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradepilot.execution.algos.base import FIXED, check_positive
from tradepilot.execution.algos.timeout import TimeoutFallback, TimeoutParams
from tradepilot.model.enums import OrderType

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext


@dataclass(frozen=True, kw_only=True)
class LimitParams(TimeoutParams):
    """``price`` (raw; None: the near touch when the parent starts, moved by
    ``offset_ticks`` towards the market), ``timeout`` (ns; None: no timeout),
    ``fallback_to_market`` (after the timeout, the remainder goes at market; otherwise
    the parent fails with it), ``post_only``."""

    price: int | None = field(default=None, metadata=FIXED)
    offset_ticks: int = 0
    post_only: bool = False

    def check(self) -> None:
        super().check()
        check_positive("price", self.price)
        if self.price is not None and self.offset_ticks:
            raise ValueError("offset_ticks applies only without an explicit price")


class LimitAlgo(TimeoutFallback[LimitParams]):
    name = "limit"
    params_type = LimitParams

    def __init__(self, ctx: ParentContext, params: LimitParams) -> None:
        super().__init__(ctx, params)
        self.ctx.check_price("price", params.price)

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
        self.start_timeout()
