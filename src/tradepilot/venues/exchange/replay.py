"""Market-data replay for the local exchange: real recorded data paced by the wall clock.

The replay maps wall-clock time to data time: ``data_now = data_start + (wall -
wall_start) * speed``. Every item whose ``ts`` is at or before ``data_now`` is
due; the exchange applies it to the public market state, to every account's
simulated venue and to the market-data streams, in that order. When the data
runs out the market stays as it was (the book no longer moves).

Two sources are supported:

* Binance L2 capture sessions (``book/binance_<market>_<symbol>_<date>``): the
  snapshot, the diff-depth messages (their ``U``/``u`` ids are kept, so a REST
  snapshot and the diff stream chain exactly as on Binance), trades and
  best bid/offer.
* Bars (OHLCV, e.g. the equity minute trade bars): one symbol or several of a
  multi-symbol file, for the Alpaca dialect.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tradepilot.data.book_loader import iter_book_session_events, load_book_session
from tradepilot.data.loaders import load_bars
from tradepilot.model.data import Bar, BookDeltas, BookSnapshot, MarketData, QuoteTick, TradeTick
from tradepilot.model.enums import AssetClass
from tradepilot.model.instrument import Instrument

__all__ = [
    "BINANCE_FILTERS",
    "MarketData",
    "Replay",
    "ReplayData",
    "binance_instrument",
    "equity_instrument",
    "load_bar_data",
    "load_book_data",
]

BINANCE_VENUE = "BINANCE"
ALPACA_VENUE = "ALPACA"

#: Binance spot filters of the symbols in the shared data (tick, step, min qty,
#: min notional), as published by Binance's exchangeInfo for these pairs.
BINANCE_FILTERS: dict[str, tuple[str, str, str, str]] = {
    "BTCUSDT": ("0.01", "0.00001", "0.00001", "5"),
    "ETHUSDT": ("0.01", "0.0001", "0.0001", "5"),
}
_DEFAULT_FILTER = ("0.01", "0.0001", "0.0001", "5")
_QUOTES = ("USDT", "USDC", "BUSD", "BTC", "ETH", "BNB")


def binance_instrument(symbol: str, fee_bps: str = "10") -> Instrument:
    symbol = symbol.upper()
    quote = next((q for q in _QUOTES if symbol.endswith(q) and symbol != q), "USDT")
    base = symbol[: -len(quote)]
    tick, step, min_qty, min_notional = BINANCE_FILTERS.get(symbol, _DEFAULT_FILTER)
    return Instrument.create(
        symbol, BINANCE_VENUE, base, quote, tick, step, min_qty, min_notional, fee_bps, fee_bps
    )


def equity_instrument(symbol: str) -> Instrument:
    return Instrument.create(
        symbol.upper(), ALPACA_VENUE, symbol.upper(), "USD", "0.01", "1", "1", "0",
        asset_class=AssetClass.EQUITY,
    )  # fmt: skip


@dataclass
class ReplayData:
    """Instruments and their market data, merged in time order."""

    instruments: list[Instrument]
    events: list[MarketData]
    kind: str  # "book" | "bars"
    bar_interval_ns: int = 0
    history: dict[str, list[Bar]] = field(default_factory=dict)  # bars before the start

    @property
    def start_ns(self) -> int:
        return self.events[0].ts if self.events else 0

    @property
    def end_ns(self) -> int:
        return self.events[-1].ts if self.events else 0


_SESSION = re.compile(r"binance_(spot|usdm)_([a-z0-9]+)_\d{8}$")


def load_book_data(folders: Sequence[str | Path]) -> ReplayData:
    """Load Binance L2 capture sessions (one folder per symbol) for replay."""
    instruments: list[Instrument] = []
    streams: list[list[MarketData]] = []
    for folder in folders:
        path = Path(folder)
        m = _SESSION.search(path.name)
        if m is None:
            raise ValueError(f"{path}: not a book/binance_<market>_<symbol>_<date> session folder")
        inst = binance_instrument(m.group(2))
        if any(i.symbol == inst.symbol for i in instruments):
            raise ValueError(f"{path}: {inst.symbol} is already loaded")
        session = load_book_session(path, inst.id)
        instruments.append(inst)
        streams.append(list(iter_book_session_events(session)))
    events = list(heapq.merge(*streams, key=lambda e: e.ts))
    return ReplayData(instruments, events, "book")


def load_bar_data(
    path: str | Path,
    symbols: Iterable[str],
    day: str | None = None,
    history_days: int = 0,
) -> ReplayData:
    """Load bars of ``symbols`` from one (multi-symbol) file, optionally for one UTC day.

    Bars of earlier days (``history_days`` of them at most) are kept as history,
    served by the bars endpoint but not replayed.
    """
    instruments: list[Instrument] = []
    streams: list[list[MarketData]] = []
    history: dict[str, list[Bar]] = {}
    interval = 0
    for symbol in symbols:
        inst = equity_instrument(symbol)
        series = load_bars(path, inst.id, symbol=inst.symbol)
        interval = series.interval_ns
        bars = list(series)
        if day is not None:
            replay = [b for b in bars if _utc_day(b.ts_open) == day]
            if not replay:
                raise ValueError(f"{path}: no {inst.symbol} bars on {day}")
        else:
            first = _utc_day(bars[0].ts_open)
            replay = [b for b in bars if _utc_day(b.ts_open) == first]
        start = replay[0].ts_open
        before = [b for b in bars if b.ts_open < start]
        days = sorted({_utc_day(b.ts_open) for b in before})[-history_days:] if history_days else []
        history[inst.symbol] = [b for b in before if _utc_day(b.ts_open) in days]
        instruments.append(inst)
        streams.append(list(replay))
    events = list(heapq.merge(*streams, key=lambda e: e.ts))
    return ReplayData(instruments, events, "bars", interval, history)


def _utc_day(ts_ns: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(ts_ns / 1e9, _dt.UTC).strftime("%Y-%m-%d")


class Replay:
    """Paces a :class:`ReplayData` by the wall clock at ``speed`` times real time."""

    def __init__(self, data: ReplayData, speed: float, wall_start_ns: int, skip_ns: int = 0):
        if not speed > 0:
            raise ValueError("speed must be positive")
        self.data = data
        self.speed = speed
        self.wall_start_ns = wall_start_ns
        self.data_start_ns = data.start_ns + skip_ns
        self._events = data.events
        self._next = 0
        self.paused = False

    def data_now(self, wall_ns: int) -> int:
        return self.data_start_ns + int((wall_ns - self.wall_start_ns) * self.speed)

    def wall_of(self, data_ts: int) -> int:
        """The wall-clock time at which a data timestamp is replayed."""
        return self.wall_start_ns + int((data_ts - self.data_start_ns) / self.speed)

    @property
    def finished(self) -> bool:
        return self._next >= len(self._events)

    @property
    def position(self) -> int:
        return self._next

    def due(self, wall_ns: int, limit: int = 50_000) -> list[MarketData]:
        """Items due at ``wall_ns`` (at most ``limit``; the rest come on the next call)."""
        if self.paused:
            return []
        now = self.data_now(wall_ns)
        events = self._events
        i = self._next
        stop = min(len(events), i + limit)
        j = i
        while j < stop and events[j].ts <= now:
            j += 1
        self._next = j
        return events[i:j]


def is_book(item: MarketData) -> bool:
    return isinstance(item, BookSnapshot | BookDeltas)


def is_trade(item: MarketData) -> bool:
    return isinstance(item, TradeTick)


def is_quote(item: MarketData) -> bool:
    return isinstance(item, QuoteTick)
