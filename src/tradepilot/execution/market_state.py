"""What the algorithm host knows of one instrument's market: book or quotes, last price,
traded volume in a sliding window (for POV and VWAP-like algorithms)."""

from __future__ import annotations

from collections import deque

from tradepilot.core.time import NS_PER_SECOND
from tradepilot.model.book import OrderBook
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, QuoteTick, TradeTick

__all__ = ["MarketState"]


class MarketState:
    """What the algorithm engine knows of one instrument's market."""

    __slots__ = ("_buckets", "ask", "bid", "book", "last_price", "volume", "window_ns")

    def __init__(self, window_ns: int) -> None:
        self.book: OrderBook | None = None
        self.bid: int | None = None  # from quotes, when there is no book
        self.ask: int | None = None
        self.last_price: int | None = None  # last trade, bar close (or quote mid)
        self.volume = 0  # traded volume seen since the start (trades or bars)
        self.window_ns = window_ns
        self._buckets: deque[list[int]] = deque()  # [second, volume], oldest first

    # -- updates -------------------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        self.last_price = bar.close
        self._add_volume(bar.ts, bar.volume)

    def on_trade(self, tick: TradeTick) -> None:
        self.last_price = tick.price
        self._add_volume(tick.ts, tick.size)

    def on_quote(self, quote: QuoteTick) -> None:
        self.bid, self.ask = quote.bid, quote.ask
        if self.last_price is None:
            self.last_price = (quote.bid + quote.ask) // 2

    def on_book(self, update: BookSnapshot | BookDeltas) -> None:
        if self.book is None:
            if not isinstance(update, BookSnapshot):
                return  # deltas before the first snapshot mean nothing
            self.book = OrderBook(update.instrument_id)
        self.book.apply(update)

    def _add_volume(self, ts: int, volume: int) -> None:
        self.volume += volume
        second = ts // NS_PER_SECOND
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            buckets[-1][1] += volume
        else:
            buckets.append([second, volume])
        horizon = second - self.window_ns // NS_PER_SECOND
        while buckets and buckets[0][0] < horizon:
            buckets.popleft()

    # -- queries -------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        if self.book is not None:
            return self.book.best_bid_price()
        return self.bid

    def best_ask(self) -> int | None:
        if self.book is not None:
            return self.book.best_ask_price()
        return self.ask

    def mid(self) -> int | None:
        if self.book is not None:
            return self.book.mid()
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) // 2
        return None

    def reference_price(self) -> int | None:
        """Book (or quote) mid if there is one, else the last price."""
        mid = self.mid()
        return mid if mid is not None else self.last_price

    def recent_volume(self, now: int, window_ns: int) -> int:
        """Volume traded in the last ``window_ns`` (at most the configured window)."""
        since = (now - window_ns) // NS_PER_SECOND
        return sum(v for s, v in self._buckets if s > since)

    def depth(self, side_taking: int, within_bps: float) -> int | None:
        """Book size a taker on ``side_taking`` could take within ``within_bps`` of the touch."""
        book = self.book
        if book is None:
            return None
        best = book.best_ask_price() if side_taking > 0 else book.best_bid_price()
        if best is None:
            return 0
        reach = round(best * within_bps / 10_000)
        limit = best + reach if side_taking > 0 else best - reach
        return sum(q for _, q in book.walk(side_taking, 1 << 62, limit))
