"""Builders shared by the risk tests: instruments, a hand-set RiskView, orders, bars,
a scripted strategy and an engine wired with :class:`EngineRiskView`.

(No tests here; the module is named ``test_risk_*`` so that it sits with the risk tests.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from tradepilot.core.time import NS_PER_DAY, NS_PER_MINUTE, NS_PER_SECOND
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar
from tradepilot.model.enums import AccountType, OrderSide, OrderType
from tradepilot.model.events import Event, OrderDenied, OrderInitialized
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.risk.config import RiskConfig, build_rules
from tradepilot.risk.engine import RiskEngine, RiskRule
from tradepilot.risk.view import EngineRiskView
from tradepilot.strategy.base import Strategy

R = fixed.to_raw
S = fixed.to_str
SEC = NS_PER_SECOND
MIN = NS_PER_MINUTE
DAY = NS_PER_DAY
#: 2024-01-02 00:00:00 UTC
DAY0 = 19_724 * NS_PER_DAY


def inst(symbol: str, base: str, taker_fee_bps: str = "0", min_notional: str = "0") -> Instrument:
    return Instrument.create(
        symbol,
        "SIM",
        base,
        "USDT",
        tick_size="0.01",
        lot_size="0.001",
        min_notional=min_notional,
        taker_fee_bps=taker_fee_bps,
    )


BTC = inst("BTCUSDT", "BTC")
ETH = inst("ETHUSDT", "ETH")
SOL = inst("SOLUSDT", "SOL")
INSTRUMENTS = {i.id: i for i in (BTC, ETH, SOL)}
PRICES = {BTC.id: "50000", ETH.id: "3000", SOL.id: "100"}


class FakeView:
    """A RiskView whose every answer is set by hand (human decimal strings in)."""

    def __init__(
        self,
        positions: Mapping[str, str] | None = None,
        prices: Mapping[str, str] | None = None,
        equity: str = "100000",
        balances: Mapping[str, str] | None = None,
        working: Mapping[str, tuple[str, str]] | None = None,
        account_type: AccountType = AccountType.CASH,
        leverage: int = 1,
        now: int = DAY0,
        instruments: dict[str, Instrument] | None = None,
    ) -> None:
        self.instruments = dict(instruments or INSTRUMENTS)
        self.positions = {k: R(v) for k, v in (positions or {}).items()}
        self.prices = {k: R(v) for k, v in (PRICES if prices is None else prices).items()}
        self._equity = R(equity)
        self.balances = {k: R(v) for k, v in (balances or {"USDT": equity}).items()}
        self.working = {k: (R(b), R(s)) for k, (b, s) in (working or {}).items()}
        self._account_type = account_type
        self._leverage = leverage
        self._now = now

    def set_equity(self, equity: str) -> None:
        self._equity = R(equity)

    def position_qty(self, instrument_id: str) -> int:
        return self.positions.get(instrument_id, 0)

    def last_price(self, instrument_id: str) -> int | None:
        return self.prices.get(instrument_id)

    def equity(self) -> int:
        return self._equity

    def now(self) -> int:
        return self._now

    def open_positions(self) -> Mapping[str, int]:
        return {k: v for k, v in self.positions.items() if v}

    def working_qty(self) -> Mapping[str, tuple[int, int]]:
        return self.working

    def free_balance(self, currency: str) -> int:
        return self.balances.get(currency, 0)

    def account_type(self) -> AccountType:
        return self._account_type

    def leverage(self) -> int:
        return self._leverage


_seq = [0]


def order(
    instrument_id: str = BTC.id,
    side: OrderSide = OrderSide.BUY,
    qty: str = "0.1",
    order_type: OrderType = OrderType.MARKET,
    price: str | None = None,
    trigger: str | None = None,
    reduce_only: bool = False,
    ts: int = DAY0,
) -> Order:
    _seq[0] += 1
    return Order(
        OrderInitialized(
            ts=ts,
            client_order_id=f"t-{_seq[0]}",
            instrument_id=instrument_id,
            strategy_id="t",
            side=int(side),
            order_type=order_type.value,
            quantity=R(qty),
            price=None if price is None else R(price),
            trigger_price=None if trigger is None else R(trigger),
            reduce_only=reduce_only,
        )
    )


def buy(qty: str, instrument_id: str = BTC.id, **kw: object) -> Order:
    return order(instrument_id, OrderSide.BUY, qty, **kw)  # type: ignore[arg-type]


def sell(qty: str, instrument_id: str = BTC.id, **kw: object) -> Order:
    return order(instrument_id, OrderSide.SELL, qty, **kw)  # type: ignore[arg-type]


def risk_engine(config: RiskConfig, view: FakeView | None = None) -> RiskEngine:
    return RiskEngine(view or FakeView(), build_rules(config))


# -- engine runs -------------------------------------------------------------------------
def bars(
    instrument_id: str,
    closes: Sequence[str],
    start: int = DAY0 + MIN,
    step: int = MIN,
) -> list[Bar]:
    """One bar per close (ts = close time); each opens at the previous close."""
    out = []
    prev = closes[0]
    for i, close in enumerate(closes):
        o, c = R(prev), R(close)
        ts = start + i * step
        out.append(Bar(instrument_id, ts, ts - step, o, max(o, c), min(o, c), c, R("1000")))
        prev = close
    return out


def merge(*series: Iterable[Bar]) -> list[Bar]:
    return sorted((b for s in series for b in s), key=lambda b: b.ts)


Action = Callable[["Scripted", Bar], None]


class Scripted(Strategy):
    """Runs ``script[(bar index, instrument id)]`` on that bar; records every order it sent."""

    strategy_id = "s"

    def __init__(
        self,
        script: Mapping[tuple[int, str], Action] | None = None,
        each_bar: Action | None = None,
    ) -> None:
        super().__init__()
        self.script = dict(script or {})
        self.each_bar = each_bar
        self.index: dict[str, int] = {}
        self.sent: list[Order] = []

    def on_bar(self, bar: Bar) -> None:
        i = self.index.get(bar.instrument_id, 0)
        self.index[bar.instrument_id] = i + 1
        if self.each_bar is not None:
            self.each_bar(self, bar)
        action = self.script.get((i, bar.instrument_id))
        if action is not None:
            action(self, bar)

    def submit(self, *args: object, **kwargs: object) -> Order:  # type: ignore[override]
        placed = super().submit(*args, **kwargs)  # type: ignore[arg-type]
        self.sent.append(placed)
        return placed


def make_engine(
    strategy: Strategy,
    config: RiskConfig | None = None,
    rules: Sequence[RiskRule] | None = None,
    instruments: Sequence[Instrument] = (BTC,),
    balances: Mapping[str, str] | None = None,
    account_type: AccountType = AccountType.CASH,
) -> tuple[Engine, MemoryJournal]:
    journal = MemoryJournal()
    engine = Engine.simulated(
        list(instruments),
        [strategy],
        EngineConfig(
            starting_balances=dict(balances or {"USDT": "100000"}), account_type=account_type
        ),
        journal=journal,
        risk_rules=list(rules) if rules is not None else build_rules(config or RiskConfig()),
    )
    install_view(engine)
    return engine, journal


def install_view(engine: Engine) -> EngineRiskView:
    """Give the engine's risk engine the full view (what the kernel will build itself)."""
    view = EngineRiskView(engine.portfolio, engine.orders, engine.clock, engine.instruments)
    engine.risk.view = view
    return view


def denials(journal: MemoryJournal) -> list[OrderDenied]:
    return [e for e in journal.events() if isinstance(e, OrderDenied)]


def events_of(journal: MemoryJournal, kind: type[Event]) -> list[Event]:
    return [e for e in journal.events() if isinstance(e, kind)]
