"""Accounts: balances per currency, free versus locked by open orders."""

from __future__ import annotations

from tradepilot.model import fixed
from tradepilot.model.enums import AccountType


class InsufficientBalance(ValueError):
    pass


class Account:
    """Balances per currency (raw ints). ``free = total - locked``.

    In a CASH account a fill moves base and quote currency (no shorting, no
    borrowing). In a MARGIN account only realised PnL and fees touch the balance
    in the settlement currency; open positions are valued by their unrealised PnL.
    """

    __slots__ = ("account_type", "base_currency", "leverage", "locked", "total")

    def __init__(
        self,
        base_currency: str,
        balances: dict[str, int],
        account_type: AccountType = AccountType.CASH,
        leverage: int = 1,
    ) -> None:
        for ccy, amount in balances.items():
            if amount < 0:
                raise ValueError(f"starting balance of {ccy} cannot be negative")
        self.base_currency = base_currency
        self.account_type = account_type
        self.leverage = leverage
        self.total: dict[str, int] = dict(balances)
        self.total.setdefault(base_currency, 0)
        self.locked: dict[str, int] = {}

    def balance(self, currency: str) -> int:
        return self.total.get(currency, 0)

    def free(self, currency: str) -> int:
        return self.total.get(currency, 0) - self.locked.get(currency, 0)

    def lock(self, currency: str, amount: int) -> None:
        if amount < 0:
            raise ValueError("cannot lock a negative amount")
        if amount > self.free(currency):
            raise InsufficientBalance(
                f"insufficient {currency}: need {fixed.to_str(amount)}, "
                f"free {fixed.to_str(self.free(currency))}"
            )
        self.locked[currency] = self.locked.get(currency, 0) + amount

    def unlock(self, currency: str, amount: int) -> None:
        left = self.locked.get(currency, 0) - amount
        if left < 0:
            raise ValueError(f"unlocking more {currency} than is locked")
        self.locked[currency] = left

    def apply_cash_fill(
        self, base: str, quote: str, side: int, qty: int, notional: int, fee: int, fee_ccy: str
    ) -> None:
        """Settle a spot fill: base moves by side*qty, quote by -side*notional, less the fee."""
        total = self.total
        if side > 0:
            total[base] = total.get(base, 0) + qty
            total[quote] = total.get(quote, 0) - notional
        else:
            total[base] = total.get(base, 0) - qty
            total[quote] = total.get(quote, 0) + notional
        total[fee_ccy] = total.get(fee_ccy, 0) - fee

    def apply_margin_fill(self, realized_pnl: int, fee: int, fee_ccy: str) -> None:
        total = self.total
        ccy = self.base_currency
        total[ccy] = total.get(ccy, 0) + realized_pnl
        total[fee_ccy] = total.get(fee_ccy, 0) - fee

    def snapshot(self) -> dict[str, dict[str, str]]:
        return {
            ccy: {
                "total": fixed.to_str(amount),
                "locked": fixed.to_str(self.locked.get(ccy, 0)),
                "free": fixed.to_str(self.free(ccy)),
            }
            for ccy, amount in sorted(self.total.items())
        }
