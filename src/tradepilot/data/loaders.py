"""Load bars and trade ticks from CSV (plain or gzip) and Parquet into column arrays.

Recognised layouts (detected from the header):

* candles of ``shared/data/candles``: ``open_time_ms, open, high, low, close, volume``
  (``volume_usd`` accepted for quote-volume files);
* benchmark Parquet: ``ts, open, high, low, close, volume`` and ``ts, price, size,
  aggressor, trade_id``;
* ccxt-style OHLCV rows without a header: ``[ts_ms, open, high, low, close, volume]``
  (CSV, or a JSON array of arrays);
* US equity minute bars: ``symbol, bar_start_utc_ms, open, ...`` (filtered by symbol);
* trade files: Binance captures (``local_ts_ns, price, qty, aggressor_side``), Tardis
  (``timestamp`` in µs, ``price, amount, side``), equity ticks (``utc_ms, price, size``).

Text prices are converted exactly (no float in between); Parquet floats are rounded to
nine decimals. Every file is validated before the engine sees it: a NaN, a zero or
negative price, a negative volume, an inconsistent bar (high below low, open or close
outside the range) or a timestamp that goes backwards raises :class:`DataError` naming
the row, and nothing is loaded.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from tradepilot.data.columns import BadDecimal, decimal_strings_to_raw
from tradepilot.model import fixed
from tradepilot.model.data import Bar, TradeTick

I64 = npt.NDArray[np.int64]
NS_PER_MS = 1_000_000
_CHUNK = 65_536


class DataError(ValueError):
    """A data file that cannot be used, with the reason and the row."""


@dataclass
class BarSeries:
    """Bars of one instrument as int64 columns (raw fixed-point prices, ns times)."""

    instrument_id: str
    ts_open: I64
    interval_ns: int
    open: I64
    high: I64
    low: I64
    close: I64
    volume: I64

    def __len__(self) -> int:
        return len(self.ts_open)

    def __iter__(self) -> Iterator[Bar]:
        iid = self.instrument_id
        step = self.interval_ns
        for start in range(0, len(self), _CHUNK):
            stop = start + _CHUNK
            opens = self.ts_open[start:stop].tolist()
            for t, o, h, lo, c, v in zip(
                opens,
                self.open[start:stop].tolist(),
                self.high[start:stop].tolist(),
                self.low[start:stop].tolist(),
                self.close[start:stop].tolist(),
                self.volume[start:stop].tolist(),
                strict=True,
            ):
                yield Bar(iid, t + step, t, o, h, lo, c, v)

    def between(self, start_ns: int | None = None, end_ns: int | None = None) -> BarSeries:
        """Bars whose open time lies in ``[start_ns, end_ns)``."""
        lo = 0 if start_ns is None else int(np.searchsorted(self.ts_open, start_ns, "left"))
        hi = len(self) if end_ns is None else int(np.searchsorted(self.ts_open, end_ns, "left"))
        return BarSeries(
            self.instrument_id,
            self.ts_open[lo:hi],
            self.interval_ns,
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
        )

    @property
    def start_ns(self) -> int:
        return int(self.ts_open[0]) if len(self) else 0

    @property
    def end_ns(self) -> int:
        return int(self.ts_open[-1]) + self.interval_ns if len(self) else 0


@dataclass
class TradeSeries:
    instrument_id: str
    ts: I64
    price: I64
    size: I64
    aggressor: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.ts)

    def __iter__(self) -> Iterator[TradeTick]:
        iid = self.instrument_id
        for start in range(0, len(self), _CHUNK):
            stop = start + _CHUNK
            for t, p, s, a in zip(
                self.ts[start:stop].tolist(),
                self.price[start:stop].tolist(),
                self.size[start:stop].tolist(),
                self.aggressor[start:stop].tolist(),
                strict=True,
            ):
                yield TradeTick(iid, t, p, s, a)

    def between(self, start_ns: int | None = None, end_ns: int | None = None) -> TradeSeries:
        lo = 0 if start_ns is None else int(np.searchsorted(self.ts, start_ns, "left"))
        hi = len(self) if end_ns is None else int(np.searchsorted(self.ts, end_ns, "left"))
        return TradeSeries(
            self.instrument_id,
            self.ts[lo:hi],
            self.price[lo:hi],
            self.size[lo:hi],
            self.aggressor[lo:hi],
        )


# -- reading ------------------------------------------------------------------------------


class _LazyParquet:
    """Parquet columns read one at a time, so a large file never sits in memory whole."""

    def __init__(self, path: Path) -> None:
        self._file = pq.ParquetFile(str(path))
        self.column_names: list[str] = list(self._file.schema_arrow.names)

    def column(self, name: str) -> pa.ChunkedArray:
        return self._file.read(columns=[name], use_threads=False).column(0)

    def table(self) -> pa.Table:
        return self._file.read()


class Columns(Protocol):
    """A table of named columns (a pyarrow Table or a lazily read Parquet file)."""

    column_names: list[str]

    def column(self, name: str) -> Any: ...


def _read_table(path: Path) -> Columns:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return _LazyParquet(path)
        if name.endswith(".json") or name.endswith(".json.gz"):
            return _read_json_ohlcv(path)
        first = _first_line(path)
        if any(ord(ch) < 32 and ch != "\t" for ch in first):
            raise DataError(
                f"{path}: the first line holds a control character (a NUL byte?): "
                f"{first!r}; column names would not match"
            )
        header = not _looks_numeric_row(first)
        opts = pcsv.ReadOptions(
            autogenerate_column_names=not header,
        )
        # every column as text: numbers are converted exactly below
        table = pcsv.read_csv(str(path), read_options=opts, convert_options=_all_text(path, header))
        if not header:
            table = table.rename_columns(
                ["ts_ms", "open", "high", "low", "close", "volume"][: table.num_columns]
            )
        columns: Columns = table
        return columns
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


def _first_line(path: Path) -> str:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return fh.readline().strip()


def _looks_numeric_row(line: str) -> bool:
    cells = line.split(",")
    try:
        float(cells[0])
    except ValueError:
        return False
    return True


def _all_text(path: Path, header: bool) -> pcsv.ConvertOptions:
    first = _first_line(path).split(",")
    names = first if header else [f"f{i}" for i in range(len(first))]
    return pcsv.ConvertOptions(column_types={n: pa.string() for n in names})


def _read_json_ohlcv(path: Path) -> Columns:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        try:
            rows = json.load(fh)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: malformed JSON: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) >= 6 for r in rows):
        raise DataError(f"{path}: expected a JSON array of [ts_ms, o, h, l, c, v] rows")
    names = ["ts_ms", "open", "high", "low", "close", "volume"]
    table: Columns = pa.table(
        {n: pa.array([_num_text(r[i]) for r in rows], pa.string()) for i, n in enumerate(names)}
    )
    return table


def _num_text(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _raw_column(path: Path, table: Columns, name: str) -> I64:
    col = table.column(name)
    if pa.types.is_floating(col.type):
        arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(
                f"{path}: row {int(np.flatnonzero(bad)[0]) + 1}: {name} is not a number"
            )
        out: I64 = np.rint(arr * fixed.SCALE).astype(np.int64)
        return out
    if pa.types.is_integer(col.type):
        ints: I64 = col.to_numpy(zero_copy_only=False).astype(np.int64) * fixed.SCALE
        return ints
    text = pc.utf8_trim_whitespace(col.cast(pa.string()))
    try:
        return decimal_strings_to_raw(text)
    except BadDecimal as exc:
        raise DataError(
            f"{path}: row {exc.row + 1}: {name} is not a valid non-negative number: {exc.value!r}"
        ) from None


def _int_column(path: Path, table: Columns, name: str) -> I64:
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("ns", tz="UTC"))
    try:
        ints: I64 = col.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return ints
    except pa.ArrowInvalid:
        raise DataError(f"{path}: column {name} must hold integers") from None


def _filter_eq(source: Columns, column: str, value: str | None, path: Path) -> Columns:
    """Keep the rows whose ``column`` equals ``value`` (no-op without the column or value)."""
    if value is None or column not in source.column_names:
        return source
    table: Any = source.table() if isinstance(source, _LazyParquet) else source
    out: Columns = table.filter(pc.equal(table.column(column), value))
    if out.num_rows == 0:  # type: ignore[attr-defined]
        known = sorted(set(table.column(column).to_pylist()))
        raise DataError(f"{path}: no rows with {column} {value!r} (file has {known})")
    return out


def symbol_rows(path: str | Path, symbol: str) -> pa.Table:
    """The rows of ``symbol`` in a multi-symbol file, every column as read (text for CSV).

    A file without a ``symbol`` column is refused: nothing could be picked from it.
    """
    p = Path(path)
    source = _read_table(p)
    if "symbol" not in source.column_names:
        raise DataError(f"{p}: no symbol column to pick {symbol!r} from")
    picked = _filter_eq(source, "symbol", symbol, p)
    table: Any = picked.table() if isinstance(picked, _LazyParquet) else picked
    out: pa.Table = table
    return out


def _check_increasing(path: Path, ts: I64, strict: bool) -> None:
    if len(ts) < 2:
        return
    diff = np.diff(ts)
    bad = diff <= 0 if strict else diff < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0]) + 1
        what = "not after" if strict else "before"
        raise DataError(
            f"{path}: row {i + 1}: timestamp {int(ts[i])} is {what} the previous one "
            f"{int(ts[i - 1])} (data must be in time order)"
        )


def load_bars(
    path: str | Path,
    instrument_id: str,
    symbol: str | None = None,
    interval_ns: int | None = None,
) -> BarSeries:
    """Load and validate OHLCV bars; ``symbol`` picks one symbol of a multi-symbol file."""
    p = Path(path)
    table = _filter_eq(_read_table(p), "symbol", symbol, p)
    cols = table.column_names
    if "open_time_ms" in cols:
        ts = _int_column(p, table, "open_time_ms") * NS_PER_MS
    elif "ts_ms" in cols:
        ts = _int_column(p, table, "ts_ms") * NS_PER_MS
    elif "bar_start_utc_ms" in cols:
        ts = _int_column(p, table, "bar_start_utc_ms") * NS_PER_MS
    elif "ts" in cols:
        ts = _int_column(p, table, "ts")
    else:
        raise DataError(f"{p}: no time column (open_time_ms, ts_ms, bar_start_utc_ms or ts)")
    need = ["open", "high", "low", "close"]
    missing = [c for c in need if c not in cols]
    if missing:
        raise DataError(f"{p}: missing columns {missing}")
    o, h, lo, c = (_raw_column(p, table, n) for n in need)
    vol_name = "volume" if "volume" in cols else "volume_usd" if "volume_usd" in cols else None
    v = _raw_column(p, table, vol_name) if vol_name else np.zeros(len(ts), dtype=np.int64)
    _validate_bars(p, ts, o, h, lo, c, v)
    if interval_ns is None:
        interval_ns = int(np.median(np.diff(ts))) if len(ts) > 1 else 60_000_000_000
    return BarSeries(instrument_id, ts, interval_ns, o, h, lo, c, v)


def _validate_bars(path: Path, ts: I64, o: I64, h: I64, lo: I64, c: I64, v: I64) -> None:
    if len(ts) == 0:
        raise DataError(f"{path}: no bars")
    for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
        bad = arr <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: row {i + 1}: {name} must be positive, got {fixed.to_str(int(arr[i]))}"
            )
    bad = (h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (v < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row {i + 1}: inconsistent bar (need low <= open, close <= high and "
            f"volume >= 0)"
        )
    _check_increasing(path, ts, strict=True)


def load_trades(
    path: str | Path,
    instrument_id: str,
    symbol: str | None = None,
    session: str | None = None,
) -> TradeSeries:
    """Load and validate trade ticks (see the module docstring for the layouts)."""
    p = Path(path)
    table = _filter_eq(_read_table(p), "symbol", symbol, p)
    table = _filter_eq(table, "session", session, p)
    cols = table.column_names
    if "local_ts_ns" in cols:
        ts = _int_column(p, table, "local_ts_ns")
    elif "utc_ms" in cols:
        ts = _int_column(p, table, "utc_ms") * NS_PER_MS
    elif "timestamp" in cols:
        ts = _int_column(p, table, "timestamp") * 1_000
    elif "ts" in cols:
        ts = _int_column(p, table, "ts")
    else:
        raise DataError(f"{p}: no time column (local_ts_ns, utc_ms, timestamp or ts)")
    size_name = next((n for n in ("qty", "size", "amount") if n in cols), None)
    if "price" not in cols or size_name is None:
        raise DataError(f"{p}: need a price column and a size column (qty, size or amount)")
    price = _raw_column(p, table, "price")
    size = _raw_column(p, table, size_name)
    side_name = next((n for n in ("aggressor_side", "side", "aggressor") if n in cols), None)
    if side_name is None:
        aggressor = np.zeros(len(ts), dtype=np.int8)
    else:
        col = table.column(side_name)
        if pa.types.is_integer(col.type):
            aggressor = col.to_numpy(zero_copy_only=False).astype(np.int8)
        else:
            text = pc.utf8_lower(col.cast(pa.string())).to_numpy(zero_copy_only=False)
            aggressor = np.where(text == "buy", 1, np.where(text == "sell", -1, 0)).astype(np.int8)
    if len(ts) == 0:
        raise DataError(f"{p}: no trades")
    for name, arr in (("price", price), ("size", size)):
        bad = arr <= 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{p}: row {i + 1}: {name} must be positive, got {fixed.to_str(int(arr[i]))}"
            )
    _check_increasing(p, ts, strict=False)
    return TradeSeries(instrument_id, ts, price, size, aggressor)
