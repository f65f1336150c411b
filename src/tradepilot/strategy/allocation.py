"""Capital per strategy, and what each strategy holds.

Several strategies can share one account. Each is registered with a weight
(e.g. 0.3 / 0.3 / 0.4); its *capital* is its share of the account's equity at
the start of the session plus its own profit and loss since (realised, net of
fees, and unrealised at the last prices). A strategy sizes within its capital,
so one strategy's losses never shrink another's budget.

The account nets positions across strategies; a :class:`Ledger` keeps each
strategy's own positions, folded from the fills of its orders only, and the
returns of its closed trades (for Kelly statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tradepilot.model import fixed
from tradepilot.model.events import OrderFilled
from tradepilot.model.position import Position
from tradepilot.strategy.sizing import TradeStats

PriceOf = Callable[[str], int | None]


class Ledger:
    """One strategy's positions and closed-trade returns, folded from its own fills."""

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.trade_returns: list[float] = []
        self.fees = 0
        self._trip: dict[str, tuple[int, int, int]] = {}  # iid -> (max cost, pnl0, fees0)

    def qty(self, instrument_id: str) -> int:
        pos = self.positions.get(instrument_id)
        return pos.qty if pos else 0

    def position(self, instrument_id: str) -> Position | None:
        return self.positions.get(instrument_id)

    def on_fill(self, fill: OrderFilled) -> tuple[int, int]:
        """Apply a fill; return the position before and after it."""
        iid = fill.instrument_id
        pos = self.positions.get(iid)
        if pos is None:
            pos = self.positions[iid] = Position(iid)
        before = pos.qty
        pnl_before, fees_before = pos.realized_pnl, pos.fees
        pos.apply_fill(fill.side, fill.last_qty, fill.last_px, fill.fee, fill.ts)
        self.fees += fill.fee
        after = pos.qty
        if before == 0:
            if after:
                self._trip[iid] = (abs(pos.cost), pnl_before, fees_before)
        elif after == 0 or (after > 0) != (before > 0):
            self._close_trip(iid, pos)
            if after:  # flipped: the rest of the fill opens a new trip
                self._trip[iid] = (abs(pos.cost), pos.realized_pnl, pos.fees)
        elif abs(after) > abs(before) and iid in self._trip:
            cost0, pnl0, fees0 = self._trip[iid]
            self._trip[iid] = (max(cost0, abs(pos.cost)), pnl0, fees0)
        return before, after

    def _close_trip(self, iid: str, pos: Position) -> None:
        trip = self._trip.pop(iid, None)
        if trip is None:
            return
        cost, pnl0, fees0 = trip
        if cost > 0:
            net = (pos.realized_pnl - pnl0) - (pos.fees - fees0)
            self.trade_returns.append(net / cost)

    def exposure(self, price_of: PriceOf) -> int:
        """Gross value of the positions at the last prices (their average price if none)."""
        total = 0
        for iid, pos in self.positions.items():
            if pos.qty:
                px = price_of(iid) or pos.avg_px or 0
                total += abs(fixed.mul(pos.qty, px))
        return total

    def pnl(self, price_of: PriceOf) -> int:
        """Realised PnL net of fees plus unrealised PnL at the last prices."""
        total = -self.fees
        for iid, pos in self.positions.items():
            total += pos.realized_pnl
            if pos.qty:
                px = price_of(iid)
                if px is not None:
                    total += pos.unrealized_pnl(px)
        return total

    def stats(self) -> TradeStats:
        return TradeStats.from_returns(self.trade_returns)


class CapitalAllocator:
    """Capital weights of the strategies sharing an account (they may sum to at most 1)."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self.weights: dict[str, float] = {}
        self.start_equity: int | None = None
        for sid, weight in (weights or {}).items():
            self.register(sid, weight)

    def register(self, strategy_id: str, weight: float) -> None:
        if not 0 < weight <= 1:
            raise ValueError(f"allocation of {strategy_id} must be in (0, 1], got {weight}")
        total = sum(w for s, w in self.weights.items() if s != strategy_id) + weight
        if total > 1 + 1e-9:
            raise ValueError(f"allocations add up to {total:.4f}, more than 100 %")
        self.weights[strategy_id] = weight

    def start(self, equity: int) -> None:
        """Fix the equity the allocations are shares of (the first call wins)."""
        if self.start_equity is None:
            self.start_equity = equity

    def weight(self, strategy_id: str) -> float:
        if not self.weights:
            return 1.0
        try:
            return self.weights[strategy_id]
        except KeyError:
            raise ValueError(f"strategy {strategy_id} has no capital allocation") from None

    def capital(self, strategy_id: str, pnl: int = 0, equity: int | None = None) -> int:
        """``weight * start equity + the strategy's own PnL`` (raw)."""
        base = self.start_equity if self.start_equity is not None else equity
        if base is None:
            raise RuntimeError("the allocator has not been started")
        return round(base * self.weight(strategy_id)) + pnl
