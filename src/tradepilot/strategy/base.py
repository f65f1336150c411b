"""The strategy API.

Subclass :class:`Strategy`, override the callbacks you need, and trade with the
helpers. A strategy never learns which mode it runs in: the same object runs in
backtest, paper and live, because everything it touches (time, data, orders,
positions) comes through the trading context it is attached to.

Quantities and prices given to the helpers are human numbers (``Decimal``,
``str``, ``int`` or ``float``); they are snapped to the instrument's lot and tick
at this boundary. What the engine hands back (bars, fills, positions) is raw
fixed-point, readable with :mod:`tradepilot.model.fixed`.
"""

from __future__ import annotations

from decimal import Decimal

from tradepilot.execution.algo_engine import AlgoEngine
from tradepilot.execution.context import Component
from tradepilot.model.enums import OrderSide, OrderType, TimeInForce
from tradepilot.model.events import OrderInitialized
from tradepilot.model.instrument import InvalidInput
from tradepilot.model.order import Order
from tradepilot.model.order_factory import new_order
from tradepilot.model.position import Position

Number = Decimal | str | int | float


class Strategy(Component):
    """Base class for strategies. ``strategy_id`` names its orders and journal entries.

    A strategy is a :class:`~tradepilot.execution.context.Component`: the kernel
    attaches it to a :class:`~tradepilot.execution.context.TradingContext` (``self.context``)
    and calls ``on_start``, ``on_bar``, ``on_trade``, ``on_quote``, ``on_book``,
    ``on_order_event``, ``on_fill``, ``on_timer``, ``on_flatten`` and ``on_stop``.
    ``algos`` is the algorithm host :meth:`execute` hands parent orders to, if one is wired.
    """

    algos: AlgoEngine | None = None

    def companions(self) -> list[Component]:
        """Components this one needs run next to it (before it), e.g. its algorithm host."""
        return []

    # -- time and state --------------------------------------------------------------------
    def now(self) -> int:
        return self.context.clock.now()

    def position(self, instrument_id: str) -> Position | None:
        return self.context.portfolio.positions.get(instrument_id)

    def position_qty(self, instrument_id: str) -> int:
        return self.context.portfolio.position_qty(instrument_id)

    def balance(self, currency: str) -> int:
        return self.context.portfolio.balance(currency)

    def free_balance(self, currency: str) -> int:
        return self.context.portfolio.free(currency)

    def equity(self) -> int:
        return self.context.portfolio.equity()

    def open_orders(self, instrument_id: str | None = None) -> list[Order]:
        return [
            o
            for o in self.context.orders.open_orders(instrument_id)
            if o.strategy_id == self.strategy_id
        ]

    def last_price(self, instrument_id: str) -> int | None:
        return self.context.portfolio.last_price(instrument_id)

    def set_timer(self, name: str, interval_ns: int, start_ns: int | None = None) -> None:
        self.context.set_timer(self, name, interval_ns, start_ns)

    def cancel_timer(self, name: str) -> None:
        self.context.cancel_timer(self, name)

    # -- trading -------------------------------------------------------------------------
    def submit(
        self,
        instrument_id: str,
        side: OrderSide,
        quantity: Number,
        order_type: OrderType = OrderType.MARKET,
        price: Number | None = None,
        trigger_price: Number | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        expire_ts: int | None = None,
        post_only: bool = False,
        reduce_only: bool = False,
        tags: str = "",
    ) -> Order:
        """Create an order and send it through the risk engine to the venue.

        Bad input (unknown instrument, NaN, zero, negative or sub-lot values) does
        not raise: the order is DENIED with a reason, and nothing else changes.
        """
        engine = self.context
        cid = engine.orders.next_id(self.strategy_id)
        inst = engine.instruments.get(instrument_id)
        qty_raw = 0
        px_raw: int | None = None
        trig_raw: int | None = None
        problem = None if inst is not None else f"unknown instrument {instrument_id}"
        if inst is not None:
            try:
                qty_raw = inst.quantity(quantity)
                px_raw = inst.price(price) if price is not None else None
                trig_raw = inst.price(trigger_price) if trigger_price is not None else None
            except (InvalidInput, ValueError) as exc:
                problem = str(exc)
        init = new_order(
            engine.clock.now(),
            cid,
            instrument_id,
            self.strategy_id,
            side,
            qty_raw,
            order_type,
            px_raw,
            trig_raw,
            time_in_force,
            expire_ts,
            post_only,
            reduce_only,
            tags=tags,
        )
        if problem is not None:
            return engine.orders.deny(init, "INVALID_INPUT", problem)
        return engine.orders.submit(init)

    def buy(self, instrument_id: str, quantity: Number, **kwargs: object) -> Order:
        return self.submit(instrument_id, OrderSide.BUY, quantity, **kwargs)  # type: ignore[arg-type]

    def sell(self, instrument_id: str, quantity: Number, **kwargs: object) -> Order:
        return self.submit(instrument_id, OrderSide.SELL, quantity, **kwargs)  # type: ignore[arg-type]

    def execute(
        self,
        instrument_id: str,
        side: OrderSide | int,
        quantity: Number,
        algo: str,
        params: object = None,
        urgency: str = "normal",
    ) -> str:
        """Work an order with an execution algorithm (``twap``, ``bracket``, ...); returns
        the parent id. Its children pass the risk engine like any order; their fills arrive
        in :meth:`on_fill`. Needs :attr:`algos`, the engine's
        :class:`~tradepilot.execution.algo_engine.AlgoEngine` (configuration runs wire it).
        A bad name or parameter raises ValueError before anything is recorded or sent.
        """
        if self.algos is None:
            raise ValueError(f"no algorithm host (AlgoEngine) is wired to {self.strategy_id}")
        return self.algos.submit_parent(
            instrument_id, side, quantity, algo, params, urgency, strategy_id=self.strategy_id
        )

    def submit_raw(self, init: OrderInitialized) -> Order:
        """Send a fully specified order (raw fixed-point values); used by algorithms."""
        return self.context.orders.submit(init)

    def cancel(self, client_order_id: str) -> None:
        self.context.orders.cancel(client_order_id)

    def modify(
        self,
        client_order_id: str,
        quantity: Number | None = None,
        price: Number | None = None,
        trigger_price: Number | None = None,
    ) -> None:
        order = self.context.orders.orders.get(client_order_id)
        inst = self.context.instruments.get(order.instrument_id) if order else None
        if order is None or inst is None:
            self.context.orders.modify(client_order_id)
            return
        self.context.orders.modify(
            client_order_id,
            inst.quantity(quantity) if quantity is not None else None,
            inst.price(price) if price is not None else None,
            inst.price(trigger_price) if trigger_price is not None else None,
        )

    def cancel_all(self, instrument_id: str | None = None) -> None:
        for order in self.open_orders(instrument_id):
            self.context.orders.cancel(order.client_order_id)
