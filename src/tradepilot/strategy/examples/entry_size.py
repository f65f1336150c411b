"""How much the example strategies buy on an entry: a fixed quantity or a share of equity."""

from __future__ import annotations

from decimal import Decimal

from tradepilot.model import fixed

#: The share of equity the ``backtest`` and ``paper`` commands put into one entry when
#: no size is given: enough for the demo's returns, drawdown and costs to mean something.
RUN_EQUITY_FRACTION = "0.5"


def entry_quantity(quantity: Decimal, equity_fraction: Decimal, equity: int, price: int) -> Decimal:
    """``equity_fraction`` of ``equity`` (raw) at ``price`` (raw) when the fraction is set,
    else the fixed ``quantity``; the order boundary snaps it to the lot size."""
    if equity_fraction <= 0 or price <= 0 or equity <= 0:
        return quantity
    return fixed.to_decimal(fixed.div(fixed.mul(equity, fixed.to_raw(equity_fraction)), price))


def check_fraction(equity_fraction: Decimal) -> None:
    if not 0 <= equity_fraction <= 1:
        raise ValueError("equity_fraction must be between 0 (use quantity) and 1")
