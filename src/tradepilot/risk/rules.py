"""Configurable pre-trade risk rules.

Each rule is a small class with a stable ``code`` and a ``check(order, view)``
that returns a human reason naming the limit and the value, or None. Build them
from a :class:`~tradepilot.risk.config.RiskConfig` with
:func:`~tradepilot.risk.config.build_rules`, or construct them directly.

Conventions:

* Money and quantities are raw fixed-point ints; percentages are given as floats
  in percent (``20.0`` = 20 %) and compared exactly in integers.
* An order is valued at its *reference price*: its limit price, else its trigger
  price, else the last price. An order that has none cannot be valued and is
  denied by the rules that need a value.
* Exposure is the worst case of positions **plus working orders**: for each
  instrument ``max(|position + open buys|, |position - open sells|)`` times its
  last price (the order's own instrument at the higher of the last price and the
  order's reference price). Money is read in each instrument's quote currency,
  which is assumed to be the account's base currency.
* Orders that reduce the current position (:func:`reduces_position`) always pass
  the limits that guard against risk growth (position, gross exposure, open
  positions, sector, correlation, trade value, daily loss, drawdown, margin).
  *Protective* orders - ``reduce_only`` and reducing, as sent by the kill switch -
  also pass the order-size and order-rate limits: they cannot open risk, and an
  emergency flatten must not be throttled. Price band and cash balance apply to
  every order.
* Time is the order's ``ts_init`` (the engine clock when it was created).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tradepilot.core.time import NS_PER_DAY, NS_PER_SECOND
from tradepilot.model import fixed
from tradepilot.model.enums import AccountType
from tradepilot.model.order import Order
from tradepilot.risk.engine import RiskView, reduces_position
from tradepilot.risk.equity import (
    EquityWatch,
    above_pct,
    pct_of,
    pct_raw,
    pct_str,
    share_pct,
)

_NO_WORKING = (0, 0)
_SCALE = fixed.SCALE
_s = fixed.to_str


# -- helpers ---------------------------------------------------------------------------------
def reference_price(order: Order, view: RiskView) -> int | None:
    """Limit price, else trigger price, else the last price (None if there is none)."""
    px = order.price
    if px is None:
        px = order.trigger_price
        if px is None:
            px = view.last_price(order.instrument_id)
    return px


def is_protective(order: Order, view: RiskView) -> bool:
    """A reduce-only order that only shrinks the current position (what a flatten sends)."""
    return order.reduce_only and reduces_position(order, view)


def exposure_by_instrument(order: Order, view: RiskView, ref_px: int) -> dict[str, int]:
    """Worst-case gross value per instrument after the order (positions, working orders
    and the order), memoised for the current check when the view offers ``check_memo``."""
    memo: dict[Any, Any] | None = getattr(view, "check_memo", None)
    if memo is not None:
        key = ("exposure", order.client_order_id, ref_px)
        cached: dict[str, int] | None = memo.get(key)
        if cached is None:
            cached = memo[key] = _exposure_by_instrument(order, view, ref_px)
        return cached
    return _exposure_by_instrument(order, view, ref_px)


def _exposure_by_instrument(order: Order, view: RiskView, ref_px: int) -> dict[str, int]:
    # on the order path: plain int arithmetic (values floored to the raw unit)
    iid = order.instrument_id
    positions = view.open_positions()
    working = view.working_qty()
    last_price = view.last_price
    scale = _SCALE
    out: dict[str, int] = {}
    for other, held in positions.items():
        if other in working or other == iid:
            continue
        px = last_price(other)
        if px is not None:
            out[other] = px * (held if held > 0 else -held) // scale
    for other, (buys, sells) in working.items():
        if other == iid:
            continue
        px = last_price(other)
        if px is not None:
            held = positions.get(other, 0)
            out[other] = px * max(abs(held + buys), abs(held - sells)) // scale
    held = positions.get(iid, 0)
    buys, sells = working.get(iid, _NO_WORKING)
    if order.side > 0:
        buys += order.quantity
    else:
        sells += order.quantity
    last = last_price(iid)
    px = ref_px if last is None or ref_px > last else last
    out[iid] = px * max(abs(held + buys), abs(held - sells)) // scale
    return out


def projected_exposure(
    order: Order,
    view: RiskView,
    ref_px: int,
    member: Callable[[str], bool] | None = None,
) -> int:
    """Worst-case gross value after the order, over the instruments ``member`` accepts."""
    values = exposure_by_instrument(order, view, ref_px)
    if member is None:
        return sum(values.values())
    return sum(v for k, v in values.items() if member(k))


def _value_limit_message(
    what: str, value: int, key: str, limit_raw: int, equity: int, extra: str = ""
) -> str:
    return (
        f"{what} {_s(value)}{extra} after the order would exceed {key} {pct_str(limit_raw)} "
        f"of equity {_s(equity)} (limit {_s(pct_of(equity, limit_raw))}, "
        f"would be {share_pct(value, equity)})"
    )


def _no_price(order: Order) -> str:
    return f"no reference price to value the order on {order.instrument_id}"


def _no_equity(equity: int) -> str:
    return f"equity {_s(equity)} is not positive: orders that add exposure are denied"


# -- order size ------------------------------------------------------------------------------
class MaxOrderQuantity:
    """``max_order_qty``: largest quantity per order, by instrument id, symbol or ``*``."""

    code = "MAX_ORDER_QTY"

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self._by_instrument: dict[str, int | None] = {}

    def limit_for(self, instrument_id: str, view: RiskView) -> int | None:
        try:
            return self._by_instrument[instrument_id]
        except KeyError:
            pass
        limits = self.limits
        limit = limits.get(instrument_id)
        if limit is None:
            inst = view.instruments.get(instrument_id)
            if inst is not None:
                limit = limits.get(inst.symbol)
        if limit is None:
            limit = limits.get("*")
        self._by_instrument[instrument_id] = limit
        return limit

    def check(self, order: Order, view: RiskView) -> str | None:
        limit = self.limit_for(order.instrument_id, view)
        if limit is None or order.quantity <= limit or is_protective(order, view):
            return None
        return (
            f"quantity {_s(order.quantity)} exceeds max_order_qty {_s(limit)} "
            f"for {order.instrument_id}"
        )


class MaxOrderValue:
    """``max_order_value``: largest notional per order (fat-finger guard)."""

    code = "MAX_ORDER_VALUE"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, order: Order, view: RiskView) -> str | None:
        px = reference_price(order, view)
        if px is None:
            return None if is_protective(order, view) else _no_price(order)
        value = fixed.mul(px, order.quantity)
        if value <= self.limit or is_protective(order, view):
            return None
        return f"order value {_s(value)} exceeds max_order_value {_s(self.limit)}"


class MinTradeValue:
    """``min_trade_value``: smallest notional of an order that opens or adds to a position."""

    code = "MIN_TRADE_VALUE"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, order: Order, view: RiskView) -> str | None:
        if reduces_position(order, view):
            return None
        px = reference_price(order, view)
        if px is None:
            return _no_price(order)
        value = fixed.mul(px, order.quantity)
        if value >= self.limit:
            return None
        return f"trade value {_s(value)} is below min_trade_value {_s(self.limit)}"


class MaxTradeValue:
    """``max_trade_value``: largest notional of an order that opens or adds to a position."""

    code = "MAX_TRADE_VALUE"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, order: Order, view: RiskView) -> str | None:
        if reduces_position(order, view):
            return None
        px = reference_price(order, view)
        if px is None:
            return _no_price(order)
        value = fixed.mul(px, order.quantity)
        if value <= self.limit:
            return None
        return f"trade value {_s(value)} exceeds max_trade_value {_s(self.limit)}"


# -- exposure --------------------------------------------------------------------------------
class MaxPositionValue:
    """``max_position_pct``: one instrument's position value after the order, % of equity."""

    code = "MAX_POSITION_VALUE"

    def __init__(self, max_pct: float) -> None:
        self.max_pct = max_pct
        self.limit_raw = pct_raw(max_pct)

    def check(self, order: Order, view: RiskView) -> str | None:
        if reduces_position(order, view):
            return None
        px = reference_price(order, view)
        if px is None:
            return _no_price(order)
        equity = view.equity()
        if equity <= 0:
            return _no_equity(equity)
        iid = order.instrument_id
        value = exposure_by_instrument(order, view, px)[iid]
        if not above_pct(value, equity, self.limit_raw):
            return None
        return _value_limit_message(
            f"position value of {iid}", value, "max_position_pct", self.limit_raw, equity
        )


