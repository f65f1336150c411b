"""Execution quality from a journal's events: slippage, implementation shortfall, markouts.

Everything is computed from the journaled events of a run (``OrderInitialized``,
``OrderUpdated``, ``OrderFilled``, ``ParentOrderStarted``/``Finished`` ...) plus, for the
market-relative metrics, optional market series (see :mod:`tradepilot.analytics.market`):
``prices`` (mids, last trades or bar closes) and ``trades`` (prices with sizes).

**Units of analysis.** A *parent* is a parent order of an execution algorithm
(``ParentOrderStarted``; its children carry ``parent_id``). An order without a parent is
its own parent (algorithm ``"direct"``). Orders that never reached the market (denied by
the risk engine or rejected by the venue) and have no fill are left out: they measure risk
limits, not execution.

Only fills on the parent's side count (the exit legs of a ``bracket`` are not part of
its execution).

**Notation** for one parent: side ``s`` (+1 buy, -1 sell), target quantity ``Q``, fills
``(q_i, p_i, f_i)`` (fees converted to quote currency), ``X = sum q_i`` and average price
``avg = sum q_i p_i / X``; arrival price ``P0``; decision price ``Pd`` (reference price at
the first child's creation); end price ``Pend`` (reference price when the parent ended).

* ``slippage_bps = s * (avg - P0) / P0 * 1e4`` - positive is a cost (bought above / sold
  below the arrival price).
* ``slippage_vwap_bps = s * (avg - VWAP) / VWAP * 1e4``, VWAP of the market trades with
  ``first child ts <= ts <= last fill ts``.
* Implementation shortfall (quote currency; positive is a cost), versus a paper trade of
  ``Q`` at ``P0`` held to the end::

      delay       = s * X * (Pd - P0)
      trading     = s * (sum q_i p_i - X * Pd)
      opportunity = s * (Q - X) * (Pend - P0)
      fees        = sum f_i
      total       = s * (sum q_i p_i - X * P0) + s * (Q - X) * (Pend - P0) + fees

  ``delay + trading + opportunity + fees == total`` exactly: the money is summed in
  integers (raw fixed-point products, ``SCALE**2``) and only then turned into floats. In
  bps each is divided by the arrival notional ``Q * P0``.
* ``fill_rate = X / Q``; ``participation = X / market volume`` over the VWAP interval.
* Price improvement (limit orders only): ``s * (L_i - p_i) * q_i`` summed, ``L_i`` the
  order's limit price at the time of the fill; in bps of ``sum L_i q_i``. Positive is better
  than the limit.
* Markout at horizon ``h`` (fills whose ``ts + h`` is inside the price series):
  ``s * (mid(ts_i + h) - p_i) * q_i`` summed, in bps of ``sum p_i q_i``. Positive is
  favourable (the price moved our way after we traded).

**Reference prices.** ``P0`` is ``ParentOrderStarted.arrival_px`` when present, else the
reference price at the parent's start (for a direct order: at its ``OrderInitialized``),
else - without market data - the parent's first fill price. ``Pd`` is ``P0`` when the first
child was created at the parent's start time or there is no series. ``Pend`` is the
reference price at the end, else the last fill price of the instrument in the journal at or
before the end, else ``P0``. Lookups are "as of" (last point at or before the time).

Formulas and conventions are also in ``docs/analytics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tradepilot.analytics.market import PriceInput, PriceSeries, series_for
from tradepilot.model import fixed
from tradepilot.model.events import (
    Event,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderInitialized,
    OrderRejected,
    OrderUpdated,
    ParentOrderFinished,
    ParentOrderStarted,
    SessionStarted,
)

__all__ = [
    "DEFAULT_MARKOUT_HORIZONS_NS",
    "DIRECT",
    "ExecutionReport",
    "ExecutionSummary",
    "FillRecord",
    "GroupBy",
    "Markout",
    "ParentExecution",
    "Shortfall",
    "analyze_execution",
    "analyze_journal",
    "fee_in_quote",
    "session_config",
    "summarize_executions",
]

NS_PER_SECOND = 1_000_000_000
DEFAULT_MARKOUT_HORIZONS_NS: tuple[int, ...] = (
    1 * NS_PER_SECOND,
    10 * NS_PER_SECOND,
    60 * NS_PER_SECOND,
)
DIRECT = "direct"
"""Algorithm name of orders sent without a parent order."""

GroupBy = Literal["algorithm", "strategy", "instrument"]

_NAN = float("nan")
_S = fixed.SCALE
_S2 = float(fixed.SCALE) * float(fixed.SCALE)


def _bps(numerator: float, denominator: float) -> float:
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0.0:
        return _NAN
    return numerator / denominator * 1e4


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Implementation shortfall and its components, in quote currency (positive = cost).

    ``arrival_notional = Q * P0`` is the denominator of the ``*_bps`` properties.
    """

    delay: float
    trading: float
    opportunity: float
    fees: float
    total: float
    arrival_notional: float

    @property
    def delay_bps(self) -> float:
        return _bps(self.delay, self.arrival_notional)

    @property
    def trading_bps(self) -> float:
        return _bps(self.trading, self.arrival_notional)

    @property
    def opportunity_bps(self) -> float:
        return _bps(self.opportunity, self.arrival_notional)

    @property
    def fees_bps(self) -> float:
        return _bps(self.fees, self.arrival_notional)

    @property
    def total_bps(self) -> float:
        return _bps(self.total, self.arrival_notional)

    @classmethod
    def zero(cls) -> Shortfall:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def unknown(cls) -> Shortfall:
        return cls(_NAN, _NAN, _NAN, _NAN, _NAN, _NAN)

    def __add__(self, other: Shortfall) -> Shortfall:
        return Shortfall(
            self.delay + other.delay,
            self.trading + other.trading,
            self.opportunity + other.opportunity,
            self.fees + other.fees,
            self.total + other.total,
            self.arrival_notional + other.arrival_notional,
        )

    @property
    def is_known(self) -> bool:
        return math.isfinite(self.total)


