"""The simulated venue: order handling, balance locking and fills from market data.

It is the backtest venue and the paper venue. It sees the same market data as
the strategies and fills orders by the kind of data it is given:

* **bars** - no look-ahead: an order that arrives during or at the close of a bar
  is first eligible on the next bar. Market orders fill at that bar's open (plus
  ``bar_slippage_ticks``). Limits and stops follow the bar's *intrabar path*:
  ``open -> low -> high -> close`` for a bar that closed at or above its open,
  ``open -> high -> low -> close`` for one that closed below. A limit that the open
  already crosses fills at the open (a gap gives price improvement).
* **trade ticks** - market orders fill at the next trade (plus
  ``market_slippage_ticks``); a resting limit fills at its price when a trade
  reaches it (``touch``) or passes it (``through``); a limit that is marketable on
  arrival fills at once at the last trade price, as a taker.
* **L2 book** - market orders walk the book level by level (one fill per level,
  VWAP overall); a resting limit joins the back of its price level's queue and
  fills from the trades that reach it once the volume ahead of it has traded or been
  cancelled; when the book crosses its price it gets a capped allowance, never more
  than the market traded at or through its price (see :mod:`.book_matching`).

The matching models live in :mod:`.bar_matching`, :mod:`.tick_matching` and
:mod:`.book_matching`, the order intake in :mod:`.intake`, the shared state and
rules (locking, settlement of a fill) in :mod:`.state`.

Every order arrives after the latency model's delay. Every refusal is an
``OrderRejected`` (or ``OrderCancelRejected``/``OrderModifyRejected``) with a reason.
"""

from __future__ import annotations

from tradepilot.model.data import QuoteTick, TradeTick
from tradepilot.model.events import OrderFilled
from tradepilot.venues.base import Emit, Scheduler, VenueOrderReport
from tradepilot.venues.sim.bar_matching import BarMatching
from tradepilot.venues.sim.book_matching import BookMatching
from tradepilot.venues.sim.intake import OrderIntake
from tradepilot.venues.sim.tick_matching import TradeMatching

__all__ = ["Emit", "Scheduler", "SimulatedVenue", "VenueOrderReport"]


class SimulatedVenue(OrderIntake, BarMatching, TradeMatching, BookMatching):
    """A deterministic exchange simulator for one account; implements ``venues.base.Venue``.

    Its market data is the session's own: the kernel hands every item to it before
    the strategies see it, so :meth:`subscribe` only records the wish.
    """

    _subscribed: frozenset[str] = frozenset()

    def subscribe(self, instrument_id: str) -> None:
        self._subscribed = self._subscribed | {instrument_id}

    def subscriptions(self) -> frozenset[str]:
        return self._subscribed

    def reference_price(self, instrument_id: str) -> int | None:
        return self.last_px.get(instrument_id)

    # -- queries (reconciliation and tests) -----------------------------------------
    def open_order_ids(self, instrument_id: str | None = None) -> list[str]:
        if instrument_id is None:
            return [w.cid for ws in self._working.values() for w in ws]
        return [w.cid for w in self._working.get(instrument_id, [])]

    def order_report(self, client_order_id: str) -> VenueOrderReport | None:
        """What the venue knows of an order, or None if it never arrived."""
        w = self._by_cid.get(client_order_id)
        if w is not None:
            return VenueOrderReport(
                client_order_id,
                w.instrument.id,
                "OPEN",
                w.filled,
                w.leaves,
                self._venue_ids.get(client_order_id, ""),
                "",
                w.qty,
                w.price,
            )
        closed = self._closed.get(client_order_id)
        if closed is None:
            return None
        filled = sum(f.last_qty for f in self.trade_log if f.client_order_id == client_order_id)
        return VenueOrderReport(
            client_order_id,
            "",
            closed[0],
            filled,
            0,
            self._venue_ids.get(client_order_id, ""),
            closed[1],
            filled if closed[0] == "FILLED" else 0,
        )

    def open_orders(self) -> list[VenueOrderReport]:
        out = []
        for cid in self.open_order_ids():
            report = self.order_report(cid)
            if report is not None:
                out.append(report)
        return out

    def fills_since(self, index: int = 0) -> list[OrderFilled]:
        """The venue's own record of executions, from position ``index`` of its trade log."""
        return self.trade_log[index:]

    def balances(self) -> dict[str, int]:
        return dict(self.account.total)

    def position_quantities(self) -> dict[str, int]:
        return {iid: p.qty for iid, p in self.positions.items() if p.qty}

    # -- trade ticks --------------------------------------------------------------------------
    def on_trade(self, tick: TradeTick) -> None:
        iid = tick.instrument_id
        if iid in self.books:
            self._remember_trade(tick)
        ws = self._working.get(iid)
        if ws:
            if iid in self.books:
                self._match_trade_on_book(ws, tick)
            else:
                self._match_trade(ws, tick)
        self.last_px[iid] = tick.price
        self._kind[iid] = "trade"

    def on_quote(self, quote: QuoteTick) -> None:
        if quote.instrument_id not in self.books:
            self.last_px[quote.instrument_id] = (quote.bid + quote.ask) // 2