class MaxGrossExposure:
    """``max_gross_exposure_pct``: sum of all position values after the order, % of equity."""

    code = "MAX_GROSS_EXPOSURE"

    def __init__(self, max_pct: float) -> None:
        self.max_pct = max_pct
        self.limit_raw = pct_raw(max_pct)

    def check(self, order: Order, view: RiskView) -> str | None:
        if reduces_position(order, view):
            return None
        px = reference_price(order, view)
        if px is None:
            return _no_price(order)
        equity = view.equity()
        if equity <= 0:
            return _no_equity(equity)
        value = projected_exposure(order, view, px)
        if not above_pct(value, equity, self.limit_raw):
            return None
        return _value_limit_message(
            "gross exposure", value, "max_gross_exposure_pct", self.limit_raw, equity
        )


class MaxOpenPositions:
    """``max_open_positions``: instruments with a position or a working order, incl. this one."""

    code = "MAX_OPEN_POSITIONS"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, order: Order, view: RiskView) -> str | None:
        iid = order.instrument_id
        positions = view.open_positions()
        if iid in positions:
            return None
        working = view.working_qty()
        if iid in working:
            return None
        ids = set(positions)
        ids.update(working)
        count = len(ids) + 1
        if count <= self.limit:
            return None
        return (
            f"{iid} would be open position number {count}, above max_open_positions "
            f"{self.limit} (open: {', '.join(sorted(ids))})"
        )


