"""Ledger properties over random order flow on random bar and trade-tick paths.

(a) value is conserved by every fill net of its fee: equity valued at the fill price
    (cash plus holdings, or cash plus unrealised PnL in a MARGIN account) moves by
    exactly minus the fee;
(b) no order is ever filled beyond its quantity;
(c) in a CASH account no free balance is ever negative, at the venue at every event,
    and in the engine's portfolio between engine steps for a strategy that only
    commits what its free balance covers (within one step the portfolio applies the
    venue's events one at a time: after a market buy is cut to what the account can
    pay, the fill is applied before the cancel of the unpaid rest, and in between the
    portfolio still counts that rest as locked);
(d) at the end the portfolio's balances and positions equal the venue's.

Prices sit on a 0.01 tick and quantities on a 0.001 lot, so every notional has at
most five decimals and every product is exact; (a) is checked with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from sim_helpers import IID, MIDNIGHT, MIN, SEC, R, Scripted, check_invariants, make_instrument
from tradepilot.engine.kernel import Engine, EngineConfig
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick
from tradepilot.model.enums import AccountType, OrderSide, OrderType, TimeInForce
from tradepilot.model.events import OrderFilled
from tradepilot.persistence.journal import MemoryJournal
from tradepilot.venues.sim.models import FillModel

TICK = R("0.01")
LOT = R("0.001")
START = MIDNIGHT - 5 * MIN  # paths cross midnight, so DAY orders expire on some of them


@dataclass(frozen=True)
class Spec:
    step: int
    side: OrderSide
    order_type: OrderType
    lots: int
    price_ticks: int  # limit price offset from the last price, in ticks
    trigger_ticks: int  # stop trigger offset from the last price, in ticks (away from it)
    tif: TimeInForce
    post_only: bool
    reduce_only: bool
    cancel_after: int | None  # data items after the submit; 0 = in the same callback
    modify_after: int | None


@dataclass(frozen=True)
class Scenario:
    kind: str
    data: list[Any]
    specs: list[Spec]
    account_type: AccountType
    careful: bool
    maker_bps: int
    taker_bps: int
    fill_model: FillModel
    latency_ns: int
    usdt: int
    btc_lots: int


@st.composite
def paths(draw: st.DrawFn, kind: str) -> list[Any]:
    n = draw(st.integers(3, 14))
    px = draw(st.integers(5_000, 15_000))  # in ticks: 50.00 .. 150.00
    out: list[Any] = []
    step = MIN if kind == "bars" else 20 * SEC
    for i in range(n):
        ts_open = START + i * step
        if kind == "bars":
            o = max(1, px + draw(st.integers(-300, 300)))
            c = max(1, o + draw(st.integers(-500, 500)))
            h = max(o, c) + draw(st.integers(0, 300))
            lo = max(1, min(o, c) - draw(st.integers(0, 300)))
            vol = draw(st.integers(1, 5_000)) * LOT
            out.append(
                Bar(IID, ts_open + step, ts_open, o * TICK, h * TICK, lo * TICK, c * TICK, vol)
            )
            px = c
        else:
            px = max(1, px + draw(st.integers(-400, 400)))
            size = draw(st.integers(1, 3_000)) * LOT
            aggressor = draw(st.sampled_from([-1, 0, 1]))
            out.append(TradeTick(IID, ts_open, px * TICK, size, aggressor))
    return out


RARELY = st.sampled_from([False, False, False, False, False, True])


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    kind = draw(st.sampled_from(["bars", "ticks"]))
    data = draw(paths(kind))
    n = len(data)
    specs = []
    for _ in range(draw(st.integers(1, 8))):
        step = draw(st.integers(0, n - 1))
        specs.append(
            Spec(
                step=step,
                side=draw(st.sampled_from([OrderSide.BUY, OrderSide.SELL])),
                order_type=draw(st.sampled_from(list(OrderType))),
                lots=draw(st.integers(1, 4_000)),
                price_ticks=draw(st.integers(-400, 400)),
                trigger_ticks=draw(st.integers(0, 400)),
                tif=draw(st.sampled_from([*TimeInForce, TimeInForce.GTC, TimeInForce.GTC])),
                post_only=draw(RARELY),
                reduce_only=draw(RARELY),
                cancel_after=draw(st.none() | st.integers(0, 3)),
                modify_after=draw(st.none() | st.integers(0, 3)),
            )
        )
    fill_model = FillModel(
        limit_fill=draw(st.sampled_from(["touch", "through"])),
        market_slippage_ticks=draw(st.integers(0, 2)),
        bar_slippage_ticks=draw(st.integers(0, 2)),
        bar_volume_participation=draw(st.none() | st.sampled_from([0.1, 0.5, 1.0])),
        cap_limit_fills_to_trade_size=draw(st.booleans()),
    )
    return Scenario(
        kind=kind,
        data=data,
        specs=specs,
        account_type=draw(st.sampled_from([AccountType.CASH, AccountType.MARGIN])),
        careful=draw(st.booleans()),
        maker_bps=draw(st.integers(0, 10)),
        taker_bps=draw(st.integers(0, 25)),
        fill_model=fill_model,
        # some latencies are longer than the spacing of the data: commands race fills
        latency_ns=draw(st.sampled_from([0, 0, 1, 5 * SEC, 30 * SEC, 70 * SEC])),
        usdt=draw(st.integers(0, 500_000)),
        btc_lots=draw(st.integers(0, 5_000)),
    )


class RandomFlow(Scripted):
    """Submits, cancels and modifies orders as the scenario says, and checks the ledger."""

    def __init__(self, sc: Scenario) -> None:
        super().__init__(strategy_id="r")
        self.sc = sc
        self.fills_seen = 0
        self.prev: tuple[int, int, int] | None = None
        self.by_step: dict[int, list[Spec]] = {}
        for spec in sc.specs:
            self.by_step.setdefault(spec.step, []).append(spec)
        self.later: dict[int, list[tuple[str, str]]] = {}

    # -- order flow --------------------------------------------------------------------------------
    def _data(self) -> None:
        self.step += 1
        self.check_balances(portfolio_too=True)
        self.run_later(self.step)
        for spec in self.by_step.get(self.step, []):
            self.place(spec)

    def place(self, spec: Spec) -> None:
        last = self.last_price(IID)
        if last is None:
            return
        qty = spec.lots * LOT
        sign = int(spec.side)
        price = max(TICK, last + spec.price_ticks * TICK)
        trigger = max(TICK, last + sign * spec.trigger_ticks * TICK)  # above for buys
        t = spec.order_type
        px = price if t in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
        trig = trigger if t in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT) else None
        if self.sc.careful and self.sc.account_type is AccountType.CASH:
            if spec.side is OrderSide.BUY:
                ref = px or trig or last
                notional = fixed.mul(ref, qty)
                cost = notional + fixed.bps_of(
                    notional, R(max(self.sc.maker_bps, self.sc.taker_bps))
                )
                if cost > self.free_balance("USDT"):
                    return
            elif qty > self.free_balance("BTC"):
                return
        expire = self.now() + 90 * SEC if spec.tif is TimeInForce.GTD else None
        order = self.submit(
            IID,
            spec.side,
            fixed.to_decimal(qty),
            order_type=t,
            price=fixed.to_decimal(px) if px is not None else None,
            trigger_price=fixed.to_decimal(trig) if trig is not None else None,
            time_in_force=spec.tif,
            expire_ts=expire,
            post_only=spec.post_only,
            reduce_only=spec.reduce_only,
        )
        cid = order.client_order_id
        if spec.modify_after is not None:
            self.later.setdefault(self.step + spec.modify_after, []).append(("modify", cid))
        if spec.cancel_after is not None:
            self.later.setdefault(self.step + spec.cancel_after, []).append(("cancel", cid))
        self.run_later(self.step)

    def run_later(self, step: int) -> None:
        for what, cid in self.later.pop(step, []):
            order = self.engine.orders.orders[cid]
            if not order.is_open:
                continue
            if what == "cancel":
                self.cancel(cid)
            elif order.price is not None:
                # a lower price for a buy only shrinks its lock; a sell locks base anyway
                self.modify(cid, price=fixed.to_decimal(max(TICK, order.price - 5 * TICK)))

    # -- checks ------------------------------------------------------------------------------------
    def on_order_event(self, event: Any) -> None:
        for order in self.engine.orders.orders.values():
            assert order.filled_qty <= order.quantity, order  # (b)
        self.check_balances(portfolio_too=False)

    def check_balances(self, portfolio_too: bool) -> None:  # (c)
        engine = self.engine
        acct = engine.venue.account
        if acct.account_type is not AccountType.CASH:
            return
        for ccy in ("USDT", "BTC"):
            assert acct.balance(ccy) >= 0, acct.snapshot()
            assert acct.free(ccy) >= 0, acct.snapshot()
            if portfolio_too and self.sc.careful:
                assert engine.portfolio.free(ccy) >= 0, (ccy, engine.portfolio.free(ccy))

    def _state(self) -> tuple[int, int, int]:
        p = self.engine.portfolio
        pos = p.positions.get(IID)
        qty, cost = (pos.qty, pos.cost) if pos else (0, 0)
        acct = p.account
        if acct.account_type is AccountType.CASH:
            return acct.balance("USDT"), acct.balance("BTC"), 0
        return acct.balance("USDT"), qty, cost

    @staticmethod
    def _equity(state: tuple[int, int, int], px: int) -> int:
        cash, held, cost = state  # CASH: cost 0 and held = base balance
        return cash + fixed.mul(held, px) - cost

    def on_fill(self, fill: OrderFilled) -> None:  # (a)
        self.fills_seen += 1
        before = self.prev or self._initial_state()
        after = self._state()
        px = fill.last_px
        assert self._equity(after, px) - self._equity(before, px) == -fill.fee, fill
        inst = self.engine.instruments[IID]
        rate = inst.maker_fee_bps if fill.liquidity == "MAKER" else inst.taker_fee_bps
        assert fill.fee == fixed.bps_of(fixed.mul(px, fill.last_qty), rate)
        self.prev = after

    def _initial_state(self) -> tuple[int, int, int]:
        usdt = self.sc.usdt * fixed.SCALE
        if self.sc.account_type is AccountType.CASH:
            return usdt, self.sc.btc_lots * LOT, 0
        return usdt, 0, 0


def run_scenario(sc: Scenario) -> tuple[Engine, RandomFlow]:
    inst = make_instrument(maker_fee_bps=str(sc.maker_bps), taker_fee_bps=str(sc.taker_bps))
    strat = RandomFlow(sc)
    balances = {"USDT": str(sc.usdt), "BTC": fixed.to_str(sc.btc_lots * LOT)}
    if sc.account_type is AccountType.MARGIN:
        balances = {"USDT": str(sc.usdt)}
    cfg = EngineConfig(
        starting_balances=balances,
        account_type=sc.account_type,
        fill_model=sc.fill_model,
        latency_ns=sc.latency_ns,
        latency_jitter_ns=sc.latency_ns // 2,
        seed=7,
    )
    engine = Engine.simulated([inst], [strat], cfg, journal=MemoryJournal())
    engine.run(sc.data)
    return engine, strat


SETTINGS = settings(max_examples=examples(150))


@SETTINGS
@given(scenarios())
def test_ledger_properties(sc: Scenario) -> None:
    engine, strat = run_scenario(sc)
    # (b) for every order, and the sum of its fills is its filled quantity
    check_invariants(engine)
    for order in engine.orders.orders.values():
        assert order.filled_qty <= order.quantity
    # (c) once more at the very end
    strat.check_balances(portfolio_too=True)
    # (d) the engine's fold of the fills equals the venue's own books
    venue, folio = engine.venue.account, engine.portfolio.account
    for ccy in set(venue.total) | set(folio.total):
        assert folio.balance(ccy) == venue.balance(ccy), ccy
    assert engine.portfolio.position_qty(IID) == engine.venue.position_qty(IID)
    venue_pos, folio_pos = engine.venue.positions.get(IID), engine.portfolio.positions.get(IID)
    if venue_pos is not None and folio_pos is not None:
        assert (folio_pos.cost, folio_pos.realized_pnl, folio_pos.fees) == (
            venue_pos.cost,
            venue_pos.realized_pnl,
            venue_pos.fees,
        )
    assert strat.fills_seen == engine.portfolio.fill_count


@settings(max_examples=examples(60))
@given(scenarios())
def test_same_scenario_same_journal(sc: Scenario) -> None:
    first, _ = run_scenario(sc)
    second, _ = run_scenario(sc)
    assert first.journal.rows == second.journal.rows  # type: ignore[attr-defined]