@dataclass(frozen=True, slots=True)
class Markout:
    """Post-fill markout at one horizon: ``pnl`` (quote) over ``notional`` of covered fills."""

    horizon_ns: int
    pnl: float
    notional: float

    @property
    def bps(self) -> float:
        return _bps(self.pnl, self.notional)

    @property
    def label(self) -> str:
        return _horizon_label(self.horizon_ns)


def _horizon_label(ns: int) -> str:
    if ns >= 600 * NS_PER_SECOND and ns % (60 * NS_PER_SECOND) == 0:
        return f"{ns // (60 * NS_PER_SECOND)}m"
    if ns % NS_PER_SECOND == 0:
        return f"{ns // NS_PER_SECOND}s"
    return f"{ns / 1e6:g}ms"


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One fill of a parent's child order, with its slippage and markouts."""

    ts: int
    client_order_id: str
    parent_id: str
    algorithm: str
    strategy_id: str
    instrument_id: str
    side: int
    qty: float
    px: float
    fee: float  # quote currency
    liquidity: str
    limit_px: float  # NaN for orders without a limit price
    arrival_px: float  # of the parent
    slippage_bps: float  # s * (px - arrival) / arrival * 1e4
    markouts_bps: tuple[float, ...]  # one per horizon, NaN where not covered


