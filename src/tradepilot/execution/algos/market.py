"""``market``: the whole parent at once, as one market order."""

from __future__ import annotations

from dataclasses import dataclass

from tradepilot.execution.algos.base import AlgoParams, Algorithm, child_failure
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.events import Event
from tradepilot.model.order import Order


@dataclass(frozen=True, kw_only=True)
class MarketParams(AlgoParams):
    """``max_retries``: how often a remainder the venue cancelled (not enough liquidity,
    not enough balance at the fill price) is sent again - at the next market-data
    update, when the book may have refilled - before the parent fails."""

    max_retries: int = 0

    def check(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries cannot be negative, got {self.max_retries}")


class MarketAlgo(Algorithm[MarketParams]):
    name = "market"
    params_type = MarketParams

    def on_start(self) -> None:
        self.retries = 0
        self._retry_due = False
        self._send()

    def _send(self) -> None:
        ctx = self.ctx
        if ctx.submit(ctx.available(), OrderType.MARKET) is None and not ctx.open_children():
            ctx.fail("nothing left to send")

    def on_market(self) -> None:
        if self._retry_due and not self.ctx.open_children():
            self._retry_due = False
            self.retries += 1
            self._send()

    def on_child_closed(self, order: Order, event: Event) -> None:
        ctx = self.ctx
        if order.status is OrderStatus.FILLED or ctx.open_children() or self.is_complete():
            return
        retry = order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED)
        if retry and self.retries < self.params.max_retries:
            self._retry_due = True
            return
        ctx.fail(child_failure(order, event))
