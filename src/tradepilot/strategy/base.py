"""The strategy API.

Subclass :class:`Strategy`, override the callbacks you need, and trade with the
helpers. A strategy never learns which mode it runs in: the same object runs in
backtest, paper and live, because everything it touches (time, data, orders,
positions) comes through the engine it is attached to.

Quantities and prices given to the helpers are human numbers (``Decimal``,
``str``, ``int`` or ``float``); they are snapped to the instrument's lot and tick
at this boundary. What the engine hands back (bars, fills, positions) is raw
fixed-point, readable with :mod:`tradepilot.model.fixed`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import OrderSide, OrderType, TimeInForce
from tradepilot.model.events import Event, OrderFilled, OrderInitialized
from tradepilot.model.instrument import InvalidInput
from tradepilot.model.order import Order
from tradepilot.model.position import Position

if TYPE_CHECKING:
    from tradepilot.engine.kernel import Engine

Number = Decimal | str | int | float


class Strategy:
    """Base class for strategies. ``strategy_id`` names its orders and journal entries."""

    strategy_id: str = "strategy"

    def __init__(self, strategy_id: str | None = None) -> None:
        if strategy_id is not None:
            self.strategy_id = strategy_id
        self._engine: Engine | None = None

    # -- wiring ------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError(f"strategy {self.strategy_id} is not attached to an engine")
        return self._engine

    # -- callbacks (override what you need) --------------------------------------------
    def on_start(self) -> None: ...

    def on_bar(self, bar: Bar) -> None: ...

    def on_trade(self, tick: TradeTick) -> None: ...

    def on_quote(self, quote: QuoteTick) -> None: ...

    def on_book(self, update: BookSnapshot | BookDeltas) -> None: ...

    def on_order_event(self, event: Event) -> None: ...

    def on_fill(self, fill: OrderFilled) -> None: ...

    def on_timer(self, name: str, ts: int) -> None: ...

    def on_stop(self) -> None: ...

    def on_flatten(self, reason: str) -> None:
        """The engine is closing every position (emergency stop, flatten on stop):
        stop trading; anything still working will be cancelled right after."""

    def status(self) -> dict[str, object]:
        """Extra fields for the paper session's cycle log (signal, confidence, ...)."""
        return {}

    # -- time and state --------------------------------------------------------------------
    def now(self) -> int:
        return self.engine.clock.now()

    def position(self, instrument_id: str) -> Position | None:
        return self.engine.portfolio.positions.get(instrument_id)

    def position_qty(self, instrument_id: str) -> int:
        return self.engine.portfolio.position_qty(instrument_id)

    def balance(self, currency: str) -> int:
        return self.engine.portfolio.account.balance(currency)

    def free_balance(self, currency: str) -> int:
        return self.engine.portfolio.free(currency)

    def equity(self) -> int:
        return self.engine.portfolio.equity()

    def open_orders(self, instrument_id: str | None = None) -> list[Order]:
        return [
            o
            for o in self.engine.orders.open_orders(instrument_id)
            if o.strategy_id == self.strategy_id
        ]

    def last_price(self, instrument_id: str) -> int | None:
        return self.engine.portfolio.last_price(instrument_id)

    def set_timer(self, name: str, interval_ns: int, start_ns: int | None = None) -> None:
        self.engine.set_timer(self, name, interval_ns, start_ns)

    def cancel_timer(self, name: str) -> None:
        self.engine.cancel_timer(self, name)

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
        engine = self.engine
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
        init = OrderInitialized(
            ts=engine.clock.now(),
            client_order_id=cid,
            instrument_id=instrument_id,
            strategy_id=self.strategy_id,
            side=int(side),
            order_type=order_type.value,
            quantity=qty_raw,
            price=px_raw,
            trigger_price=trig_raw,
            time_in_force=time_in_force.value,
            expire_ts=expire_ts,
            post_only=post_only,
            reduce_only=reduce_only,
            tags=tags,
        )
        if problem is not None:
            return engine.orders.deny(init, "INVALID_INPUT", problem)
        return engine.orders.submit(init)

    def buy(self, instrument_id: str, quantity: Number, **kwargs: object) -> Order:
        return self.submit(instrument_id, OrderSide.BUY, quantity, **kwargs)  # type: ignore[arg-type]

    def sell(self, instrument_id: str, quantity: Number, **kwargs: object) -> Order:
        return self.submit(instrument_id, OrderSide.SELL, quantity, **kwargs)  # type: ignore[arg-type]

    def submit_raw(self, init: OrderInitialized) -> Order:
        """Send a fully specified order (raw fixed-point values); used by algorithms."""
        return self.engine.orders.submit(init)

    def cancel(self, client_order_id: str) -> None:
        self.engine.orders.cancel(client_order_id)

    def modify(
        self,
        client_order_id: str,
        quantity: Number | None = None,
        price: Number | None = None,
        trigger_price: Number | None = None,
    ) -> None:
        order = self.engine.orders.orders.get(client_order_id)
        inst = self.engine.instruments.get(order.instrument_id) if order else None
        if order is None or inst is None:
            self.engine.orders.modify(client_order_id)
            return
        self.engine.orders.modify(
            client_order_id,
            inst.quantity(quantity) if quantity is not None else None,
            inst.price(price) if price is not None else None,
            inst.price(trigger_price) if trigger_price is not None else None,
        )

    def cancel_all(self, instrument_id: str | None = None) -> None:
        for order in self.open_orders(instrument_id):
            self.engine.orders.cancel(order.client_order_id)