@dataclass(frozen=True, slots=True)
class ParentExecution:
    """Execution quality of one parent order (see the module docstring for the formulas)."""

    parent_id: str
    algorithm: str
    strategy_id: str
    instrument_id: str
    side: int
    status: str
    start_ts: int
    end_ts: int
    quantity: float
    filled: float
    n_children: int
    n_fills: int
    arrival_px: float
    arrival_source: str  # "parent" | "prices" | "first fill" | "none"
    decision_px: float
    end_px: float
    avg_px: float  # NaN if nothing filled
    filled_notional: float  # sum q_i p_i
    fees: float
    fill_rate: float
    slippage_bps: float
    vwap: float
    slippage_vwap_bps: float
    market_volume: float
    participation: float
    shortfall: Shortfall
    first_fill_ts: int | None
    last_fill_ts: int | None
    time_to_first_fill_ns: int | None
    time_to_last_fill_ns: int | None
    price_improvement: float  # quote currency, NaN without limit fills
    limit_notional: float
    markouts: tuple[Markout, ...]

    @property
    def price_improvement_bps(self) -> float:
        return _bps(self.price_improvement, self.limit_notional)

    def markout_bps(self, horizon_ns: int) -> float:
        for m in self.markouts:
            if m.horizon_ns == horizon_ns:
                return m.bps
        return _NAN


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """Parents aggregated over a group (an algorithm, a strategy, an instrument or all).

    Ratios are weighted by money, so the group value is what one big order would show:
    ``slippage_bps = sum s (filled_notional - X P0) / sum X P0``, likewise against the VWAP;
    ``shortfall`` is the sum of the parents' shortfalls (only parents with a known arrival
    price); ``participation = sum X / sum market volume``; markouts add up their ``pnl`` and
    ``notional``. Times are medians over the parents that filled.
    """

    group: str
    key: str
    parents: int
    fills: int
    quantity: float
    filled: float
    fill_rate: float
    filled_notional: float
    fees: float
    slippage_bps: float
    slippage_vwap_bps: float
    shortfall: Shortfall
    participation: float
    price_improvement: float
    limit_notional: float
    markouts: tuple[Markout, ...]
    median_time_to_first_fill_ns: float
    median_time_to_last_fill_ns: float

    @property
    def price_improvement_bps(self) -> float:
        return _bps(self.price_improvement, self.limit_notional)

    @property
    def avg_px(self) -> float:
        return self.filled_notional / self.filled if self.filled else _NAN

    def markout_bps(self, horizon_ns: int) -> float:
        for m in self.markouts:
            if m.horizon_ns == horizon_ns:
                return m.bps
        return _NAN


