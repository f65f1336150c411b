"""The one locked-balance rule, used by the venue, the portfolio, the projection and the
risk view.

A buy holds back quote: its notional at its reference price plus the larger of the
maker and taker fee on it; in a CASH account a sell holds back the base it sells.
(The simulated venue of a MARGIN account locks nothing per order; the engine's views
still count a working buy against the free quote.) The reference price is the limit price
(stop-limit too), else the trigger price, else - a market order - the price the order
was valued at when it was sent (``Order.lock_px``), never revalued afterwards: the
venue locked it at arrival and keeps that amount until the order is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tradepilot.model import fixed
from tradepilot.model.enums import OrderStatus, OrderType
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order

__all__ = ["buy_lock", "locked_by", "reference_price"]

_PRICED = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_PENDING_CANCEL = OrderStatus.PENDING_CANCEL


def buy_lock(instrument: Instrument, qty: int, ref_px: int) -> int:
    """Quote a buy of ``qty`` at ``ref_px`` holds back: notional plus the larger fee."""
    notional = fixed.mul(ref_px, qty)
    return notional + fixed.bps_of(
        notional, max(instrument.taker_fee_bps, instrument.maker_fee_bps)
    )


def reference_price(
    order_type: OrderType, price: int | None, trigger: int | None, market_px: int | None
) -> int | None:
    """The price a buy's lock is valued at (see the module docstring)."""
    px = price if order_type in _PRICED else trigger
    return market_px if px is None else px


def locked_by(
    orders: Iterable[Order],
    instruments: Mapping[str, Instrument],
    currency: str,
    cash: bool,
    fallback_px: Mapping[str, int],
    *,
    skip_pending_cancel: bool = False,
) -> int:
    """What ``orders`` hold back of ``currency``.

    ``fallback_px`` values a market buy that carries no ``lock_px`` (one restored from a
    journal, which holds no market data). With ``skip_pending_cancel`` an order whose
    cancel has been sent holds nothing (the risk view: that cancel reaches the venue
    before any later order).
    """
    total = 0
    for order in orders:
        if skip_pending_cancel and order.status is _PENDING_CANCEL:
            continue
        inst = instruments.get(order.instrument_id)
        if inst is None:
            continue
        if order.side > 0:
            if inst.quote != currency:
                continue
            ref = reference_price(
                order.order_type,
                order.price,
                order.trigger_price,
                order.lock_px
                if order.lock_px is not None
                else fallback_px.get(order.instrument_id),
            )
            if ref:
                total += buy_lock(inst, order.leaves_qty, ref)
        elif cash and inst.base == currency:
            total += order.leaves_qty
    return total
