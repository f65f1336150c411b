"""``auto``: pick an algorithm from the order's size against the market, and its urgency.

Liquidity is measured when the parent starts:

* ``depth``: book size on the far side within ``depth_bps`` of the touch (L2 data);
* ``expected``: the volume traded over the last ``lookback``, scaled to ``duration``.

The order is *small* if it is at most ``small_depth_fraction`` of the depth (with a
book) or ``small_volume_fraction`` of the expected volume (without); it *fits* the
duration if it is at most ``max_participation`` of the expected volume.

* urgency ``high``: small - ``market``; otherwise ``pov`` at ``high_participation``;
* urgency ``normal``: small - ``chaser`` (pegged to the best bid/ask); fits - ``twap``
  over ``duration`` with market slices; larger - ``pov`` at ``max_participation``;
* urgency ``low``: small - ``chaser``; fits - ``twap`` over ``duration`` with limit
  slices; larger - ``pov`` at ``low_participation``.

POV children are at least 5 % of the parent. With no volume and no book seen yet:
``high`` goes at market, otherwise TWAP.
The choice, its reason and the chosen parameters are recorded in
``ParentOrderStarted.params``; the chosen algorithm then runs as the parent's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradepilot.execution.algos.base import (
    DURATION,
    AlgoParams,
    Algorithm,
    params_to_dict,
)
from tradepilot.execution.algos.chaser import ChaserAlgo, ChaserParams
from tradepilot.execution.algos.market import MarketAlgo, MarketParams
from tradepilot.execution.algos.pov import PovAlgo, PovParams
from tradepilot.execution.algos.twap import TwapAlgo, TwapParams
from tradepilot.model import fixed
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.events import Event, OrderFilled
from tradepilot.model.order import Order

if TYPE_CHECKING:
    from tradepilot.execution.parent_context import ParentContext


@dataclass(frozen=True, kw_only=True)
class AutoParams(AlgoParams):
    duration: int = field(default=300 * 10**9, metadata=DURATION)
    lookback: int = field(default=300 * 10**9, metadata=DURATION)
    depth_bps: float = 10.0
    small_depth_fraction: float = 0.25
    small_volume_fraction: float = 0.01
    max_participation: float = 0.1
    high_participation: float = 0.25
    low_participation: float = 0.05

    def check(self) -> None:
        if self.duration <= 0 or self.lookback <= 0:
            raise ValueError("duration and lookback must be positive")
        if self.depth_bps <= 0:
            raise ValueError(f"depth_bps must be positive, got {self.depth_bps}")
        for name in (
            "small_depth_fraction",
            "small_volume_fraction",
            "max_participation",
            "high_participation",
            "low_participation",
        ):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value}")


@dataclass(frozen=True, slots=True)
class Choice:
    algorithm: str
    params: AlgoParams
    reason: str


def choose(ctx: ParentContext, p: AutoParams) -> Choice:
    """The algorithm for this parent now (see the module docstring)."""
    qty = ctx.quantity
    m = ctx.market
    depth = m.depth(int(ctx.side), p.depth_bps)
    recent = m.recent_volume(ctx.now(), p.lookback)
    expected = recent * p.duration // p.lookback
    twap_market = TwapParams(duration=p.duration)
    min_child = ctx.snap_qty(qty // 20)  # POV children of at least 5 % of the parent
    urgency = ctx.urgency
    if not depth and not expected:
        if urgency == "high":
            return Choice("market", MarketParams(), "no liquidity seen yet, urgency high")
        return Choice("twap", twap_market, "no liquidity seen yet")
    if depth:
        small = qty <= depth * p.small_depth_fraction
        measure = f"{_pct(qty, depth)} of the depth within {p.depth_bps:g} bps"
    else:
        small = qty <= expected * p.small_volume_fraction
        measure = f"{_pct(qty, expected)} of the expected volume"
    fits = bool(expected) and qty <= expected * p.max_participation
    size = "small" if small else ("fits the duration" if fits else "large")
    why = f"urgency {urgency}, {fixed.to_str(qty)} is {measure}: {size}"
    if urgency == "high":
        if small:
            return Choice("market", MarketParams(), why)
        return Choice(
            "pov", PovParams(participation=p.high_participation, min_child=min_child), why
        )
    if small:
        return Choice("chaser", ChaserParams(), why)
    if fits:
        if urgency == "low":
            return Choice("twap", TwapParams(duration=p.duration, order_type="limit"), why)
        return Choice("twap", twap_market, why)
    rate = p.max_participation if urgency == "normal" else p.low_participation
    return Choice("pov", PovParams(participation=rate, min_child=min_child), why)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.3g}%"


_CHOICES: dict[str, type[Algorithm[Any]]] = {
    "market": MarketAlgo,
    "chaser": ChaserAlgo,
    "twap": TwapAlgo,
    "pov": PovAlgo,
}


class AutoAlgo(Algorithm[AutoParams]):
    """Chooses when constructed, then forwards every hook to the chosen algorithm."""

    name = "auto"
    params_type = AutoParams

    def __init__(self, ctx: ParentContext, params: AutoParams) -> None:
        super().__init__(ctx, params)
        self.choice = choose(ctx, params)
        self.inner: Algorithm[Any] = _CHOICES[self.choice.algorithm](ctx, self.choice.params)

    def describe(self) -> dict[str, Any]:
        return {
            "auto": params_to_dict(self.params),
            "selected": self.choice.algorithm,
            "reason": self.choice.reason,
            "params": self.inner.describe(),
        }

    def on_start(self) -> None:
        self.inner.on_start()

    def on_bar(self, bar: Bar) -> None:
        self.inner.on_bar(bar)

    def on_trade(self, tick: TradeTick) -> None:
        self.inner.on_trade(tick)

    def on_quote(self, quote: QuoteTick) -> None:
        self.inner.on_quote(quote)

    def on_book(self, update: BookSnapshot | BookDeltas) -> None:
        self.inner.on_book(update)

    def on_timer(self, name: str) -> None:
        self.inner.on_timer(name)

    def on_fill(self, order: Order, fill: OrderFilled) -> None:
        self.inner.on_fill(order, fill)

    def on_order_event(self, order: Order, event: Event) -> None:
        self.inner.on_order_event(order, event)

    def on_child_closed(self, order: Order, event: Event) -> None:
        self.inner.on_child_closed(order, event)

    def is_complete(self) -> bool:
        return self.inner.is_complete()

    def progress(self) -> str:
        return self.inner.progress()