@dataclass(frozen=True)
class ExecutionReport:
    """Every parent and fill of a run, with aggregates on demand."""

    parents: tuple[ParentExecution, ...]
    fills: tuple[FillRecord, ...]
    horizons_ns: tuple[int, ...] = DEFAULT_MARKOUT_HORIZONS_NS
    has_prices: bool = False
    has_trades: bool = False
    _cache: dict[str, list[ExecutionSummary]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def by(self, group: GroupBy) -> list[ExecutionSummary]:
        """One summary per value of ``group``, sorted by that value."""
        cached = self._cache.get(group)
        if cached is None:
            cached = self._cache[group] = summarize_executions(self.parents, group)
        return cached

    @property
    def by_algorithm(self) -> list[ExecutionSummary]:
        return self.by("algorithm")

    @property
    def by_strategy(self) -> list[ExecutionSummary]:
        return self.by("strategy")

    @property
    def by_instrument(self) -> list[ExecutionSummary]:
        return self.by("instrument")

    @property
    def total(self) -> ExecutionSummary:
        return _summarize("all", "all", self.parents, self.horizons_ns)

    def parent(self, parent_id: str) -> ParentExecution:
        for p in self.parents:
            if p.parent_id == parent_id:
                return p
        raise KeyError(parent_id)


# ----------------------------------------------------------------------------- folding


class _Order:
    __slots__ = ("end_ts", "fills", "init", "limit", "quantity", "status")

    def __init__(self, init: OrderInitialized) -> None:
        self.init = init
        self.limit = init.price
        self.quantity = init.quantity
        self.status = "OPEN"
        self.end_ts: int | None = None
        # (fill, limit price when it happened)
        self.fills: list[tuple[OrderFilled, int | None]] = []

    @property
    def filled(self) -> int:
        return sum(f.last_qty for f, _ in self.fills)


class _Parent:
    __slots__ = ("children", "finished", "started")

    def __init__(self) -> None:
        self.started: ParentOrderStarted | None = None
        self.finished: ParentOrderFinished | None = None
        self.children: list[_Order] = []


def fee_in_quote(fill: OrderFilled) -> int:
    """The fee as raw quote currency: a fee in the base asset is valued at the fill price."""
    symbol = fill.instrument_id.split(".", 1)[0]
    ccy = fill.fee_currency
    if ccy and symbol.startswith(ccy) and not symbol.endswith(ccy):
        return fixed.mul(fill.fee, fill.last_px)
    return fill.fee


def _px_raw(value: float | None) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return fixed.from_float_array_value(value)


def analyze_execution(
    events: Iterable[Event],
    prices: PriceInput = None,
    trades: PriceInput = None,
    *,
    markout_horizons_ns: Sequence[int] = DEFAULT_MARKOUT_HORIZONS_NS,
) -> ExecutionReport:
    """Execution quality of every parent order in ``events`` (in journal order).

    ``prices``: reference prices (mids, last trades or closes) - one series for every
    instrument or a mapping by instrument id. ``trades``: market trades with sizes, for the
    interval VWAP and the participation rate. A series with sizes given as ``prices`` is
    used as ``trades`` too, and ``trades`` serve as prices when ``prices`` is not given.
    """
    horizons = tuple(int(h) for h in markout_horizons_ns)
    orders: dict[str, _Order] = {}
    parents: dict[str, _Parent] = {}
    order_seq: list[_Order] = []
    fill_ts: dict[str, list[int]] = {}
    fill_px: dict[str, list[int]] = {}
    last_ts = 0
    for ev in events:
        last_ts = max(last_ts, ev.ts)
        kind = type(ev)
        if kind is OrderFilled:
            assert isinstance(ev, OrderFilled)
            order = orders.get(ev.client_order_id)
            if order is not None:
                order.fills.append((ev, order.limit))
                if order.filled >= order.quantity:
                    order.status, order.end_ts = "FILLED", ev.ts
            fill_ts.setdefault(ev.instrument_id, []).append(ev.ts)
            fill_px.setdefault(ev.instrument_id, []).append(ev.last_px)
        elif kind is OrderInitialized:
            assert isinstance(ev, OrderInitialized)
            order = orders[ev.client_order_id] = _Order(ev)
            order_seq.append(order)
            if ev.parent_id is not None:
                parents.setdefault(ev.parent_id, _Parent()).children.append(order)
        elif kind is OrderUpdated:
            assert isinstance(ev, OrderUpdated)
            order = orders.get(ev.client_order_id)
            if order is not None:
                order.limit = ev.price
                order.quantity = ev.quantity
        elif isinstance(ev, OrderCanceled | OrderExpired | OrderRejected | OrderDenied):
            order = orders.get(ev.client_order_id)
            if order is not None and order.end_ts is None:
                order.status = kind.__name__.removeprefix("Order").upper()
                order.end_ts = ev.ts
        elif kind is ParentOrderStarted:
            assert isinstance(ev, ParentOrderStarted)
            parents.setdefault(ev.parent_id, _Parent()).started = ev
        elif kind is ParentOrderFinished:
            assert isinstance(ev, ParentOrderFinished)
            parents.setdefault(ev.parent_id, _Parent()).finished = ev

    own_fills = {
        iid: PriceSeries.of(fill_ts[iid], np.asarray(fill_px[iid], dtype=np.float64) / _S)
        for iid in fill_ts
    }
    ctx = _Context(prices, trades, own_fills, horizons, last_ts)
    out_parents: list[ParentExecution] = []
    out_fills: list[FillRecord] = []
    done_parents: set[str] = set()
    # Parents in the order of their first appearance (start event or first child).
    for order in order_seq:
        pid = order.init.parent_id
        if pid is None:
            if order.status in ("DENIED", "REJECTED") and not order.fills:
                continue
            result = _evaluate(ctx, order.init.client_order_id, None, None, [order])
        else:
            if pid in done_parents:
                continue
            done_parents.add(pid)
            parent = parents[pid]
            result = _evaluate(ctx, pid, parent.started, parent.finished, parent.children)
        if result is not None:
            out_parents.append(result[0])
            out_fills.extend(result[1])
    # Parents that never sent a child.
    for pid, parent in parents.items():
        if pid not in done_parents and parent.started is not None:
            result = _evaluate(ctx, pid, parent.started, parent.finished, [])
            if result is not None:
                out_parents.append(result[0])
    out_parents.sort(key=lambda p: (p.start_ts, p.parent_id))
    out_fills.sort(key=lambda f: f.ts)
    has_prices = prices is not None or trades is not None
    has_trades = trades is not None or _has_sizes(prices)
    return ExecutionReport(tuple(out_parents), tuple(out_fills), horizons, has_prices, has_trades)


def _has_sizes(prices: PriceInput) -> bool:
    if prices is None:
        return False
    if isinstance(prices, PriceSeries):
        return prices.has_sizes
    return any(s.has_sizes for s in prices.values())


@dataclass
class _Context:
    prices: PriceInput
    trades: PriceInput
    own_fills: Mapping[str, PriceSeries]
    horizons: tuple[int, ...]
    last_ts: int

    def reference(self, iid: str) -> PriceSeries | None:
        series = series_for(self.prices, iid)
        if series is None:
            series = series_for(self.trades, iid)
        return series if series is not None and len(series) else None

    def trade_series(self, iid: str) -> PriceSeries | None:
        series = series_for(self.trades, iid)
        if series is None:
            series = series_for(self.prices, iid)
        return series if series is not None and series.has_sizes else None


def _evaluate(
    ctx: _Context,
    parent_id: str,
    started: ParentOrderStarted | None,
    finished: ParentOrderFinished | None,
    children: list[_Order],
) -> tuple[ParentExecution, list[FillRecord]] | None:
    if started is None and not children:
        return None
    first = children[0].init if children else None
    if started is not None:
        iid, sid, side = started.instrument_id, started.strategy_id, started.side
        target = started.quantity
        start_ts = started.ts
        algorithm = started.algorithm
    else:
        assert first is not None
        iid, sid, side = first.instrument_id, first.strategy_id, first.side
        start_ts = first.ts
        if first.parent_id is None:
            target = children[0].quantity
            algorithm = DIRECT
        else:  # children of a parent whose start is not in the journal
            target = sum(c.quantity for c in children)
            algorithm = "unknown"
    s = 1 if side > 0 else -1
    ref = ctx.reference(iid)

    # Only fills on the parent's side work the parent (a bracket's exits are not execution).
    fills = sorted(
        ((f, lim, c) for c in children for f, lim in c.fills if (f.side > 0) == (s > 0)),
        key=lambda x: x[0].ts,
    )
    filled = sum(f.last_qty for f, _, _ in fills)
    cost = sum(f.last_qty * f.last_px for f, _, _ in fills)  # SCALE**2
    fees = sum(fee_in_quote(f) for f, _, _ in fills) * _S  # SCALE**2

    # -- arrival price
    p0: int | None = None
    source = "none"
    if started is not None and started.arrival_px is not None:
        p0, source = started.arrival_px, "parent"
    if p0 is None and ref is not None:
        p0 = _px_raw(ref.at(start_ts))
        source = "prices" if p0 is not None else source
    if p0 is None and fills:
        p0, source = fills[0][0].last_px, "first fill"

    # -- end of the parent
    if finished is not None:
        end_ts, status = finished.ts, finished.state
    elif started is None and all(c.end_ts is not None for c in children):
        end_ts = max(c.end_ts or 0 for c in children)
        status = children[0].status if algorithm == DIRECT else "DONE"
    else:  # still working when the journal ends
        end_ts, status = ctx.last_ts, "OPEN"
    if fills:
        end_ts = max(end_ts, fills[-1][0].ts)

    # -- decision and end prices
    pd = p0
    if first is not None and p0 is not None and first.ts != start_ts and ref is not None:
        pd = _px_raw(ref.at(first.ts)) or p0
    pend: int | None = None
    if ref is not None:
        pend = _px_raw(ref.at(end_ts))
    if pend is None:
        own = ctx.own_fills.get(iid)
        pend = _px_raw(own.at(end_ts)) if own is not None else None
    if pend is None:
        pend = p0

    # -- shortfall (exact integers in SCALE**2, then floats)
    if p0 is not None and pd is not None and pend is not None:
        delay = s * filled * (pd - p0)
        trading = s * (cost - filled * pd)
        opportunity = s * (target - filled) * (pend - p0)
        total = s * (cost - filled * p0) + s * (target - filled) * (pend - p0) + fees
        assert delay + trading + opportunity + fees == total
        shortfall = Shortfall(
            delay / _S2,
            trading / _S2,
            opportunity / _S2,
            fees / _S2,
            total / _S2,
            target * p0 / _S2,
        )
        slippage = _bps(s * (cost - filled * p0) / _S2, filled * p0 / _S2) if filled else _NAN
    else:
        shortfall = Shortfall.unknown()
        slippage = _NAN

    qty_f = filled / _S
    avg = cost / _S2 / qty_f if filled else _NAN
    arrival = p0 / _S if p0 is not None else _NAN

    # -- market interval: first child .. last fill
    vwap = volume = _NAN
    tseries = ctx.trade_series(iid)
    if fills and first is not None and tseries is not None:
        vwap, volume = tseries.vwap(first.ts, fills[-1][0].ts)
    slippage_vwap = (
        _bps(s * (cost / _S2 - qty_f * vwap), qty_f * vwap) if filled and vwap > 0 else _NAN
    )
    participation = qty_f / volume if volume > 0 else _NAN

    # -- price improvement and markouts
    improvement = limit_notional = 0.0
    mark_pnl = [0.0] * len(ctx.horizons)
    mark_notional = [0.0] * len(ctx.horizons)
    records: list[FillRecord] = []
    for f, limit, child in fills:
        q = f.last_qty / _S
        px = f.last_px / _S
        if limit is not None:
            improvement += s * (limit - f.last_px) * f.last_qty / _S2
            limit_notional += limit * f.last_qty / _S2
        marks: list[float] = []
        for k, h in enumerate(ctx.horizons):
            m = ref.at(f.ts + h) if ref is not None and ref.covers(f.ts + h) else None
            if m is None:
                marks.append(_NAN)
                continue
            mark_pnl[k] += s * (m - px) * q
            mark_notional[k] += px * q
            marks.append(s * (m - px) / px * 1e4)
        records.append(
            FillRecord(
                ts=f.ts,
                client_order_id=f.client_order_id,
                parent_id=parent_id,
                algorithm=algorithm,
                strategy_id=child.init.strategy_id,
                instrument_id=f.instrument_id,
                side=s,
                qty=q,
                px=px,
                fee=fee_in_quote(f) / _S,
                liquidity=f.liquidity,
                limit_px=limit / _S if limit is not None else _NAN,
                arrival_px=arrival,
                slippage_bps=s * (px - arrival) / arrival * 1e4 if p0 else _NAN,
                markouts_bps=tuple(marks),
            )
        )
    markouts = tuple(Markout(h, mark_pnl[k], mark_notional[k]) for k, h in enumerate(ctx.horizons))
    first_fill = fills[0][0].ts if fills else None
    last_fill = fills[-1][0].ts if fills else None
    result = ParentExecution(
        parent_id=parent_id,
        algorithm=algorithm,
        strategy_id=sid,
        instrument_id=iid,
        side=s,
        status=status,
        start_ts=start_ts,
        end_ts=end_ts,
        quantity=target / _S,
        filled=qty_f,
        n_children=len(children),
        n_fills=len(fills),
        arrival_px=arrival,
        arrival_source=source,
        decision_px=pd / _S if pd is not None else _NAN,
        end_px=pend / _S if pend is not None else _NAN,
        avg_px=avg,
        filled_notional=cost / _S2,
        fees=fees / _S2,
        fill_rate=filled / target if target else _NAN,
        slippage_bps=slippage,
        vwap=vwap,
        slippage_vwap_bps=slippage_vwap,
        market_volume=volume,
        participation=participation,
        shortfall=shortfall,
        first_fill_ts=first_fill,
        last_fill_ts=last_fill,
        time_to_first_fill_ns=first_fill - start_ts if first_fill is not None else None,
        time_to_last_fill_ns=last_fill - start_ts if last_fill is not None else None,
        price_improvement=improvement if limit_notional else _NAN,
        limit_notional=limit_notional,
        markouts=markouts,
    )
    return result, records


# --------------------------------------------------------------------------- aggregation


def _key(p: ParentExecution, group: GroupBy) -> str:
    if group == "algorithm":
        return p.algorithm
    if group == "strategy":
        return p.strategy_id
    return p.instrument_id


def summarize_executions(
    parents: Iterable[ParentExecution], group: GroupBy
) -> list[ExecutionSummary]:
    """Aggregate parents by ``group`` (see :class:`ExecutionSummary`), sorted by key."""
    buckets: dict[str, list[ParentExecution]] = {}
    horizons: tuple[int, ...] = ()
    for p in parents:
        buckets.setdefault(_key(p, group), []).append(p)
        horizons = horizons or tuple(m.horizon_ns for m in p.markouts)
    return [_summarize(group, k, buckets[k], horizons) for k in sorted(buckets)]


def _median(values: Iterator[int | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else _NAN


def _summarize(
    group: str, key: str, parents: Sequence[ParentExecution], horizons: tuple[int, ...]
) -> ExecutionSummary:
    quantity = sum(p.quantity for p in parents)
    filled = sum(p.filled for p in parents)
    priced = [p for p in parents if p.shortfall.is_known]
    slip_num = sum(p.side * (p.filled_notional - p.filled * p.arrival_px) for p in priced)
    slip_den = sum(p.filled * p.arrival_px for p in priced)
    vw = [p for p in parents if p.filled and math.isfinite(p.vwap)]
    vw_num = sum(p.side * (p.filled_notional - p.filled * p.vwap) for p in vw)
    vw_den = sum(p.filled * p.vwap for p in vw)
    vol = [p for p in parents if math.isfinite(p.market_volume) and p.market_volume > 0]
    market_volume = sum(p.market_volume for p in vol)
    shortfall = Shortfall.zero()
    for p in priced:
        shortfall = shortfall + p.shortfall
    if not priced:
        shortfall = Shortfall.unknown()
    limit_notional = sum(p.limit_notional for p in parents)
    improvement = sum(p.price_improvement for p in parents if p.limit_notional)
    markouts = tuple(
        Markout(
            h,
            sum(p.markouts[k].pnl for p in parents if k < len(p.markouts)),
            sum(p.markouts[k].notional for p in parents if k < len(p.markouts)),
        )
        for k, h in enumerate(horizons)
    )
    return ExecutionSummary(
        group=group,
        key=key,
        parents=len(parents),
        fills=sum(p.n_fills for p in parents),
        quantity=quantity,
        filled=filled,
        fill_rate=filled / quantity if quantity else _NAN,
        filled_notional=sum(p.filled_notional for p in parents),
        fees=sum(p.fees for p in parents),
        slippage_bps=_bps(slip_num, slip_den),
        slippage_vwap_bps=_bps(vw_num, vw_den),
        shortfall=shortfall,
        participation=(sum(p.filled for p in vol) / market_volume if market_volume else _NAN),
        price_improvement=improvement if limit_notional else _NAN,
        limit_notional=limit_notional,
        markouts=markouts,
        median_time_to_first_fill_ns=_median(p.time_to_first_fill_ns for p in parents),
        median_time_to_last_fill_ns=_median(p.time_to_last_fill_ns for p in parents),
    )


# ------------------------------------------------------------------------------- journal


def analyze_journal(
    journal: str | Path,
    prices: PriceInput = None,
    trades: PriceInput = None,
    *,
    session: str | None = None,
    markout_horizons_ns: Sequence[int] = DEFAULT_MARKOUT_HORIZONS_NS,
) -> ExecutionReport:
    """:func:`analyze_execution` over the events of a journal file (or PostgreSQL URL)."""
    from tradepilot.persistence.journal import read_events

    return analyze_execution(
        read_events(journal, session), prices, trades, markout_horizons_ns=markout_horizons_ns
    )


def session_config(events: Iterable[Event]) -> tuple[str, str] | None:
    """``(mode, config JSON)`` of the first ``SessionStarted`` record, if any."""
    for ev in events:
        if isinstance(ev, SessionStarted):
            return ev.mode, ev.config
    return None
