"""The one place an order is created: every ``OrderInitialized`` comes from here.

:func:`new_order` takes the order's terms as typed values (enums, raw fixed-point
ints) and fills in the defaults (market, GTC, no flags); :func:`closing_order` is the
reduce-only market order that closes a position (flatten, emergency stop);
:func:`amended_order` is a working order with a modify's new terms, as the risk
engine checks it. Ids come from the caller (the order manager's id registry).
"""

from __future__ import annotations

from tradepilot.model.enums import OrderSide, OrderType, TimeInForce
from tradepilot.model.events import OrderInitialized
from tradepilot.model.order import Order

__all__ = ["amended_order", "closing_order", "new_order"]


def new_order(
    ts: int,
    client_order_id: str,
    instrument_id: str,
    strategy_id: str,
    side: OrderSide | int,
    quantity: int,
    order_type: OrderType = OrderType.MARKET,
    price: int | None = None,
    trigger_price: int | None = None,
    time_in_force: TimeInForce = TimeInForce.GTC,
    expire_ts: int | None = None,
    post_only: bool = False,
    reduce_only: bool = False,
    parent_id: str | None = None,
    tags: str = "",
) -> OrderInitialized:
    """An order as created (raw fixed-point quantity and prices)."""
    return OrderInitialized(
        ts=ts,
        client_order_id=client_order_id,
        instrument_id=instrument_id,
        strategy_id=strategy_id,
        side=int(side),
        order_type=order_type.value,
        quantity=quantity,
        price=price,
        trigger_price=trigger_price,
        time_in_force=time_in_force.value,
        expire_ts=expire_ts,
        post_only=post_only,
        reduce_only=reduce_only,
        parent_id=parent_id,
        tags=tags,
    )


def closing_order(
    ts: int,
    client_order_id: str,
    instrument_id: str,
    strategy_id: str,
    position_qty: int,
    tags: str,
) -> OrderInitialized:
    """A reduce-only market order that closes a position of ``position_qty`` (signed)."""
    return new_order(
        ts,
        client_order_id,
        instrument_id,
        strategy_id,
        OrderSide.SELL if position_qty > 0 else OrderSide.BUY,
        abs(position_qty),
        reduce_only=True,
        tags=tags,
    )


def amended_order(
    order: Order, ts: int, quantity: int | None, price: int | None, trigger_price: int | None
) -> Order:
    """The working order with a modify's terms (None keeps a term), created at ``ts``;
    its quantity is what would be left to fill."""
    total = order.quantity if quantity is None else quantity
    return Order(
        new_order(
            ts,
            order.client_order_id,
            order.instrument_id,
            order.strategy_id,
            order.side,
            total - order.filled_qty,
            order.order_type,
            order.price if price is None else price,
            order.trigger_price if trigger_price is None else trigger_price,
            order.time_in_force,
            order.expire_ts,
            order.post_only,
            order.reduce_only,
            order.parent_id,
            order.tags,
        )
    )
