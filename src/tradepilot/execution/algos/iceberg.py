"""``iceberg``: show only a clip of the parent; a new clip follows each filled one.

The clip is ``visible_qty``, or ``visible_pct`` percent of the parent, floored to the
lot and never below ``min_visible``. Each clip is a limit at ``limit_price`` or, without
one, at the near touch when the clip is sent, moved ``offset_ticks`` towards the
market. A clip that fills completely is followed by the next; the last clip is what is
left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradepilot.execution.algos.base import (
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
    from tradepilot.execution.parent_context import ParentContext


@dataclass(frozen=True, kw_only=True)
class IcebergParams(AlgoParams):
    visible_qty: int | None = field(default=None, metadata=FIXED)
    visible_pct: float | None = None
    min_visible: int = field(default=0, metadata=FIXED)
    limit_price: int | None = field(default=None, metadata=FIXED)
    offset_ticks: int = 0
    post_only: bool = False

    def check(self) -> None:
        if (self.visible_qty is None) == (self.visible_pct is None):
            raise ValueError("give exactly one of visible_qty and visible_pct")
        check_positive("visible_qty", self.visible_qty)
        if self.visible_pct is not None and not 0 < self.visible_pct <= 100:
            raise ValueError(f"visible_pct must be in (0, 100], got {self.visible_pct}")
        if self.min_visible < 0:
            raise ValueError(
                f"min_visible cannot be negative, got {fixed.to_str(self.min_visible)}"
            )
        if self.visible_qty is not None and self.visible_qty < self.min_visible:
            raise ValueError("visible_qty is below min_visible")
        check_positive("limit_price", self.limit_price)
        if self.limit_price is not None and self.offset_ticks:
            raise ValueError("offset_ticks applies only without a limit_price")


class IcebergAlgo(Algorithm[IcebergParams]):
    name = "iceberg"
    params_type = IcebergParams

    def __init__(self, ctx: ParentContext, params: IcebergParams) -> None:
        super().__init__(ctx, params)
        total = ctx.quantity
        ctx.check_price("limit_price", params.limit_price)
        if params.visible_qty is not None:
            ctx.check_qty("visible_qty", params.visible_qty)
            if params.visible_qty > total:
                raise ValueError(
                    f"visible quantity {fixed.to_str(params.visible_qty)} is above the total "
                    f"{fixed.to_str(total)}"
                )
            clip = params.visible_qty
        else:
            assert params.visible_pct is not None
            clip = ctx.snap_qty(round(total * params.visible_pct / 100))
        if params.min_visible > total:
            raise ValueError(
                f"min_visible {fixed.to_str(params.min_visible)} is above the total "
                f"{fixed.to_str(total)}"
            )
        inst = ctx.instrument
        self.clip = max(clip, params.min_visible, inst.lot_size, inst.min_qty)
        self.clip = min(ctx.snap_qty(self.clip) or inst.lot_size, total)

    def on_start(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        ctx, p = self.ctx, self.params
        price = p.limit_price
        if price is None:
            touch = ctx.near_touch()
            price = None if touch is None else ctx.offset(touch, p.offset_ticks)
        if price is None:
            ctx.fail("no market price yet to place a clip")
            return
        ctx.submit(
            min(self.clip, ctx.available()), OrderType.LIMIT, price=price, post_only=p.post_only
        )

    def on_child_closed(self, order: Order, event: Event) -> None:
        if self.is_complete():
            return
        if order.status is OrderStatus.FILLED:
            if not self.ctx.open_children():
                self._refresh()
            return
        self.ctx.fail(child_failure(order, event))
