"""Market price series for execution analytics and reports.

A :class:`PriceSeries` is a pair of arrays ``ts`` (int64 ns, non-decreasing) and ``price``
(float64, in quote currency per unit, e.g. ``61837.63``), optionally with ``size`` (float64,
base units traded at that point). Without sizes it is a *reference price* series - mids,
last trades or bar closes - used for arrival, decision and end prices and for markouts.
With sizes it is a *trade* series, used for the interval VWAP and the participation rate.

Lookups are "as of": the value at ``t`` is the last point with ``ts <= t``. Nothing here
interpolates.

The loaders at the bottom turn the repository's data sources (catalog data sets, trade
files and ``book/binance_*`` L2 sessions) into series; :func:`load_market` picks one by
name or path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tradepilot.data.loaders import BarSeries, TradeSeries
from tradepilot.model import fixed
from tradepilot.model.data import QuoteTick, TradeTick

__all__ = [
    "MarketSeries",
    "PriceInput",
    "PriceSeries",
    "load_market",
    "market_from_bars",
    "market_from_book",
    "market_from_book_session",
    "market_from_run_config",
    "market_from_series",
    "market_from_trades",
    "run_config",
    "series_for",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NAN = float("nan")


@dataclass(frozen=True, slots=True, eq=False)
class PriceSeries:
    """Prices over time, optionally with traded sizes (see the module docstring)."""

    ts: IntArray
    price: FloatArray
    size: FloatArray | None = None

    def __post_init__(self) -> None:
        ts = np.asarray(self.ts, dtype=np.int64)
        price = np.asarray(self.price, dtype=np.float64)
        if ts.ndim != 1 or price.ndim != 1:
            raise ValueError("ts and price must be 1-D arrays")
        if ts.shape != price.shape:
            raise ValueError(f"ts and price differ in length: {ts.size} != {price.size}")
        if ts.size > 1 and bool(np.any(np.diff(ts) < 0)):
            raise ValueError("ts must be non-decreasing")
        if price.size and not bool(np.all(np.isfinite(price) & (price > 0.0))):
            raise ValueError("prices must be finite and positive")
        object.__setattr__(self, "ts", ts)
        object.__setattr__(self, "price", price)
        if self.size is not None:
            size = np.asarray(self.size, dtype=np.float64)
            if size.shape != ts.shape:
                raise ValueError(f"ts and size differ in length: {ts.size} != {size.size}")
            if size.size and not bool(np.all(np.isfinite(size) & (size >= 0.0))):
                raise ValueError("sizes must be finite and non-negative")
            object.__setattr__(self, "size", size)

    @classmethod
    def of(
        cls,
        ts: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike | None = None,
    ) -> PriceSeries:
        """Build a series from array-likes (converted to int64 / float64 and checked)."""
        return cls(
            np.asarray(ts, dtype=np.int64),
            np.asarray(price, dtype=np.float64),
            None if size is None else np.asarray(size, dtype=np.float64),
        )

    def __len__(self) -> int:
        return int(self.ts.size)

    @property
    def has_sizes(self) -> bool:
        return self.size is not None

    def at(self, ts: int) -> float | None:
        """The last price at or before ``ts``; ``None`` before the first point."""
        i = int(np.searchsorted(self.ts, ts, side="right")) - 1
        return float(self.price[i]) if i >= 0 else None

    def at_many(self, ts: npt.ArrayLike) -> FloatArray:
        """:meth:`at` for many times at once (NaN before the first point)."""
        t = np.asarray(ts, dtype=np.int64)
        idx = np.searchsorted(self.ts, t, side="right") - 1
        out = np.full(t.shape, _NAN, dtype=np.float64)
        ok = idx >= 0
        out[ok] = self.price[idx[ok]]
        return out

    def covers(self, ts: int) -> bool:
        """True if ``ts`` lies within ``[first ts, last ts]`` of the series."""
        return bool(self.ts.size) and int(self.ts[0]) <= ts <= int(self.ts[-1])

    def window(self, t0: int, t1: int) -> slice:
        """Index slice of the points with ``t0 <= ts <= t1``."""
        lo = int(np.searchsorted(self.ts, t0, side="left"))
        hi = int(np.searchsorted(self.ts, t1, side="right"))
        return slice(lo, max(lo, hi))

    def vwap(self, t0: int, t1: int) -> tuple[float, float]:
        """``(VWAP, volume)`` of the points with ``t0 <= ts <= t1``.

        ``VWAP = sum(price * size) / sum(size)``; NaN when there are no sizes or no volume.
        """
        if self.size is None:
            return _NAN, _NAN
        w = self.window(t0, t1)
        size = self.size[w]
        volume = float(size.sum())
        if volume <= 0.0:
            return _NAN, volume
        return float(np.dot(self.price[w], size) / volume), volume

    def volume(self, t0: int, t1: int) -> float:
        """Traded size with ``t0 <= ts <= t1`` (NaN without sizes)."""
        if self.size is None:
            return _NAN
        return float(self.size[self.window(t0, t1)].sum())

    def thin(self, max_points: int) -> PriceSeries:
        """At most about ``max_points`` points (every k-th, always keeping the last one)."""
        n = len(self)
        if max_points <= 0 or n <= max_points:
            return self
        step = math.ceil(n / max_points)
        idx = np.arange(0, n, step)
        if idx[-1] != n - 1:
            idx = np.append(idx, n - 1)
        return PriceSeries(
            self.ts[idx], self.price[idx], None if self.size is None else self.size[idx]
        )


PriceInput = PriceSeries | Mapping[str, PriceSeries] | None
"""One series for every instrument, a series per instrument id, or nothing."""


def series_for(prices: PriceInput, instrument_id: str) -> PriceSeries | None:
    """The series of ``instrument_id`` (a single series applies to every instrument)."""
    if prices is None or isinstance(prices, PriceSeries):
        return prices
    return prices.get(instrument_id)


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """Reference prices (mids, last trades or closes) and, when known, trades with sizes."""

    prices: PriceSeries
    trades: PriceSeries | None = None
    source: str = ""


# ------------------------------------------------------------------------------ loaders

_S = float(fixed.SCALE)


def market_from_bars(bars: BarSeries, source: str = "") -> MarketSeries:
    """Closes at each bar's close time; trades approximated by the typical price.

    A bar's volume is placed at its close time at ``(high + low + close) / 3``, the usual
    approximation of a VWAP from bars.
    """
    ts = bars.ts_open + bars.interval_ns
    close = bars.close / _S
    typical = (bars.high + bars.low + bars.close) / (3.0 * _S)
    volume = bars.volume / _S
    return MarketSeries(PriceSeries(ts, close), PriceSeries(ts, typical, volume), source)


def market_from_trades(trades: TradeSeries, source: str = "") -> MarketSeries:
    """Last-trade prices and the trades themselves."""
    price = trades.price / _S
    return MarketSeries(
        PriceSeries(trades.ts, price),
        PriceSeries(trades.ts, price, trades.size / _S),
        source,
    )


def market_from_series(series: BarSeries | TradeSeries, source: str = "") -> MarketSeries:
    """:func:`market_from_bars` or :func:`market_from_trades`, whichever fits."""
    if isinstance(series, BarSeries):
        return market_from_bars(series, source)
    return market_from_trades(series, source)


def market_from_book_session(folder: str | Path, instrument_id: str = "") -> MarketSeries:
    """Mids of the ``bookTicker`` stream and the trades of a ``book/binance_*`` session."""
    from tradepilot.data.book_loader import load_book_session

    session = load_book_session(folder, instrument_id or Path(folder).name, check_sequence=False)
    return market_from_book(session.bbo, session.trades, str(folder))


def market_from_book(
    bbo: Sequence[tuple[int, QuoteTick]] | Sequence[QuoteTick],
    trades: Sequence[TradeTick],
    source: str = "",
) -> MarketSeries:
    """Mids of quote ticks (``(update_id, quote)`` pairs or quotes) and trade ticks."""
    quotes = [q[1] if isinstance(q, tuple) else q for q in bbo]
    n = len(quotes)
    q_ts = np.fromiter((q.ts for q in quotes), dtype=np.int64, count=n)
    bid = np.fromiter((q.bid for q in quotes), dtype=np.float64, count=n)
    ask = np.fromiter((q.ask for q in quotes), dtype=np.float64, count=n)
    m = len(trades)
    t_ts = np.fromiter((t.ts for t in trades), dtype=np.int64, count=m)
    t_px = np.fromiter((t.price for t in trades), dtype=np.float64, count=m)
    t_sz = np.fromiter((t.size for t in trades), dtype=np.float64, count=m)
    mids = PriceSeries(q_ts, (bid + ask) / (2.0 * _S))
    return MarketSeries(mids, PriceSeries(t_ts, t_px / _S, t_sz / _S), source)


def _is_book_folder(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*_bbo.csv.gz"))


def load_market(
    source: str | Path,
    instrument_id: str = "",
    start_ns: int | None = None,
    end_ns: int | None = None,
) -> MarketSeries:
    """Market series from a data-set name, a bar/trade file or a ``book/binance_*`` folder.

    Raises ``ValueError`` (``DataError``) when the source cannot be found or read.
    """
    from tradepilot.data.catalog import find

    path = Path(source)
    if _is_book_folder(path):
        return market_from_book_session(path, instrument_id)
    ds = find(str(source))
    iid = instrument_id or f"{ds.symbol}.{ds.venue}"
    if ds.kind == "bars":
        bars = ds.load_bars(iid)
        if start_ns is not None or end_ns is not None:
            bars = bars.between(start_ns, end_ns)
        return market_from_bars(bars, ds.name)
    trades = ds.load_trades(iid)
    if start_ns is not None or end_ns is not None:
        trades = trades.between(start_ns, end_ns)
    return market_from_trades(trades, ds.name)


def run_config(config_json: str) -> dict[str, object]:
    """The run configuration of a ``SessionStarted`` record as one flat dict.

    A paper session journals ``{"spec": {...}, "paper": {...}}``; the run specification's
    fields are lifted to the top level (top-level keys win). Unreadable JSON gives ``{}``.
    """
    try:
        config = json.loads(config_json) if config_json else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(config, dict):
        return {}
    flat: dict[str, object] = {}
    for key in ("spec", "paper"):
        nested = config.get(key)
        if isinstance(nested, dict):
            flat.update({str(k): v for k, v in nested.items()})
    flat.update({str(k): v for k, v in config.items() if k not in ("spec", "paper")})
    return flat


def _lift_run_configuration(config: dict[str, object]) -> dict[str, object]:
    """``dataset``, ``start`` and ``end`` of a ``run-config`` record with one data set."""
    raw, run = config.get("config"), config.get("run")
    if not isinstance(raw, dict) or not isinstance(run, dict):
        return config
    data = raw.get("data")
    if not (isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict)):
        return config
    rng = raw.get("range") if isinstance(raw.get("range"), dict) else {}
    assert isinstance(rng, dict)
    return {
        "dataset": data[0].get("dataset"),
        "start": run.get("start") or rng.get("start"),
        "end": run.get("end") or rng.get("end"),
    }


def market_from_run_config(mode: str, config_json: str) -> MarketSeries | None:
    """The market data a journaled run used, from its ``SessionStarted`` record.

    Understands the run specification of ``backtest``/``paper`` runs (``dataset``, ``start``,
    ``end``), the ``session`` folder of ``compare`` runs and a ``run-config`` configuration
    with one data set. ``None`` when the config names no data that can be found here.
    """
    config = _lift_run_configuration(run_config(config_json))
    try:
        session = config.get("session")
        if isinstance(session, str) and _is_book_folder(Path(session)):
            return market_from_book_session(session, str(config.get("instrument_id", "")))
        dataset = config.get("dataset")
        if isinstance(dataset, str) and dataset:
            from tradepilot.core.time import parse_time

            start, end = config.get("start"), config.get("end")
            return load_market(
                dataset,
                start_ns=parse_time(start) if isinstance(start, str) and start else None,
                end_ns=parse_time(end) if isinstance(end, str) and end else None,
            )
    except (ValueError, OSError):
        return None
    return None
