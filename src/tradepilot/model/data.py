"""Market data: bars, trade ticks, quotes and L2 book updates.

All prices and sizes are raw fixed-point ints (see :mod:`tradepilot.model.fixed`);
``ts`` is the time the engine sees the item, in integer nanoseconds since the
Unix epoch (UTC). For a bar that is its *close* time: a bar is only known once
it has closed, which is what keeps bar backtests free of look-ahead.

The classes are ``msgspec.Struct`` with ``gc=False``: created in C, immutable,
and cheap enough to build a million per second.
"""

from __future__ import annotations

import msgspec


class Bar(msgspec.Struct, frozen=True, gc=False):
    instrument_id: str
    ts: int  # close time (ns)
    ts_open: int  # open time (ns)
    open: int
    high: int
    low: int
    close: int
    volume: int


class TradeTick(msgspec.Struct, frozen=True, gc=False):
    instrument_id: str
    ts: int
    price: int
    size: int
    aggressor: int  # +1 buyer took liquidity, -1 seller, 0 unknown
    trade_id: str = ""


class QuoteTick(msgspec.Struct, frozen=True, gc=False):
    instrument_id: str
    ts: int
    bid: int
    ask: int
    bid_size: int
    ask_size: int


class BookLevel(msgspec.Struct, frozen=True, gc=False, array_like=True):
    price: int
    size: int


class BookSnapshot(msgspec.Struct, frozen=True):
    """A full L2 book: replaces whatever the book held."""

    instrument_id: str
    ts: int
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    update_id: int = 0


class BookDeltas(msgspec.Struct, frozen=True):
    """A batch of L2 level changes applied atomically; size 0 removes a level."""

    instrument_id: str
    ts: int
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    update_id: int = 0  # final update id of the batch
    first_update_id: int = 0


MarketData = Bar | TradeTick | QuoteTick | BookSnapshot | BookDeltas
