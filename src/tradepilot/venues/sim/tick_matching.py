"""Matching on trade ticks (no book).

Market orders fill at the next trade (plus ``market_slippage_ticks``); a resting
limit fills at its price when a trade reaches it (``touch``) or passes it
(``through``); a limit that is marketable on arrival fills at once at the last
trade price, as a taker (see :mod:`.intake`).
"""

from __future__ import annotations

from tradepilot.model.data import TradeTick
from tradepilot.model.enums import OrderType
from tradepilot.venues.sim.state import VenueState
from tradepilot.venues.sim.working import WorkingOrder

_STOP_MARKET = OrderType.STOP_MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT


class TradeMatching(VenueState):
    """Fills working orders against each trade print."""

    def _match_trade(self, ws: list[WorkingOrder], tick: TradeTick) -> None:
        self._expire(ws, tick.ts)
        price = tick.price
        available = tick.size if self.fill.cap_limit_fills_to_trade_size else None
        through = self._limit_through
        for w in list(ws):
            if w.cid not in self._by_cid:
                continue
            inst = w.instrument
            if w.order_type in (_STOP_MARKET, _STOP_LIMIT) and not w.triggered:
                assert w.trigger is not None
                if not (price >= w.trigger if w.side > 0 else price <= w.trigger):
                    continue
                self._trigger(w)
                if w.order_type is _STOP_LIMIT:
                    w.taker = True
            if w.is_market:
                slip = self.fill.market_slippage_ticks * inst.tick_size
                px = price + slip if w.side > 0 else max(inst.tick_size, price - slip)
                self._fill(w, w.leaves, px, taker=True)
                continue
            assert w.price is not None
            limit = w.price
            if w.side > 0:
                hit = price < limit if through else price <= limit
            else:
                hit = price > limit if through else price >= limit
            if hit:
                taker = w.taker
                px = price if taker else limit
                qty = w.leaves if available is None or taker else min(w.leaves, available)
                if qty > 0:
                    self._fill(w, qty, px, taker)
                    if available is not None and not taker:
                        available -= qty
            w.taker = False
            self._end_immediate(w)