class MaxSectorExposure:
    """``max_sector_exposure_pct``: gross value of one sector after the order, % of equity.

    ``sectors`` maps an instrument id or a symbol to its sector; an instrument that
    is not in the map is a sector of its own.
    """

    code = "MAX_SECTOR_EXPOSURE"

    def __init__(self, max_pct: float, sectors: Mapping[str, str]) -> None:
        self.max_pct = max_pct
        self.limit_raw = pct_raw(max_pct)
        self.sectors = dict(sectors)
        self._cache: dict[str, str] = {}

    def sector_of(self, instrument_id: str, view: RiskView) -> str:
        sector = self._cache.get(instrument_id)
        if sector is None:
            sector = self.sectors.get(instrument_id)
            if sector is None:
                inst = view.instruments.get(instrument_id)
                if inst is not None:
                    sector = self.sectors.get(inst.symbol)
            if sector is None:
                sector = f"<{instrument_id}>"
            self._cache[instrument_id] = sector
        return sector

    def check(self, order: Order, view: RiskView) -> str | None:
        if reduces_position(order, view):
            return None
        px = reference_price(order, view)
        if px is None:
            return _no_price(order)
        equity = view.equity()
        if equity <= 0:
            return _no_equity(equity)
        sector = self.sector_of(order.instrument_id, view)
        value = projected_exposure(
            order, view, px, lambda other: self.sector_of(other, view) == sector
        )
        if not above_pct(value, equity, self.limit_raw):
            return None
        return _value_limit_message(
            f"exposure of sector {sector}", value, "max_sector_exposure_pct", self.limit_raw, equity
        )


