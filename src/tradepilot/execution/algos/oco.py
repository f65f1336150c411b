"""``oco``: one-cancels-other exit - a stop-loss and a take-profit for the parent's quantity.

Only one leg rests at the venue (``resting_leg``: a ``STOP_MARKET`` for the
stop-loss, a ``LIMIT`` for the take-profit); the other is watched by the algorithm on
every market update (bar low/high, trade price, or the touch a taker on the exit side
would get). Two resting legs would each hold (and on a cash account lock) the full
quantity, so both could fill; one resting leg never over-sells.

* The resting leg fills: the parent is done; the watched leg just stops being watched.
* The watched level is reached: the resting leg is cancelled and, once the venue
  confirmed it, the remainder is sent at market.
* The resting leg is cancelled or expires by someone else: the parent ends CANCELLED
  (the watched leg is dropped with it); refused: FAILED.

A trailing stop (``trailing_offset``) follows the best price seen since the legs were
armed at that distance; it only ever tightens, by at least ``trail_step_ticks``. A
resting stop is re-priced with a modify; a watched one just moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tradepilot.execution.algos.base import (
    FIXED,
    AlgoParams,
    Algorithm,
    ParentStatus,
    check_choice,
    check_positive,
    child_failure,
    event_reason,
)
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.enums import OrderSide, OrderStatus, OrderType
from tradepilot.model.events import Event
from tradepilot.model.order import Order

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext

LEGS = ("stop_loss", "take_profit")


@dataclass(frozen=True, kw_only=True)
class OcoParams(AlgoParams):
    stop_loss: int | None = field(default=None, metadata=FIXED)
    take_profit: int | None = field(default=None, metadata=FIXED)
    trailing_offset: int | None = field(default=None, metadata=FIXED)
    trail_step_ticks: int = 1
    resting_leg: str = "stop_loss"

    def check(self) -> None:
        if self.stop_loss is None and self.take_profit is None and self.trailing_offset is None:
            raise ValueError("give a stop_loss, a take_profit or a trailing_offset")
        check_positive("stop_loss", self.stop_loss)
        check_positive("take_profit", self.take_profit)
        check_positive("trailing_offset", self.trailing_offset)
        check_choice("resting_leg", self.resting_leg, LEGS)
        if self.trail_step_ticks < 1:
            raise ValueError(f"trail_step_ticks must be at least 1, got {self.trail_step_ticks}")


def check_levels(ctx: ParentContext, exit_side: OrderSide, p: OcoParams, ref: int | None) -> None:
    """Prices on the tick, stop and take-profit on the right sides of each other and of ``ref``."""
    ctx.check_price("stop_loss", p.stop_loss)
    ctx.check_price("take_profit", p.take_profit)
    if p.trailing_offset is not None and p.trailing_offset % ctx.instrument.tick_size:
        raise ValueError("trailing_offset must be a multiple of the tick")
    selling = exit_side is OrderSide.SELL
    below, above = ("stop_loss", "take_profit") if selling else ("take_profit", "stop_loss")
    stop, tp = p.stop_loss, p.take_profit
    if stop is not None and tp is not None and ((stop >= tp) if selling else (stop <= tp)):
        raise ValueError(f"a {exit_side.name.lower()} exit needs {below} below {above}")
    if ref is None:
        return
    at = fixed.to_str(ref)
    if p.stop_loss is not None and ((ref <= p.stop_loss) if selling else (ref >= p.stop_loss)):
        raise ValueError(f"stop_loss {fixed.to_str(p.stop_loss)} is already reached at {at}")
    if p.take_profit is not None and (
        (ref >= p.take_profit) if selling else (ref <= p.take_profit)
    ):
        raise ValueError(f"take_profit {fixed.to_str(p.take_profit)} is already reached at {at}")


class ExitLegs:
    """A stop-loss and a take-profit on ``side`` for what the parent may exit."""

    def __init__(self, ctx: ParentContext, side: OrderSide, params: OcoParams) -> None:
        self.ctx = ctx
        self.side = side
        self.params = params
        self.stop = params.stop_loss
        self.take_profit = params.take_profit
        self.resting = params.resting_leg
        self.extreme: int | None = None  # best price for the exit since armed (trailing)
        self.armed = False
        self.fired: str | None = None  # the watched leg that triggered
        self._market_sent = False

    @property
    def watched(self) -> str:
        return "take_profit" if self.resting == "stop_loss" else "stop_loss"

    def arm(self) -> None:
        ctx, p = self.ctx, self.params
        selling = self.side is OrderSide.SELL
        ref = ctx.far_touch(self.side)
        if p.trailing_offset is not None and ref is not None:
            self.extreme = ref
            trail = ctx.snap_price(ref - p.trailing_offset if selling else ref + p.trailing_offset)
            if self.stop is None:
                self.stop = trail
            else:
                self.stop = max(self.stop, trail) if selling else min(self.stop, trail)
        if self.resting == "stop_loss" and self.stop is None:
            self.resting = "take_profit"
        elif self.resting == "take_profit" and self.take_profit is None:
            self.resting = "stop_loss"
        self.armed = True
        qty = ctx.available(self.side)
        if self.resting == "stop_loss" and self.stop is not None:
            ctx.submit(
                qty,
                OrderType.STOP_MARKET,
                trigger_price=self.stop,
                side=self.side,
                tags="stop_loss",
            )
        elif self.take_profit is not None:
            ctx.submit(
                qty, OrderType.LIMIT, price=self.take_profit, side=self.side, tags="take_profit"
            )
        else:
            ctx.fail("no stop-loss level: no market price yet to trail from")

    def on_prices(self, low: int, high: int) -> None:
        """The market traded (or could be traded by the exit) between ``low`` and ``high``."""
        if not self.armed or self.fired is not None:
            return
        selling = self.side is OrderSide.SELL
        stop, tp = self.stop, self.take_profit
        stop_hit = stop is not None and (low <= stop if selling else high >= stop)
        tp_hit = tp is not None and (high >= tp if selling else low <= tp)
        if self.watched == "stop_loss" and stop_hit:
            self.fire("stop_loss")
        elif self.watched == "take_profit" and tp_hit:
            self.fire("take_profit")
        elif self.params.trailing_offset is not None:
            self._trail(high if selling else low)

    def _trail(self, best: int) -> None:
        ctx, p = self.ctx, self.params
        selling = self.side is OrderSide.SELL
        assert p.trailing_offset is not None
        if self.extreme is None or (best > self.extreme if selling else best < self.extreme):
            self.extreme = best
            new = ctx.snap_price(best - p.trailing_offset if selling else best + p.trailing_offset)
            step = p.trail_step_ticks * ctx.instrument.tick_size
            if self.stop is None or ((new - self.stop) if selling else (self.stop - new)) >= step:
                self.stop = new
        if self.resting == "stop_loss":
            for order in ctx.open_children(self.side):
                if order.order_type is OrderType.STOP_MARKET and order.trigger_price != self.stop:
                    ctx.modify(order, trigger_price=self.stop)

    def fire(self, leg: str) -> None:
        ctx = self.ctx
        self.fired = leg
        ctx.reason = f"{leg} reached"
        resting = ctx.open_children(self.side)
        for order in resting:
            ctx.cancel(order, f"{leg} reached")
        if not resting:
            self._exit_at_market()

    def _exit_at_market(self) -> None:
        self._market_sent = True
        self.ctx.submit(
            self.ctx.available(self.side),
            OrderType.MARKET,
            side=self.side,
            tags=f"{self.fired}:market",
        )

    def on_child_closed(self, order: Order, event: Event) -> None:
        ctx = self.ctx
        if order.side is not self.side:
            return
        if order.status in (OrderStatus.DENIED, OrderStatus.REJECTED):
            ctx.fail(child_failure(order, event))
            return
        if self.fired is not None:
            if ctx.open_children(self.side) or ctx.available(self.side) == 0:
                return
            if self._market_sent:
                ctx.fail(child_failure(order, event))
            else:
                self._exit_at_market()
            return
        if order.status is OrderStatus.FILLED:
            ctx.reason = f"{order.tags} filled"
        elif not ctx.open_children(self.side):
            ctx.finish(
                ParentStatus.CANCELLED,
                f"{order.tags} leg {order.status.value.lower()} ({event_reason(event)}); "
                f"the other leg is cancelled with it",
            )


class OcoAlgo(Algorithm[OcoParams]):
    name = "oco"
    params_type = OcoParams

    def __init__(self, ctx: ParentContext, params: OcoParams) -> None:
        super().__init__(ctx, params)
        check_levels(ctx, ctx.side, params, ctx.far_touch(ctx.side))
        self.legs = ExitLegs(ctx, ctx.side, params)

    def on_start(self) -> None:
        self.legs.arm()

    def on_bar(self, bar: Bar) -> None:
        self.legs.on_prices(bar.low, bar.high)

    def on_trade(self, tick: TradeTick) -> None:
        self.legs.on_prices(tick.price, tick.price)

    def on_market(self) -> None:
        px = self.ctx.far_touch(self.legs.side)
        if px is not None:
            self.legs.on_prices(px, px)

    def on_child_closed(self, order: Order, event: Event) -> None:
        self.legs.on_child_closed(order, event)
