"""The trading context: all a strategy, the signal pipeline, the algorithm host or a calendar
is given - never the engine itself.

:class:`TradingContext` is time (a clock and a scheduler with timers), the instruments,
an order gateway whose every path goes through the risk engine, a read-only view of the
portfolio, the bus and the journal. The kernel implements it (``Engine`` satisfies the
protocol), so a component written against it runs unchanged in backtest, paper and live,
and cannot reach the venue, the risk engine's internals or the order manager's state.

:class:`Component` is what the kernel drives: market-data and order callbacks, timers,
start and stop. :class:`~tradepilot.strategy.base.Strategy` adds the trading helpers; the
algorithm host (:class:`~tradepilot.execution.algo_engine.AlgoEngine`) is a component too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn, Protocol, cast

from tradepilot.core.bus import MessageBus
from tradepilot.core.clock import Clock
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick
from tradepilot.model.enums import AccountType
from tradepilot.model.events import Event, OrderFilled, OrderInitialized
from tradepilot.model.ids import IdRegistry
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.model.position import Position
from tradepilot.persistence.journal import Journal

__all__ = ["Component", "OrderGateway", "PortfolioView", "TimerOwner", "TradingContext"]


class OrderGateway(Protocol):
    """The order manager as components see it: every order it sends passes the risk engine."""

    @property
    def orders(self) -> Mapping[str, Order]:
        """Every order of the session by client order id (read it, do not change it)."""

    @property
    def ids(self) -> IdRegistry: ...

    def next_id(self, strategy_id: str) -> str: ...

    def submit(self, init: OrderInitialized) -> Order: ...

    def deny(self, init: OrderInitialized, code: str, reason: str) -> Order: ...

    def cancel(self, client_order_id: str, reason: str = "") -> None: ...

    def modify(
        self,
        client_order_id: str,
        quantity: int | None = None,
        price: int | None = None,
        trigger_price: int | None = None,
    ) -> None: ...

    def cancel_all(self, instrument_id: str | None = None, reason: str = "") -> None: ...

    def open_orders(self, instrument_id: str | None = None) -> Iterator[Order]: ...

    def all_open(self) -> list[Order]: ...


class PortfolioView(Protocol):
    """Positions, balances and prices, read-only."""

    @property
    def positions(self) -> Mapping[str, Position]: ...

    @property
    def account_type(self) -> AccountType: ...

    def position_qty(self, instrument_id: str) -> int: ...

    def balance(self, currency: str) -> int: ...

    def free(self, currency: str) -> int: ...

    def locked(self, currency: str) -> int: ...

    def equity(self) -> int: ...

    def last_price(self, instrument_id: str) -> int | None: ...


class TimerOwner(Protocol):
    """Who a timer calls back."""

    strategy_id: str

    def on_timer(self, name: str, ts: int) -> None: ...


class TradingContext(Protocol):
    """Everything a trading component may read and do."""

    @property
    def clock(self) -> Clock: ...

    @property
    def seed(self) -> int:
        """The session's seed (for components that make seeded random choices)."""

    @property
    def instruments(self) -> Mapping[str, Instrument]: ...

    @property
    def orders(self) -> OrderGateway: ...

    @property
    def portfolio(self) -> PortfolioView: ...

    @property
    def bus(self) -> MessageBus: ...

    @property
    def journal(self) -> Journal: ...

    def schedule(self, ts: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the clock reaches ``ts``."""

    def set_timer(
        self, owner: TimerOwner, name: str, interval_ns: int, start_ns: int | None = None
    ) -> None: ...

    def cancel_timer(self, owner: TimerOwner, name: str) -> None: ...

    def trading_state(self) -> tuple[str, str]:
        """The risk engine's trading state and its reason."""

    def stop(self, reason: str = "stopped", flatten: bool = False) -> None:
        """Ask the session to stop after the current item (``flatten``: close out first)."""


class _Detached:
    """The context of a component not attached yet: any use says so."""

    __slots__ = ("_owner",)

    def __init__(self, owner: str) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(f"strategy {self._owner} is not attached to an engine")


class Component:
    """Something the kernel drives: it is attached to a context and hears market data,
    order events, fills and timers. ``strategy_id`` names its orders and journal entries."""

    strategy_id: str = "strategy"

    #: what the kernel gave this component (a plain attribute: read on every callback)
    context: TradingContext

    def __init__(self, strategy_id: str | None = None) -> None:
        if strategy_id is not None:
            self.strategy_id = strategy_id
        self.context = cast("TradingContext", _Detached(self.strategy_id))

    # -- wiring ------------------------------------------------------------------------
    def attach(self, context: TradingContext) -> None:
        self.context = context

    @property
    def engine(self) -> TradingContext:
        """The context under its former name (kept for existing strategies)."""
        return self.context

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