class MaxCorrelatedExposure:
    """``max_correlated_exposure_pct``: gross value of a correlated group, % of equity.

    Feed prices with :meth:`on_price`. Prices are sampled once per ``interval_ns``
    bucket of engine time (the last price of each instrument, carried forward);
    when a bucket closes, the correlation of simple returns over the last
    ``window`` samples is recomputed for every pair with at least ``min_periods``
    common returns, off the order path. Instruments whose ``|corr| >= threshold``
    are linked, and linked instruments (transitively) form one group. An
    instrument without correlated peers is a group of its own.
    """

    code = "MAX_CORRELATED_EXPOSURE"

    def __init__(
        self,
        max_pct: float,
        threshold: float = 0.8,
        window: int = 50,
        min_periods: int = 20,
        interval_ns: int = 60 * NS_PER_SECOND,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("correlation threshold must be in (0, 1]")
        if min_periods < 2 or window < min_periods:
            raise ValueError("need 2 <= min_periods <= window")
        if interval_ns <= 0:
            raise ValueError("correlation interval must be positive")
        self.max_pct = max_pct
        self.limit_raw = pct_raw(max_pct)
        self.threshold = threshold
        self.window = window
        self.min_periods = min_periods
        self.interval_ns = interval_ns
        self._bucket: int | None = None
        self._last: dict[str, float] = {}
        self._series: dict[str, deque[float]] = {}
        self._corr: dict[tuple[str, str], float] = {}
        self._group_of: dict[str, frozenset[str]] = {}

    # -- feed -----------------------------------------------------------------------------
    def on_price(self, instrument_id: str, ts: int, price: int) -> None:
        bucket = ts // self.interval_ns
        current = self._bucket
        if current is None:
            self._bucket = bucket
        elif bucket > current:
            self._close_bucket()
            self._bucket = bucket
        if price > 0:
            self._last[instrument_id] = price / fixed.SCALE

    def _close_bucket(self) -> None:
        series = self._series
        maxlen = self.window + 1
        for iid, px in self._last.items():
            s = series.get(iid)
            if s is None:
                s = series[iid] = deque(maxlen=maxlen)
            s.append(px)
        self._recompute()

    def _recompute(self) -> None:
        import numpy as np

        need = self.min_periods + 1
        series = {iid: list(s) for iid, s in self._series.items() if len(s) >= need}
        ids = sorted(series)
        corr: dict[tuple[str, str], float] = {}

        def returns(values: list[float]) -> Any:
            a = np.asarray(values, dtype=np.float64)
            return a[1:] / a[:-1] - 1.0

        full = [iid for iid in ids if len(series[iid]) == self.window + 1]
        with np.errstate(all="ignore"):
            if len(full) >= 2:
                matrix = np.corrcoef(np.array([returns(series[iid]) for iid in full]))
                for a in range(len(full)):
                    for b in range(a + 1, len(full)):
                        corr[(full[a], full[b])] = float(matrix[a, b])
            for i, a_id in enumerate(ids):
                for b_id in ids[i + 1 :]:
                    if (a_id, b_id) in corr:
                        continue
                    n = min(len(series[a_id]), len(series[b_id]))
                    pair = np.corrcoef(returns(series[a_id][-n:]), returns(series[b_id][-n:]))
                    corr[(a_id, b_id)] = float(pair[0, 1])
        self._corr = corr
        self._group_of = _groups(ids, corr, self.threshold)

    # -- queries --------------------------------------------------------------------------
    def correlation(self, a: str, b: str) -> float | None:
        """Last computed correlation of two instruments' returns (None if unknown or NaN)."""
        if a == b:
            return 1.0
        c = self._corr.get((a, b) if a < b else (b, a))
        return None if c is None or c != c else c

    def group(self, instrument_id: str) -> frozenset[str]:
        return self._group_of.get(instrument_id) or frozenset((instrument_id,))

    def groups(self) -> list[frozenset[str]]:
        """The correlated groups of two or more instruments."""
        return sorted(set(self._group_of.values()), key=sorted)

    def check(self, order: Order, view: RiskView) -> str | None:
        if reduces_position(order, view):
            return None
        px = reference_price(order, view)
        if px is None:
            return _no_price(order)
        equity = view.equity()
        if equity <= 0:
            return _no_equity(equity)
        group = self.group(order.instrument_id)
        values = exposure_by_instrument(order, view, px)
        value = sum(values.get(iid, 0) for iid in group)
        if not above_pct(value, equity, self.limit_raw):
            return None
        names = ", ".join(sorted(group))
        return _value_limit_message(
            "correlated exposure",
            value,
            "max_correlated_exposure_pct",
            self.limit_raw,
            equity,
            f" of group [{names}] (|corr| >= {self.threshold})",
        )


def _groups(
    ids: Iterable[str], corr: Mapping[tuple[str, str], float], threshold: float
) -> dict[str, frozenset[str]]:
    parent = {iid: iid for iid in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b), c in corr.items():
        if c == c and abs(c) >= threshold:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, set[str]] = {}
    for iid in parent:
        members.setdefault(find(iid), set()).add(iid)
    out: dict[str, frozenset[str]] = {}
    for group in members.values():
        if len(group) > 1:
            frozen = frozenset(group)
            for iid in group:
                out[iid] = frozen
    return out


