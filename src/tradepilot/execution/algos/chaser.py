"""``chaser``: a limit order pegged to the market that follows it when it moves away.

The child rests at the peg - ``best`` (best bid for a buy, best ask for a sell; the
last price without a book or quotes) or ``last`` (the last trade) - moved
``offset_ticks`` towards the market. When the peg moves away from the child's price by
``threshold_ticks`` or more (up for a buy, down for a sell) the child is re-priced
with a modify, never further than ``max_chase_ticks`` from its first price. A market
coming towards the order leaves it where it is. With a ``timeout`` the child is
cancelled then, and the remainder goes at market (``fallback_to_market``) or the
parent fails with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tradepilot.execution.algos.base import check_choice
from tradepilot.execution.algos.timeout import TimeoutFallback, TimeoutParams
from tradepilot.model.enums import OrderSide, OrderType

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext

PEGS = ("best", "last")


@dataclass(frozen=True, kw_only=True)
class ChaserParams(TimeoutParams):
    peg: str = "best"
    offset_ticks: int = 0
    threshold_ticks: int = 1
    max_chase_ticks: int | None = None
    post_only: bool = False

    def check(self) -> None:
        super().check()
        check_choice("peg", self.peg, PEGS)
        if self.threshold_ticks < 1:
            raise ValueError(f"threshold_ticks must be at least 1, got {self.threshold_ticks}")
        if self.max_chase_ticks is not None and self.max_chase_ticks < 0:
            raise ValueError(f"max_chase_ticks cannot be negative, got {self.max_chase_ticks}")


class ChaserAlgo(TimeoutFallback[ChaserParams]):
    name = "chaser"
    params_type = ChaserParams

    def __init__(self, ctx: ParentContext, params: ChaserParams) -> None:
        super().__init__(ctx, params)
        self.first_px: int | None = None
        self.reprices = 0

    def peg_price(self) -> int | None:
        ctx = self.ctx
        px = ctx.near_touch() if self.params.peg == "best" else ctx.market.last_price
        return None if px is None else ctx.offset(px, self.params.offset_ticks)

    def on_start(self) -> None:
        ctx, p = self.ctx, self.params
        price = self.peg_price()
        if price is None:
            ctx.fail("no market price yet to peg to")
            return
        self.first_px = price
        ctx.submit(ctx.available(), OrderType.LIMIT, price=price, post_only=p.post_only)
        self.start_timeout()

    def on_market(self) -> None:
        if self._expired or self.first_px is None:
            return
        ctx, p = self.ctx, self.params
        children = ctx.open_children()
        if len(children) != 1:
            return
        child = children[0]
        target = self.peg_price()
        if target is None or child.price is None:
            return
        buy = ctx.side is OrderSide.BUY
        away = target - child.price if buy else child.price - target
        if away < p.threshold_ticks * ctx.instrument.tick_size:
            return
        if p.max_chase_ticks is not None:
            reach = p.max_chase_ticks * ctx.instrument.tick_size
            target = (
                min(target, self.first_px + reach) if buy else max(target, self.first_px - reach)
            )
        if target != child.price and ctx.modify(child, price=target):
            self.reprices += 1
