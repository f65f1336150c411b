"""``bracket``: an entry, then a stop-loss and a take-profit (an OCO) around the position.

The entry is a market order or a limit at ``entry_price`` (cancelled after
``entry_timeout``, if given). Once it is closed - filled, or cancelled after a partial
fill - the exit legs (see :mod:`~tradepilot.execution.algos.oco`) are armed on the
opposite side for exactly the quantity the entry filled. The parent is done when the
exits have closed that quantity; an entry that filled nothing ends the parent.
The parent's ``filled_qty`` is the entry's; exit fills are child fills of the other
side. Cancelling the parent cancels the working legs but leaves the position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradepilot.execution.algos.base import (
    DURATION,
    FIXED,
    Algorithm,
    ParentStatus,
    check_choice,
    check_positive,
    child_failure,
    event_reason,
)
from tradepilot.execution.algos.oco import ExitLegs, OcoParams, check_levels
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.events import Event
from tradepilot.model.order import Order

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext

ENTRY_TYPES = ("market", "limit")


@dataclass(frozen=True, kw_only=True)
class BracketParams(OcoParams):
    entry_type: str = "market"
    entry_price: int | None = field(default=None, metadata=FIXED)
    entry_timeout: int | None = field(default=None, metadata=DURATION)

    def check(self) -> None:
        super().check()
        check_choice("entry_type", self.entry_type, ENTRY_TYPES)
        check_positive("entry_price", self.entry_price)
        check_positive("entry_timeout", self.entry_timeout)
        if self.entry_type == "limit" and self.entry_price is None:
            raise ValueError("a limit entry needs an entry_price")
        if self.entry_type == "market" and self.entry_price is not None:
            raise ValueError("entry_price is only for a limit entry")


class BracketAlgo(Algorithm[BracketParams]):
    name = "bracket"
    params_type = BracketParams

    def __init__(self, ctx: ParentContext, params: BracketParams) -> None:
        super().__init__(ctx, params)
        ctx.check_price("entry_price", params.entry_price)
        exit_side = ctx.side.opposite
        ref = params.entry_price if params.entry_price is not None else ctx.far_touch()
        check_levels(ctx, exit_side, params, ref)
        self.legs = ExitLegs(ctx, exit_side, params)
        self.entry_closed = False
        self._timed_out = False

    def on_start(self) -> None:
        ctx, p = self.ctx, self.params
        if p.entry_type == "market":
            ctx.submit(ctx.available(), OrderType.MARKET, tags="entry")
        else:
            ctx.submit(ctx.available(), OrderType.LIMIT, price=p.entry_price, tags="entry")
        if p.entry_timeout is not None:
            ctx.set_timer("entry_timeout", ctx.now() + p.entry_timeout)

    def on_timer(self, name: str) -> None:
        self._timed_out = True
        self.ctx.cancel_all(self.ctx.side, reason="entry timeout")

    def on_bar(self, bar: Bar) -> None:
        self.legs.on_prices(bar.low, bar.high)

    def on_trade(self, tick: TradeTick) -> None:
        self.legs.on_prices(tick.price, tick.price)

    def on_market(self) -> None:
        px = self.ctx.far_touch(self.legs.side)
        if px is not None:
            self.legs.on_prices(px, px)

    def on_child_closed(self, order: Order, event: Event) -> None:
        ctx = self.ctx
        if order.side is not ctx.side:
            self.legs.on_child_closed(order, event)
            return
        if ctx.open_children(ctx.side):
            return
        self.entry_closed = True
        ctx.cancel_timer("entry_timeout")
        if ctx.filled > 0:
            self.legs.arm()
        elif order.status in (OrderStatus.DENIED, OrderStatus.REJECTED):
            ctx.fail(child_failure(order, event))
        elif self._timed_out:
            ctx.fail("entry not filled before the entry timeout")
        else:
            ctx.finish(
                ParentStatus.CANCELLED, f"entry {order.status.value.lower()}: {event_reason(event)}"
            )

    def progress(self) -> str:
        ctx = self.ctx
        exits = fixed.to_str(ctx.filled_on(self.legs.side))
        return (
            f"entry {fixed.to_str(ctx.filled)} of {fixed.to_str(ctx.quantity)} filled, "
            f"exits {exits} of {fixed.to_str(ctx.filled)}"
        )

    def is_complete(self) -> bool:
        ctx = self.ctx
        entry = ctx.filled
        return self.entry_closed and entry > 0 and ctx.filled_on(self.legs.side) >= entry
