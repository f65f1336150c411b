"""Builders shared by the simulated-venue tests: an instrument, hand-made market data,
a scripted strategy, a runner, and the invariants every run must satisfy.

Data helpers take human decimal strings and convert them with ``fixed.to_raw``;
query helpers return human strings (``fixed.to_str``) so expectations read as
plain numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tradepilot.core.time import NS_PER_DAY, NS_PER_MINUTE, NS_PER_SECOND
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar, BookDeltas, BookLevel, BookSnapshot, TradeTick
from tradepilot.model.enums import AccountType
from tradepilot.model.events import (
    Event,
    OrderCanceled,
    OrderCancelRejected,
    OrderDenied,
    OrderFilled,
    OrderModifyRejected,
    OrderRejected,
)
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.strategy.base import Strategy

R = fixed.to_raw
S = fixed.to_str
SEC = NS_PER_SECOND
MIN = NS_PER_MINUTE
DAY = NS_PER_DAY
#: 2024-01-02 00:00:00 UTC, a day boundary (DAY orders expire at the next one).
MIDNIGHT = 19_724 * NS_PER_DAY
IID = "BTCUSDT.SIM"


def make_instrument(
    maker_fee_bps: str = "0",
    taker_fee_bps: str = "0",
    tick_size: str = "0.01",
    lot_size: str = "0.001",
    min_qty: str = "0",
    min_notional: str = "0",
) -> Instrument:
    return Instrument.create(
        "BTCUSDT",
        "SIM",
        "BTC",
        "USDT",
        tick_size=tick_size,
        lot_size=lot_size,
        min_qty=min_qty,
        min_notional=min_notional,
        maker_fee_bps=maker_fee_bps,
        taker_fee_bps=taker_fee_bps,
    )


# -- market data ----------------------------------------------------------------------------
def bar(
    k: int,
    o: str,
    h: str,
    lo: str,
    c: str,
    volume: str = "1000",
    start: int = MIDNIGHT - 2 * MIN,
    interval: int = MIN,
) -> Bar:
    """Bar number ``k`` of a series starting at ``start``; ``ts`` is its close time."""
    ts_open = start + k * interval
    return Bar(IID, ts_open + interval, ts_open, R(o), R(h), R(lo), R(c), R(volume))


def bar_ts(k: int, start: int = MIDNIGHT - 2 * MIN, interval: int = MIN) -> int:
    return start + (k + 1) * interval


def trade(ts: int, price: str, size: str = "10", aggressor: int = 0) -> TradeTick:
    return TradeTick(IID, ts, R(price), R(size), aggressor)


def levels(pairs: Iterable[tuple[str, str]]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(R(p), R(q)) for p, q in pairs)


def snapshot(
    ts: int, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]
) -> BookSnapshot:
    return BookSnapshot(IID, ts, levels(bids), levels(asks))


def deltas(
    ts: int, bids: Iterable[tuple[str, str]] = (), asks: Iterable[tuple[str, str]] = ()
) -> BookDeltas:
    return BookDeltas(IID, ts, levels(bids), levels(asks))


# -- a scripted strategy ----------------------------------------------------------------------
Action = Callable[["Scripted"], Any]


class Scripted(Strategy):
    """Runs ``script[n]`` when it sees its n-th market-data item (0-based; bars, trades and
    book updates all count), and ``script["start"]`` in ``on_start``. Every callback also
    runs ``probe`` (if given), so a test can check invariants at any point of a run."""

    def __init__(
        self,
        script: dict[int | str, Action] | None = None,
        strategy_id: str = "s",
        probe: Callable[[Scripted, str], None] | None = None,
    ) -> None:
        super().__init__(strategy_id)
        self.script = dict(script or {})
        self.probe = probe
        self.step = -1
        self.placed: list[Order] = []
        self.seen: list[Event] = []
        self.fills: list[OrderFilled] = []
        self.notes: dict[str, Any] = {}

    def _act(self, key: int | str) -> None:
        action = self.script.get(key)
        if action is not None:
            result = action(self)
            if isinstance(result, Order):
                self.placed.append(result)

    def _data(self) -> None:
        self.step += 1
        if self.probe is not None:
            self.probe(self, "data")
        self._act(self.step)

    def on_start(self) -> None:
        self._act("start")

    def on_bar(self, bar: Bar) -> None:
        self._data()

    def on_trade(self, tick: TradeTick) -> None:
        self._data()

    def on_book(self, update: BookSnapshot | BookDeltas) -> None:
        self._data()

    def on_order_event(self, event: Event) -> None:
        self.seen.append(event)
        if self.probe is not None:
            self.probe(self, type(event).__name__)

    def on_fill(self, fill: OrderFilled) -> None:
        self.fills.append(fill)


def run(
    data: Sequence[Any],
    script: dict[int | str, Action] | None = None,
    *,
    instrument: Instrument | None = None,
    strategies: Sequence[Strategy] | None = None,
    balances: dict[str, str] | None = None,
    account_type: AccountType = AccountType.CASH,
    check: bool = True,
    **config: Any,
) -> Engine:
    """Run the engine over ``data`` with one :class:`Scripted` strategy (or ``strategies``)."""
    inst = instrument or make_instrument()
    strats = list(strategies) if strategies is not None else [Scripted(script)]
    cfg = EngineConfig(
        starting_balances=balances or {"USDT": "100000", "BTC": "10"},
        account_type=account_type,
        **config,
    )
    engine = Engine.simulated([inst], strats, cfg, journal=MemoryJournal())
    engine.run(data)
    if check:
        check_invariants(engine)
    return engine


# -- queries ----------------------------------------------------------------------------------
def journal_events(engine: Engine) -> list[Event]:
    journal = engine.journal
    assert isinstance(journal, MemoryJournal)
    return journal.events()


def order(engine: Engine, cid: str = "s-1") -> Order:
    return engine.orders.orders[cid]


def fills(engine: Engine, cid: str = "s-1") -> list[tuple[str, str, str]]:
    """``(qty, price, liquidity)`` of each fill of an order, as human strings."""
    return [
        (S(e.last_qty), S(e.last_px), e.liquidity)
        for e in order(engine, cid).events
        if isinstance(e, OrderFilled)
    ]


def fill_times(engine: Engine, cid: str = "s-1") -> list[int]:
    return [e.ts for e in order(engine, cid).events if isinstance(e, OrderFilled)]


def event_names(engine: Engine, cid: str = "s-1") -> list[str]:
    return [type(e).__name__ for e in order(engine, cid).events]


def last_event(engine: Engine, kind: type[Event], cid: str = "s-1") -> Any:
    found = [e for e in order(engine, cid).events if isinstance(e, kind)]
    assert found, f"{cid} has no {kind.__name__}: {event_names(engine, cid)}"
    return found[-1]


# -- invariants --------------------------------------------------------------------------------
_WITH_REASON = (OrderDenied, OrderRejected, OrderCancelRejected, OrderModifyRejected, OrderCanceled)


def check_invariants(engine: Engine) -> None:
    """What must hold after every run, whatever it did."""
    events = journal_events(engine)
    for event in events:
        if isinstance(event, _WITH_REASON):
            assert event.reason.strip(), f"{type(event).__name__} without a reason: {event}"
    filled: dict[str, int] = {}
    for event in events:
        if isinstance(event, OrderFilled):
            assert event.last_qty > 0
            filled[event.client_order_id] = filled.get(event.client_order_id, 0) + event.last_qty
    for cid, o in engine.orders.orders.items():
        assert 0 <= o.filled_qty <= o.quantity, o
        assert o.filled_qty == filled.get(cid, 0), o
    acct = engine.venue.account
    for ccy, amount in acct.locked.items():
        assert amount >= 0, (ccy, amount)
    if not engine.venue.open_order_ids():
        assert not any(acct.locked.values()), acct.locked
    if acct.account_type is AccountType.CASH:
        for ccy in acct.total:
            assert acct.free(ccy) >= 0, (ccy, acct.snapshot())
    # the engine's fold of the fills agrees with the venue's books
    nonzero = {k: v for k, v in acct.total.items() if v}
    assert {k: v for k, v in engine.portfolio.account.total.items() if v} == nonzero
    for iid, pos in engine.venue.positions.items():
        assert engine.portfolio.position_qty(iid) == pos.qty
