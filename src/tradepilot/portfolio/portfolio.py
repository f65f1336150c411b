"""The engine's view of the account: positions, balances, marks, equity curve, round trips.

Everything here is folded from ``OrderFilled`` events and market prices; the
balance a strategy sees as *locked* is derived from the open orders rather than
stored, so it can never disagree with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tradepilot.model import fixed
from tradepilot.model.account import Account
from tradepilot.model.data import Bar
from tradepilot.model.enums import AccountType
from tradepilot.model.events import OrderFilled
from tradepilot.model.instrument import Instrument
from tradepilot.model.order import Order
from tradepilot.model.position import Position
from tradepilot.portfolio.locking import locked_by
from tradepilot.portfolio.settlement import settle_fill


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A position held from flat back to flat (raw ints; pnl is net of fees)."""

    instrument_id: str
    side: int
    entry_ts: int
    exit_ts: int
    max_qty: int
    entry_px: int
    exit_px: int
    pnl: int
    fees: int
    mae: int
    mfe: int


class _Trip:
    __slots__ = (
        "entry_px",
        "entry_ts",
        "exit_notional",
        "exit_qty",
        "fees",
        "hi",
        "lo",
        "max_qty",
        "realized",
        "side",
    )

    def __init__(self, side: int, ts: int, px: int) -> None:
        self.side = side
        self.entry_ts = ts
        self.entry_px = px
        self.hi = px
        self.lo = px
        self.max_qty = 0
        self.realized = 0
        self.fees = 0
        self.exit_notional = 0
        self.exit_qty = 0


