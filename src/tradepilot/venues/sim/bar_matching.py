"""Matching on bars, without look-ahead.

A bar is seen at its close, so an order decided on a bar arrives (after the latency
model's delay) during a later bar. An order is matched on the bar during which it
arrived, or on the next one if it arrived at or after that bar's close. Market orders
fill at that bar's open (plus ``bar_slippage_ticks``). Limits and stops follow the
bar's *intrabar path*: ``open -> low -> high -> close`` for a bar that closed at or
above its open, ``open -> high -> low -> close`` for one that closed below. A limit
that the open already crosses fills at the open (a gap gives price improvement).

**Fill times.** A fill at the open is stamped when it happens: at the open, or at the
order's arrival if that is later (``open + latency`` for an order decided at the
previous close). A fill further along the path is stamped at the bar's close, the
first moment a bar shows that its range reached the price.
"""

from __future__ import annotations

from tradepilot.model.data import Bar
from tradepilot.model.enums import OrderType
from tradepilot.venues.sim.state import VenueState
from tradepilot.venues.sim.working import WorkingOrder

_STOP_MARKET = OrderType.STOP_MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT


class BarMatching(VenueState):
    """Fills working orders along each bar's intrabar path."""

    def on_bar(self, bar: Bar) -> None:
        iid = bar.instrument_id
        ws = self._working.get(iid)
        if ws:
            self._match_bar(ws, bar)
        self.last_px[iid] = bar.close
        self._kind[iid] = "bar"

    def _match_bar(self, ws: list[WorkingOrder], bar: Bar) -> None:
        self._expire(ws, bar.ts_open)
        inst = ws[0].instrument if ws else None
        if inst is None:
            return
        budget: int | None = None
        part = self.fill.bar_volume_participation
        if part is not None:
            budget = int(bar.volume * part) // inst.lot_size * inst.lot_size
        up = bar.close >= bar.open
        path = (
            (bar.open, bar.low, bar.high, bar.close)
            if up
            else (bar.open, bar.high, bar.low, bar.close)
        )
        slip = self.fill.bar_slippage_ticks * inst.tick_size
        ts_open = bar.ts_open
        for w in list(ws):
            if w.cid not in self._by_cid or w.ts_arrived >= bar.ts:
                continue  # arrived at or after this bar's close: first eligible on the next bar
            result = self._bar_fill_price(w, path)
            if result is not None:
                px, taker, at_open = result
                at = max(ts_open, w.ts_arrived) if at_open else bar.ts
                if taker and w.is_market:
                    px = px + slip if w.side > 0 else max(inst.tick_size, px - slip)
                qty = w.leaves
                if budget is not None:
                    qty = min(qty, budget)
                    budget -= qty
                if qty > 0:
                    self._fill(w, qty, px, taker, at)
            self._end_immediate(w)

    def _bar_fill_price(
        self, w: WorkingOrder, path: tuple[int, int, int, int]
    ) -> tuple[int, bool, bool] | None:
        """Where along the intrabar path the order fills, whether as taker, and whether at
        the open."""
        start = 0
        t = w.order_type
        if t in (_STOP_MARKET, _STOP_LIMIT) and not w.triggered:
            assert w.trigger is not None
            hit = _first_reach(path, w.trigger, w.side > 0, strict=False)
            if hit is None:
                return None
            start, trig_px = hit
            self._trigger(w)
            if t is _STOP_MARKET:
                return trig_px, True, start == 0
            path = (trig_px, *path[start + 1 :])  # type: ignore[assignment]
            start = 0
            w.taker = w.price is not None and (
                trig_px <= w.price if w.side > 0 else trig_px >= w.price
            )
        if w.is_market:
            return path[0], True, start == 0
        assert w.price is not None
        hit = _first_reach(path, w.price, w.side < 0, strict=self._limit_through)
        if hit is None:
            return None
        idx, px = hit
        if idx == 0:
            # the bar opened through the limit: fill at the open, a price improvement
            return path[0], w.taker, start == 0
        return px, False, False


def _first_reach(
    path: tuple[int, ...], level: int, upward: bool, strict: bool
) -> tuple[int, int] | None:
    """First point where a monotone-segment price path reaches ``level``.

    Returns ``(index, price)``: index 0 means the path starts at or beyond the
    level (price = the start); otherwise the level is crossed on the way to
    ``path[index]`` and the price is the level itself.
    """
    if upward:
        for i, p in enumerate(path):
            if p > level or (p == level and not strict):
                return (0, p) if i == 0 else (i, level)
    else:
        for i, p in enumerate(path):
            if p < level or (p == level and not strict):
                return (0, p) if i == 0 else (i, level)
    return None
