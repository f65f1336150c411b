"""Risk checks for modifies: a modify is checked like a new order with the new terms.

The order as it would be after the modify (:func:`modified_order`) is an order
for what it would leave working - the new quantity less what has already filled -
at the new price and trigger. It goes through every rule, the state gate and the
order-rate counters, exactly as a new order would, while the working order itself
is left out of the working orders and of the balance it holds back (its old terms
are what the modify replaces, so they must not be counted twice).
"""

from __future__ import annotations

from tradepilot.model.order import Order
from tradepilot.model.order_factory import amended_order
from tradepilot.risk.engine import Denial, RiskEngine


def modified_order(
    order: Order,
    now: int,
    quantity: int | None,
    price: int | None,
    trigger_price: int | None,
) -> Order:
    """The working order with the modify's terms (None keeps a term), created at ``now``."""
    return amended_order(order, now, quantity, price, trigger_price)


def check_modify(risk: RiskEngine, proposed: Order) -> Denial | None:
    """Check a modify's new terms; the order they replace is left out of the view.

    A view with ``exclude_order(client_order_id | None)`` (as
    :class:`~tradepilot.risk.view.EngineRiskView` has) stops counting the working
    order while the check runs; other views see it as they always do. New terms that
    leave nothing working (a quantity at or below the filled one) cannot add risk and
    are left to the venue, which refuses them with its own reason.
    """
    if proposed.quantity <= 0:
        return None
    exclude = getattr(risk.view, "exclude_order", None)
    if not callable(exclude):
        return risk.check(proposed)
    exclude(proposed.client_order_id)
    try:
        return risk.check(proposed)
    finally:
        exclude(None)