class Portfolio:
    def __init__(
        self,
        account: Account,
        instruments: Iterable[Instrument],
        open_orders: Callable[[], Iterable[Order]] = tuple,
        sample_interval_ns: int = 3_600_000_000_000,
    ) -> None:
        self.account = account
        self.instruments = {i.id: i for i in instruments}
        self.positions: dict[str, Position] = {}
        self.last_px: dict[str, int] = {}
        self.round_trips: list[RoundTrip] = []
        self.equity_ts: list[int] = []
        self.equity_values: list[int] = []
        self.sample_interval_ns = sample_interval_ns
        self.next_sample_ts = 0
        self.fill_count = 0
        self.total_fees = 0
        self.traded_notional = 0
        self._open_orders = open_orders
        self._trips: dict[str, _Trip] = {}
        self._ccy_instrument = {
            i.base: i.id for i in self.instruments.values() if i.quote == account.base_currency
        }
        self.starting_equity: int | None = None

    # -- folding -------------------------------------------------------------------
    def on_fill(self, fill: OrderFilled) -> None:
        inst = self.instruments[fill.instrument_id]
        pos = self.positions.get(inst.id)
        if pos is None:
            pos = self.positions[inst.id] = Position(inst.id)
        was = pos.qty
        realized, notional, _ = settle_fill(
            self.account,
            pos,
            inst,
            fill.side,
            fill.last_qty,
            fill.last_px,
            fill.fee,
            fill.fee_currency,
            fill.ts,
        )
        self.fill_count += 1
        self.total_fees += fill.fee
        self.traded_notional += notional
        self.last_px.setdefault(inst.id, fill.last_px)
        self._track_trip(inst.id, pos, was, fill, realized, notional)

    def _track_trip(
        self, iid: str, pos: Position, was: int, fill: OrderFilled, realized: int, notional: int
    ) -> None:
        trip = self._trips.get(iid)
        if trip is None:
            trip = self._trips[iid] = _Trip(1 if pos.qty > 0 else -1, fill.ts, fill.last_px)
            trip.fees = fill.fee
            trip.max_qty = abs(pos.qty)
            return
        trip.fees += fill.fee
        trip.realized += realized
        trip.hi = max(trip.hi, fill.last_px)
        trip.lo = min(trip.lo, fill.last_px)
        if (was > 0) == (fill.side > 0):
            trip.max_qty = max(trip.max_qty, abs(pos.qty))
            return
        closed = min(fill.last_qty, abs(was))
        trip.exit_qty += closed
        trip.exit_notional += fixed.mul(fill.last_px, closed)
        if pos.qty == 0 or (pos.qty > 0) != (was > 0):
            self._finish_trip(iid, trip, pos, fill)

    def _finish_trip(self, iid: str, trip: _Trip, pos: Position, fill: OrderFilled) -> None:
        exit_px = fixed.div(trip.exit_notional, trip.exit_qty) if trip.exit_qty else fill.last_px
        # average entry: what the realised PnL implies over the closed quantity
        entry_px = exit_px - trip.side * fixed.div(trip.realized, trip.exit_qty or 1)
        qty = trip.max_qty
        if trip.side > 0:
            mae = fixed.mul(trip.lo - entry_px, qty)
            mfe = fixed.mul(trip.hi - entry_px, qty)
        else:
            mae = fixed.mul(entry_px - trip.hi, qty)
            mfe = fixed.mul(entry_px - trip.lo, qty)
        self.round_trips.append(
            RoundTrip(
                iid,
                trip.side,
                trip.entry_ts,
                fill.ts,
                qty,
                entry_px,
                exit_px,
                trip.realized - trip.fees,
                trip.fees,
                min(mae, 0),
                max(mfe, 0),
            )
        )
        del self._trips[iid]
        if pos.qty != 0:  # flipped: the rest opens a new trip
            new = self._trips[iid] = _Trip(1 if pos.qty > 0 else -1, fill.ts, fill.last_px)
            new.max_qty = abs(pos.qty)

    def on_bar(self, bar: Bar) -> None:
        self.last_px[bar.instrument_id] = bar.close
        trip = self._trips.get(bar.instrument_id)
        if trip is not None:
            if bar.high > trip.hi:
                trip.hi = bar.high
            if bar.low < trip.lo:
                trip.lo = bar.low

    def mark(self, instrument_id: str, price: int) -> None:
        self.last_px[instrument_id] = price
        trip = self._trips.get(instrument_id)
        if trip is not None:
            if price > trip.hi:
                trip.hi = price
            elif price < trip.lo:
                trip.lo = price

    # -- queries -----------------------------------------------------------------------
    def restore(
        self,
        positions: Mapping[str, Position],
        balances: Mapping[str, int],
        fill_count: int,
        total_fees: int,
        traded_notional: int,
    ) -> None:
        """Take over positions, balances and fill totals from a restored state (a restart)."""
        self.positions.update(positions)
        self.account.total = dict(balances)
        self.fill_count = fill_count
        self.total_fees = total_fees
        self.traded_notional = traded_notional

    @property
    def account_type(self) -> AccountType:
        return self.account.account_type

    def balance(self, currency: str) -> int:
        return self.account.balance(currency)

    def position_qty(self, instrument_id: str) -> int:
        pos = self.positions.get(instrument_id)
        return pos.qty if pos else 0

    def last_price(self, instrument_id: str) -> int | None:
        return self.last_px.get(instrument_id)

    def equity(self) -> int:
        """Account value in its base currency at the last known prices."""
        acct = self.account
        base = acct.base_currency
        if acct.account_type is AccountType.MARGIN:
            value = acct.total.get(base, 0)
            for iid, pos in self.positions.items():
                if pos.qty:
                    value += pos.unrealized_pnl(self.last_px.get(iid, pos.last_px))
            return value
        value = 0
        for ccy, amount in acct.total.items():
            if ccy == base:
                value += amount
            elif amount:
                quoted_by = self._ccy_instrument.get(ccy)
                px = self.last_px.get(quoted_by) if quoted_by else None
                if px is not None:
                    value += fixed.mul(amount, px)
        return value

    def locked(self, currency: str) -> int:
        """What open orders hold back, derived from them as the venue locks it (buys: quote
        plus the larger fee; cash sells: base; see :mod:`tradepilot.portfolio.locking`)."""
        cash = self.account.account_type is AccountType.CASH
        return locked_by(self._open_orders(), self.instruments, currency, cash, self.last_px)

    def free(self, currency: str) -> int:
        return self.account.balance(currency) - self.locked(currency)

    def sample(self, ts: int) -> None:
        """Append a point to the equity curve and schedule the next one."""
        eq = self.equity()
        if self.starting_equity is None:
            self.starting_equity = eq
        if self.equity_ts and self.equity_ts[-1] == ts:
            self.equity_values[-1] = eq
        else:
            self.equity_ts.append(ts)
            self.equity_values.append(eq)
        interval = self.sample_interval_ns
        self.next_sample_ts = (ts // interval + 1) * interval