# -- order rate ------------------------------------------------------------------------------
class MaxOrdersPerSecond:
    """``max_orders_per_second``: orders passed in any sliding second of engine time."""

    code = "ORDER_RATE_SECOND"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: deque[int] = deque()

    def check(self, order: Order, view: RiskView) -> str | None:
        times = self._times
        horizon = order.ts_init - NS_PER_SECOND
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) < self.limit or is_protective(order, view):
            return None
        return f"{len(times)} orders in the last second: max_orders_per_second {self.limit} reached"

    def on_pass(self, order: Order) -> None:
        self._times.append(order.ts_init)


class MaxOrdersPerDay:
    """``max_orders_per_day``: orders passed per UTC day."""

    code = "ORDER_RATE_DAY"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.day = -1
        self.count = 0

    def check(self, order: Order, view: RiskView) -> str | None:
        if order.ts_init // NS_PER_DAY != self.day or self.count < self.limit:
            return None
        if is_protective(order, view):
            return None
        return f"{self.count} orders today: max_orders_per_day {self.limit} reached"

    def on_pass(self, order: Order) -> None:
        day = order.ts_init // NS_PER_DAY
        if day != self.day:
            self.day = day
            self.count = 0
        self.count += 1


class MaxOrdersPerSymbolPerDay:
    """``max_orders_per_symbol_per_day``: orders passed per instrument per UTC day."""

    code = "ORDER_RATE_SYMBOL_DAY"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.day = -1
        self.counts: dict[str, int] = {}

    def check(self, order: Order, view: RiskView) -> str | None:
        if order.ts_init // NS_PER_DAY != self.day:
            return None
        count = self.counts.get(order.instrument_id, 0)
        if count < self.limit or is_protective(order, view):
            return None
        return (
            f"{count} orders on {order.instrument_id} today: "
            f"max_orders_per_symbol_per_day {self.limit} reached"
        )

    def on_pass(self, order: Order) -> None:
        day = order.ts_init // NS_PER_DAY
        if day != self.day:
            self.day = day
            self.counts = {}
        iid = order.instrument_id
        self.counts[iid] = self.counts.get(iid, 0) + 1


# -- price band ------------------------------------------------------------------------------
class PriceBand:
    """``price_band_pct``: limit and trigger prices within X % of the last price.

    Without a last price there is no band and the order passes.
    """

    code = "PRICE_BAND"

    def __init__(self, max_pct: float) -> None:
        self.max_pct = max_pct
        self.limit_raw = pct_raw(max_pct)

    def check(self, order: Order, view: RiskView) -> str | None:
        if order.price is None and order.trigger_price is None:
            return None
        last = view.last_price(order.instrument_id)
        if last is None:
            return None
        for label, px in (("limit price", order.price), ("trigger price", order.trigger_price)):
            if px is not None and above_pct(abs(px - last), last, self.limit_raw):
                return (
                    f"{label} {_s(px)} is {share_pct(abs(px - last), last)} from the last price "
                    f"{_s(last)}, outside price_band_pct {pct_str(self.limit_raw)}"
                )
        return None


