"""The read-only view of an engine that risk rules get (:class:`RiskView`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from tradepilot.core.clock import Clock
from tradepilot.model.enums import AccountType
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.portfolio.locking import locked_by
from tradepilot.portfolio.portfolio import Portfolio


@runtime_checkable
class OpenOrders(Protocol):
    """What the view reads from the order manager."""

    def all_open(self) -> list[Order]: ...


class EngineRiskView:
    """:class:`~tradepilot.risk.engine.RiskView` over a portfolio, the open orders and a clock.

    ``free_balance`` is the balance less what open orders hold back, derived from
    the orders as :meth:`Portfolio.locked` does, except that an order whose cancel
    has been sent (PENDING_CANCEL) no longer holds anything: the order manager
    sends that cancel before any later order, so a flatten submitted right after
    ``cancel_all`` can use the balance the cancelled orders held.

    During a risk check (between :meth:`begin_check` and :meth:`end_check`, which
    the risk engine calls) equity, positions, working orders and free balances are
    computed once and reused by every rule; ``check_memo`` is that per-check
    scratch, which rules may also use to share work. Outside a check every call
    reads the live state.
    """

    __slots__ = (
        "_account",
        "_excluded",
        "_last_px",
        "_orders",
        "_positions",
        "check_memo",
        "clock",
        "instruments",
        "portfolio",
    )

    def __init__(
        self,
        portfolio: Portfolio,
        orders: OpenOrders | Callable[[], Iterable[Order]],
        clock: Clock,
        instruments: dict[str, Instrument],
    ) -> None:
        """``orders`` is the order manager, or a function returning the open orders (so
        the view can be built before the order manager, as the portfolio is)."""
        self.portfolio = portfolio
        self.clock = clock
        self.instruments = instruments
        self._orders: Callable[[], Iterable[Order]] = (
            orders.all_open if isinstance(orders, OpenOrders) else orders
        )
        self._account = portfolio.account
        self._positions = portfolio.positions
        self._last_px = portfolio.last_px
        self.check_memo: dict[Any, Any] | None = None
        self._excluded: str | None = None

    def exclude_order(self, client_order_id: str | None) -> None:
        """Leave this open order out of the working orders and held balances (None: none).

        Used while a modify's new terms are checked: the order they replace must not
        be counted as well.
        """
        self._excluded = client_order_id

    def _open_orders(self) -> Iterable[Order]:
        excluded = self._excluded
        if excluded is None:
            return self._orders()
        return [o for o in self._orders() if o.client_order_id != excluded]

    def begin_check(self) -> None:
        self.check_memo = {}

    def end_check(self) -> None:
        self.check_memo = None

    def position_qty(self, instrument_id: str) -> int:
        pos = self._positions.get(instrument_id)
        return pos.qty if pos is not None else 0

    def last_price(self, instrument_id: str) -> int | None:
        return self._last_px.get(instrument_id)

    def equity(self) -> int:
        memo = self.check_memo
        if memo is None:
            return self.portfolio.equity()
        equity: int | None = memo.get("equity")
        if equity is None:
            equity = memo["equity"] = self.portfolio.equity()
        return equity

    def now(self) -> int:
        return self.clock.now()

    def open_positions(self) -> Mapping[str, int]:
        memo = self.check_memo
        if memo is not None:
            cached: Mapping[str, int] | None = memo.get("positions")
            if cached is None:
                cached = memo["positions"] = self._open_positions()
            return cached
        return self._open_positions()

    def _open_positions(self) -> dict[str, int]:
        return {iid: pos.qty for iid, pos in self._positions.items() if pos.qty}

    def working_qty(self) -> Mapping[str, tuple[int, int]]:
        memo = self.check_memo
        if memo is not None:
            cached: Mapping[str, tuple[int, int]] | None = memo.get("working")
            if cached is None:
                cached = memo["working"] = self._working_qty()
            return cached
        return self._working_qty()

    def _working_qty(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for order in self._open_orders():
            iid = order.instrument_id
            buys, sells = out.get(iid, (0, 0))
            if order.side > 0:
                buys += order.leaves_qty
            else:
                sells += order.leaves_qty
            out[iid] = (buys, sells)
        return out

    def free_balance(self, currency: str) -> int:
        memo = self.check_memo
        if memo is not None:
            key = ("free", currency)
            cached: int | None = memo.get(key)
            if cached is None:
                cached = memo[key] = self._free_balance(currency)
            return cached
        return self._free_balance(currency)

    def _free_balance(self, currency: str) -> int:
        account = self._account
        cash = account.account_type is AccountType.CASH
        locked = locked_by(
            self._open_orders(),
            self.instruments,
            currency,
            cash,
            self._last_px,
            skip_pending_cancel=True,
        )
        return account.balance(currency) - locked

    def account_type(self) -> AccountType:
        return self._account.account_type

    def leverage(self) -> int:
        return self._account.leverage
