"""Scheduled slicing shared by TWAP and VWAP.

The parent's duration is cut into slices at times ``t_0 = start, t_1, ...``; slice
``i`` covers ``[t_i, t_i+1)`` and gets a weight (its length for TWAP, its share of the
historical volume for VWAP). Weights, optionally randomised, give cumulative targets
that end at the full quantity. At each slice time a child is sent:

* with ``catch_up`` (default): the target so far minus what is filled and working -
  a slice that did not fill is made up by the next one;
* without: the slice's own share only; what did not fill waits for the end.

A slice due before any price was seen rolls into the next one. Limit slices rest at
the near touch moved ``limit_offset_ticks`` towards the market (positive: more
aggressive); a limit still working at the next slice is cancelled first and its
remainder re-planned. At the end, working limits are cancelled and, with
``finish_with_market`` (default), whatever is left goes at market; otherwise the
parent fails with the remainder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from tradepilot.core.time import NS_PER_MINUTE
from tradepilot.execution.algos.base import (
    DURATION,
    FIXED,
    SLICE_ORDER_TYPES,
    AlgoParams,
    Algorithm,
    check_choice,
    check_fraction,
    child_failure,
)
from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.events import Event
from tradepilot.model.order import Order

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext

_WEIGHT_SCALE = 10**12


@dataclass(frozen=True, kw_only=True)
class ScheduleParams(AlgoParams):
    """Slicing options shared by TWAP and VWAP (see the module docstring).

    ``duration`` (ns) and either ``slices`` or ``interval`` (ns; neither: one-minute
    slices, or one slice if the duration is shorter).
    """

    duration: int = field(metadata=DURATION)
    slices: int | None = None
    interval: int | None = field(default=None, metadata=DURATION)
    order_type: str = "market"
    limit_offset_ticks: int = 0
    randomize_size: float = 0.0
    randomize_time: float = 0.0
    seed: int | None = None
    catch_up: bool = True
    finish_with_market: bool = True
    min_slice: int = field(default=0, metadata=FIXED)

    def check(self) -> None:
        if self.duration <= 0:
            raise ValueError(f"duration must be positive, got {self.duration} ns")
        if self.slices is not None and self.interval is not None:
            raise ValueError("give slices or interval, not both")
        if self.slices is not None and not 1 <= self.slices <= self.duration:
            raise ValueError(f"slices must be between 1 and the duration in ns, got {self.slices}")
        if self.interval is not None and not 0 < self.interval <= self.duration:
            raise ValueError(
                f"interval must be positive and at most the duration, got {self.interval} ns"
            )
        check_choice("order_type", self.order_type, SLICE_ORDER_TYPES)
        check_fraction("randomize_size", self.randomize_size)
        check_fraction("randomize_time", self.randomize_time)
        if self.min_slice < 0:
            raise ValueError(f"min_slice cannot be negative, got {fixed.to_str(self.min_slice)}")

    def step(self) -> int:
        """Nominal time between slices (ns)."""
        if self.slices is not None:
            return self.duration // self.slices
        if self.interval is not None:
            return self.interval
        return min(NS_PER_MINUTE, self.duration)

    def slice_count(self) -> int:
        if self.slices is not None:
            return self.slices
        return -(-self.duration // self.step())


SP = TypeVar("SP", bound=ScheduleParams)


class ScheduledAlgo(Algorithm[SP]):
    """Base of TWAP and VWAP: override :meth:`window_weights`."""

    def __init__(self, ctx: ParentContext, params: SP) -> None:
        super().__init__(ctx, params)
        if params.min_slice and params.min_slice > ctx.quantity:
            raise ValueError("min_slice is above the parent quantity")
        self.times: list[int] = []
        self.targets: list[int] = []
        self.end = 0
        self._next = 0
        self._target = 0
        self._nominal = 0
        self._waiting = False  # a send waits for working limit children to close
        self._ended = False
        self._final_sent = False

    def window_weights(self, windows: list[tuple[int, int]]) -> list[float]:
        """Relative weight of each slice window ``[start, end)`` (ns)."""
        return [float(b - a) for a, b in windows]

    # -- the plan ------------------------------------------------------------------------
    def plan(self, start: int) -> None:
        """Slice times and cumulative targets from ``start``."""
        ctx, p = self.ctx, self.params
        end = start + p.duration
        n, step = p.slice_count(), p.step()
        rng = ctx.random(p.seed)
        times: list[int] = []
        for i in range(n):
            t = start + i * step
            if i and p.randomize_time:
                t += round(rng.uniform(-1.0, 1.0) * p.randomize_time * step / 2)
            t = max(t, times[-1] + 1 if times else start)
            times.append(min(t, end - 1) if i else start)
        windows = list(zip(times, [*times[1:], end], strict=True))
        weights = [max(0.0, w) for w in self.window_weights(windows)]
        if p.randomize_size:
            weights = [w * (1 + rng.uniform(-p.randomize_size, p.randomize_size)) for w in weights]
        total = sum(weights)
        if total <= 0:
            weights, total = [1.0] * n, float(n)
        ints = [round(w / total * _WEIGHT_SCALE) for w in weights]
        scale = sum(ints) or 1
        cum = 0
        targets: list[int] = []
        for w in ints:
            cum += w
            targets.append(ctx.snap_qty(ctx.quantity * cum // scale))
        targets[-1] = ctx.quantity
        self.times, self.targets = times, targets
        self.end = end

    # -- hooks ---------------------------------------------------------------------------------
    def on_start(self) -> None:
        self.plan(self.ctx.now())
        self.ctx.set_timer("end", self.end)
        self._slice()

    def on_timer(self, name: str) -> None:
        if name == "slice":
            self._slice()
        elif name == "end":
            self._end()

    def on_child_closed(self, order: Order, event: Event) -> None:
        ctx = self.ctx
        if order.status in (OrderStatus.DENIED, OrderStatus.REJECTED):
            ctx.fail(child_failure(order, event))
            return
        if ctx.open_children() or self.is_complete():
            return
        if self._waiting:
            self._waiting = False
            if self._ended:
                self._finish_remainder()
            else:
                self._send()
        elif self._final_sent:
            ctx.fail(child_failure(order, event))

    # -- slices ---------------------------------------------------------------------------------
    def _slice(self) -> None:
        if self._ended:
            return
        i = self._next
        self._next += 1
        if self._next < len(self.times):
            self.ctx.set_timer("slice", self.times[self._next])
        self._target = self.targets[i]
        self._nominal = self.targets[i] - (self.targets[i - 1] if i else 0)
        if self._cancel_limits():
            self._waiting = True
        else:
            self._send()

    def _cancel_limits(self) -> bool:
        limits = [o for o in self.ctx.open_children() if o.order_type is OrderType.LIMIT]
        for order in limits:
            self.ctx.cancel(order, "re-slice")
        return bool(limits)

    def _send(self) -> None:
        ctx, p = self.ctx, self.params
        available = ctx.available()
        if p.catch_up:
            qty = self._target - ctx.filled - ctx.working()
        else:
            qty = min(self._nominal, available)
        qty = ctx.snap_qty(min(qty, available))
        if qty <= 0:
            return
        if qty < available and (qty < p.min_slice or qty < ctx.instrument.min_qty):
            return  # too small on its own: it rolls into the next slice
        if ctx.market.reference_price() is None:
            return  # no price seen yet (the venue could not value it): it rolls forward
        if p.order_type == "limit":
            touch = ctx.near_touch()
            if touch is not None:
                price = ctx.offset(touch, p.limit_offset_ticks)
                ctx.submit(qty, OrderType.LIMIT, price=price)
                return
        ctx.submit(qty, OrderType.MARKET)

    def _end(self) -> None:
        self._ended = True
        if self.is_complete():
            return
        self._cancel_limits()
        if self.ctx.open_children():
            self._waiting = True
        else:
            self._finish_remainder()

    def _finish_remainder(self) -> None:
        ctx = self.ctx
        if self.is_complete():
            return
        if self.params.finish_with_market:
            self._final_sent = True
            ctx.submit(ctx.available(), OrderType.MARKET, tags=f"{self.name}:final")
        else:
            ctx.fail(f"duration ended with {fixed.to_str(ctx.remaining)} not filled")