# -- balance and margin ----------------------------------------------------------------------
class BalanceSufficient:
    """``check_balance``: the account can pay for the order.

    Cash account: a buy's notional plus fee (the higher of the maker and taker
    rates, as the venue locks it) must not exceed the free quote balance; a sell's
    quantity must not exceed the free base balance. Margin account: for an order
    that does not reduce a position, the margin of the worst-case gross exposure
    after the order (``gross / leverage``) plus the fee must not exceed equity.
    """

    code = "INSUFFICIENT_BALANCE"

    def check(self, order: Order, view: RiskView) -> str | None:
        inst = view.instruments[order.instrument_id]
        fee_bps = max(inst.taker_fee_bps, inst.maker_fee_bps)
        if view.account_type() is AccountType.MARGIN:
            return self._margin(order, view, fee_bps)
        if order.side > 0:
            px = reference_price(order, view)
            if px is None:
                return _no_price(order)
            notional = fixed.mul(px, order.quantity)
            fee = fixed.bps_of(notional, fee_bps)
            free = view.free_balance(inst.quote)
            if notional + fee <= free:
                return None
            return (
                f"buy notional {_s(notional)} + fee {_s(fee)} = {_s(notional + fee)} {inst.quote} "
                f"exceeds the free {inst.quote} balance {_s(free)} (check_balance)"
            )
        free = view.free_balance(inst.base)
        if order.quantity <= free:
            return None
        return (
            f"sell quantity {_s(order.quantity)} {inst.base} exceeds the free {inst.base} "
            f"balance {_s(free)} (check_balance)"
        )

    @staticmethod
    def _margin(order: Order, view: RiskView, fee_bps: int) -> str | None:
        if reduces_position(order, view):
            return None
        px = reference_price(order, view)
        if px is None:
            return _no_price(order)
        leverage = max(1, view.leverage())
        gross = projected_exposure(order, view, px)
        fee = fixed.bps_of(fixed.mul(px, order.quantity), fee_bps)
        required = -(-gross // leverage) + fee
        equity = view.equity()
        if required <= equity:
            return None
        return (
            f"margin required {_s(required)} (gross exposure {_s(gross)} / leverage {leverage} "
            f"+ fee {_s(fee)}) exceeds equity {_s(equity)} (check_balance)"
        )


# -- losses ----------------------------------------------------------------------------------
class _EquityLossRule:
    """A limit on how far equity has fallen; orders that reduce a position always pass.

    Equity reaches the rule through :meth:`on_equity` (fed by the engine) and at
    every check; subclasses say which fall they measure and how to word it.
    """

    code = ""

    def __init__(self, max_pct: float) -> None:
        self.max_pct = max_pct
        self.limit_raw = pct_raw(max_pct)
        self.watch = EquityWatch()

    def on_equity(self, ts: int, equity: int) -> None:
        self.watch.observe(ts, equity)

    def check(self, order: Order, view: RiskView) -> str | None:
        if reduces_position(order, view):
            return None
        equity = view.equity()
        self.watch.observe(order.ts_init, equity)
        return self.breach(equity)

    def breach(self, equity: int) -> str | None:
        raise NotImplementedError


class DailyLossLimit(_EquityLossRule):
    """``daily_loss_pct``: once equity is X % below the UTC day's first equity, orders
    that do not reduce a position are denied until the next UTC day."""

    code = "DAILY_LOSS_LIMIT"

    def breach(self, equity: int) -> str | None:
        watch = self.watch
        if not watch.daily_loss_reached(equity, self.limit_raw):
            return None
        start = watch.day_start or 0
        loss = start - equity
        return (
            f"daily loss {_s(loss)} ({share_pct(loss, start)} of the day's first equity "
            f"{_s(start)}) reached daily_loss_pct {pct_str(self.limit_raw)}"
        )


class MaxDrawdown(_EquityLossRule):
    """``max_drawdown_pct``: once equity is X % below its peak, orders that do not
    reduce a position are denied (until equity recovers above the limit)."""

    code = "MAX_DRAWDOWN"

    def breach(self, equity: int) -> str | None:
        watch = self.watch
        if not watch.drawdown_reached(equity, self.limit_raw):
            return None
        peak = watch.peak or 0
        dd = peak - equity
        return (
            f"drawdown {_s(dd)} ({share_pct(dd, peak)} below the peak equity {_s(peak)}) "
            f"reached max_drawdown_pct {pct_str(self.limit_raw)}"
        )
