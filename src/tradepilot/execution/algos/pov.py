"""``pov``: percentage of volume - keep the parent's fills at a share of the market's.

The market volume traded since the parent started is counted from trade ticks (their
sizes) or bars (their volume). Whenever ``participation`` times that volume is ahead
of what the parent has filled and has working by at least ``min_child`` (one lot if
zero), a child for the difference is sent, at most ``max_child``. The last child may
be smaller than ``min_child``. Children are at least ``min_interval`` apart (5 s by
default): the volume traded meanwhile is merged into the next child instead of a stream
of tiny orders (the venue's rate limit and minimum size would refuse them). Every child
is at least the venue's minimum size and value. Children are market orders, or limits at
``limit_price`` (a price the parent will not pay more, or sell for less, than).
The parent's own fills are not part of the counted volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradepilot.execution.algos.base import (
    DURATION,
    FIXED,
    AlgoParams,
    Algorithm,
    check_positive,
)
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.enums import OrderType

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext

_PPB = 10**9


@dataclass(frozen=True, kw_only=True)
class PovParams(AlgoParams):
    participation: float
    min_child: int = field(default=0, metadata=FIXED)
    max_child: int | None = field(default=None, metadata=FIXED)
    limit_price: int | None = field(default=None, metadata=FIXED)
    min_interval: int = field(default=5_000_000_000, metadata=DURATION)

    def check(self) -> None:
        if not 0 < self.participation <= 1:
            raise ValueError(f"participation must be in (0, 1], got {self.participation}")
        if self.min_child < 0:
            raise ValueError(f"min_child cannot be negative, got {fixed.to_str(self.min_child)}")
        check_positive("max_child", self.max_child)
        check_positive("limit_price", self.limit_price)
        if self.min_interval < 0:
            raise ValueError("min_interval cannot be negative")
        if self.max_child is not None and self.max_child < self.min_child:
            raise ValueError("max_child is below min_child")


class PovAlgo(Algorithm[PovParams]):
    name = "pov"
    params_type = PovParams

    def __init__(self, ctx: ParentContext, params: PovParams) -> None:
        super().__init__(ctx, params)
        ctx.check_price("limit_price", params.limit_price)
        for name, value in (("min_child", params.min_child), ("max_child", params.max_child)):
            if value:
                ctx.check_qty(name, value)
        if params.min_child > ctx.quantity:
            raise ValueError("min_child is above the parent quantity")
        self._rate = round(params.participation * _PPB)
        self.observed = 0  # market volume since the parent started
        self._last_child: int | None = None

    def on_trade(self, tick: TradeTick) -> None:
        self.observed += tick.size
        self._step()

    def on_bar(self, bar: Bar) -> None:
        self.observed += bar.volume
        self._step()

    def _step(self) -> None:
        ctx, p = self.ctx, self.params
        target = min(ctx.quantity, self.observed * self._rate // _PPB)
        deficit = ctx.snap_qty(target - ctx.filled - ctx.working())
        available = ctx.available()
        smallest = max(p.min_child, ctx.min_child(p.limit_price))
        if deficit <= 0 or (deficit < smallest and deficit < available):
            return
        last = self._last_child
        if last is not None and ctx.now() - last < p.min_interval and deficit < available:
            return  # too soon: merged into the next child
        qty = deficit if p.max_child is None else min(deficit, p.max_child)
        if p.limit_price is None:
            sent = ctx.submit(qty, OrderType.MARKET)
        else:
            sent = ctx.submit(qty, OrderType.LIMIT, price=p.limit_price)
        if sent is not None:
            self._last_child = ctx.now()
