"""The one fill-settlement rule, used by the venue, the portfolio and the projection.

A fill moves the position (average cost, realised PnL, fees) and the account: a CASH
account moves base by ``side * qty`` and quote by ``-side * notional``, less the fee
in its currency; a MARGIN account books the realised PnL in its base currency, less
the fee. Everything is exact fixed-point.
"""

from __future__ import annotations

from tradepilot.model import fixed
from tradepilot.model.account import Account
from tradepilot.model.enums import AccountType
from tradepilot.model.instrument import Instrument
from tradepilot.model.position import Position

__all__ = ["settle_fill"]

_CASH = AccountType.CASH


def settle_fill(
    account: Account,
    position: Position,
    instrument: Instrument | None,
    side: int,
    qty: int,
    px: int,
    fee: int,
    fee_currency: str,
    ts: int,
) -> tuple[int, int, bool]:
    """Book one fill; returns ``(realised PnL, notional, balances settled)``.

    The balances of a CASH account are not settled (``False``) when the instrument
    is unknown, since its base and quote currencies are; the position always is.
    """
    notional = fixed.mul(px, qty)
    realized = position.apply_fill(side, qty, px, fee, ts)
    if account.account_type is _CASH:
        if instrument is None:
            return realized, notional, False
        account.apply_cash_fill(
            instrument.base, instrument.quote, side, qty, notional, fee, fee_currency
        )
    else:
        account.apply_margin_fill(realized, fee, fee_currency)
    return realized, notional, True
