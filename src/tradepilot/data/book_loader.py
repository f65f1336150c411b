"""Load a Binance L2 capture session (``book/binance_*`` folders) into engine objects.

A session folder ``<S>/`` holds four gzipped CSVs, ``<S>_snapshot``, ``<S>_depth_updates``,
``<S>_bbo`` and ``<S>_trades`` (see the data README, section 3). Prices and quantities
are read as text and converted to raw fixed-point ints exactly (no float ever
touches them) by :func:`decimal_strings_to_raw`.

Every object is stamped with ``local_ts_ns``, the collector's arrival time, which
is the only clock shared by the four streams.

Replay order (:func:`iter_book_session_events`):

* Depth messages are kept only if ``last_update_id > snapshot.update_id``
  (Binance's rule); the first kept one may straddle the snapshot id. Kept messages
  that *arrived before* the snapshot (a live client buffers them) are released
  right after it, re-stamped with the snapshot's ``ts``, so the replay clock never
  goes backwards.
* Everything is then merged by ``ts``; equal ``ts`` are broken by source, in the
  order snapshot, depth deltas, trades, quotes, and within one source by file order.
  Trades and quotes that arrived before the snapshot are replayed before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from tradepilot.data.columns import BadDecimal, decimal_strings_to_raw
from tradepilot.model.data import (
    BookDeltas,
    BookLevel,
    BookSnapshot,
    MarketData,
    QuoteTick,
    TradeTick,
)

__all__ = [
    "BookSession",
    "applicable_deltas",
    "iter_book_session_events",
    "load_book_session",
]

_I64 = pa.int64()
_STR = pa.string()

_SNAPSHOT_COLS = {
    "local_ts_ns": _I64,
    "last_update_id": _I64,
    "side": _STR,
    "level": _I64,
    "price": _STR,
    "qty": _STR,
}
_DEPTH_COLS = {
    "local_ts_ns": _I64,
    "first_update_id": _I64,
    "last_update_id": _I64,
    "side": _STR,
    "price": _STR,
    "qty": _STR,
}
_PREV_ID_COL = "prev_last_update_id"  # USD-M only
_BBO_COLS = {
    "local_ts_ns": _I64,
    "update_id": _I64,
    "bid_price": _STR,
    "bid_qty": _STR,
    "ask_price": _STR,
    "ask_qty": _STR,
}
_TRADE_COLS = {
    "local_ts_ns": _I64,
    "trade_id": _STR,
    "price": _STR,
    "qty": _STR,
    "aggressor_side": _STR,
}

# At most 9 integer digits keeps every raw value (< 10**18) inside int64.


@dataclass(slots=True)
class BookSession:
    """One capture session as engine objects, each list in file (arrival) order."""

    instrument_id: str
    market: str  # "spot" or "usdm" (USD-M files carry prev_last_update_id)
    snapshot: BookSnapshot
    deltas: list[BookDeltas]  # every depth message in the file, stale ones included
    trades: list[TradeTick]
    bbo: list[tuple[int, QuoteTick]]  # (bookTicker update_id, quote)


# ---------------------------------------------------------------------- conversion


# ---------------------------------------------------------------------- reading


def _find_file(folder: Path, kind: str) -> Path:
    exact = folder / f"{folder.name}_{kind}.csv.gz"
    if exact.is_file():
        return exact
    matches = sorted(folder.glob(f"*_{kind}.csv.gz"))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(f"{folder}: missing file {exact.name} (*_{kind}.csv.gz)")
    raise ValueError(f"{folder}: several *_{kind}.csv.gz files: {[m.name for m in matches]}")


def _read_csv(path: Path, columns: dict[str, Any], optional: Sequence[str] = ()) -> pa.Table:
    try:
        table = pcsv.read_csv(
            str(path),
            convert_options=pcsv.ConvertOptions(column_types=columns),
        )
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read CSV: {exc}") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    keep = [*columns, *(c for c in optional if c in table.column_names)]
    table = table.select(keep)
    for name in keep:
        col = table.column(name)
        if col.null_count:
            bad = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{path}: line {bad + 2}: empty value in column {name!r}")
    return table


def _ints(table: pa.Table, name: str) -> npt.NDArray[np.int64]:
    out: npt.NDArray[np.int64] = table.column(name).to_numpy()
    return out


def _raw(path: Path, table: pa.Table, name: str) -> npt.NDArray[np.int64]:
    try:
        return decimal_strings_to_raw(table.column(name))
    except BadDecimal as exc:
        raise ValueError(
            f"{path}: line {exc.row + 2}: column {name!r}: not a plain decimal number: "
            f"{exc.value!r}"
        ) from None


def _sides(
    path: Path, table: pa.Table, name: str, labels: tuple[str, str]
) -> npt.NDArray[np.bool_]:
    """True where the column equals ``labels[0]``; ValueError on anything but the two labels."""
    col = table.column(name)
    first = pc.equal(col, labels[0]).to_numpy()
    valid = first | pc.equal(col, labels[1]).to_numpy()
    if not valid.all():
        bad = int(np.flatnonzero(~valid)[0])
        raise ValueError(
            f"{path}: line {bad + 2}: column {name!r} must be {labels[0]!r} or {labels[1]!r}, "
            f"got {col[bad].as_py()!r}"
        )
    out: npt.NDArray[np.bool_] = first
    return out


def _check_arrival_order(path: Path, ts: npt.NDArray[np.int64]) -> None:
    if len(ts) > 1:
        back = np.flatnonzero(ts[1:] < ts[:-1])
        if len(back):
            raise ValueError(f"{path}: line {int(back[0]) + 3}: local_ts_ns goes backwards")


def _levels(prices: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64]) -> list[BookLevel]:
    return list(map(BookLevel, prices.tolist(), sizes.tolist()))


def _load_snapshot(path: Path, instrument_id: str) -> BookSnapshot:
    t = _read_csv(path, _SNAPSHOT_COLS)
    if t.num_rows == 0:
        raise ValueError(f"{path}: empty snapshot")
    ts = _ints(t, "local_ts_ns")
    uid = _ints(t, "last_update_id")
    if (ts != ts[0]).any() or (uid != uid[0]).any():
        raise ValueError(f"{path}: rows from more than one snapshot (local_ts_ns/last_update_id)")
    is_bid = _sides(path, t, "side", ("bid", "ask"))
    prices = _raw(path, t, "price")
    sizes = _raw(path, t, "qty")
    # Best level first on each side, whatever the row order of the file.
    order = np.lexsort((_ints(t, "level"), ~is_bid))
    n_bids = int(is_bid.sum())
    levels = _levels(prices[order], sizes[order])
    return BookSnapshot(
        instrument_id=instrument_id,
        ts=int(ts[0]),
        bids=tuple(levels[:n_bids]),
        asks=tuple(levels[n_bids:]),
        update_id=int(uid[0]),
    )


def _load_deltas(
    path: Path, instrument_id: str, snapshot_id: int, check_sequence: bool
) -> tuple[list[BookDeltas], str]:
    t = _read_csv(path, _DEPTH_COLS, optional=(_PREV_ID_COL,))
    market = "usdm" if _PREV_ID_COL in t.column_names else "spot"
    if t.num_rows == 0:
        return [], market
    ts = _ints(t, "local_ts_ns")
    first_id = _ints(t, "first_update_id")
    last_id = _ints(t, "last_update_id")
    _check_arrival_order(path, ts)
    is_bid = _sides(path, t, "side", ("bid", "ask"))
    prices = _raw(path, t, "price")
    sizes = _raw(path, t, "qty")

    # One message = one run of rows sharing (local_ts_ns, first_update_id, last_update_id).
    change = (ts[1:] != ts[:-1]) | (first_id[1:] != first_id[:-1]) | (last_id[1:] != last_id[:-1])
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    n_msgs = len(starts)
    m_ts, m_first, m_last = ts[starts], first_id[starts], last_id[starts]
    keys = np.stack((m_ts, m_first, m_last), axis=1)
    if len(np.unique(keys, axis=0)) != n_msgs:
        raise ValueError(f"{path}: rows of one depth message are not contiguous")
    if check_sequence:
        prev_id = _ints(t, _PREV_ID_COL)[starts] if market == "usdm" else None
        _check_sequence(path, snapshot_id, m_first, m_last, prev_id)

    # Within each message put bids before asks (stable), then cut per (message, side).
    msg_of_row = np.repeat(np.arange(n_msgs), np.diff(np.append(starts, len(ts))))
    bucket = msg_of_row * 2 + (~is_bid)
    order = np.argsort(bucket, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=2 * n_msgs)))).tolist()
    levels = _levels(prices[order], sizes[order])
    out: list[BookDeltas] = []
    append = out.append
    msgs = zip(m_ts.tolist(), m_first.tolist(), m_last.tolist(), strict=True)
    for i, (t_ns, f_id, l_id) in enumerate(msgs):
        a, b, c = bounds[2 * i], bounds[2 * i + 1], bounds[2 * i + 2]
        append(BookDeltas(instrument_id, t_ns, tuple(levels[a:b]), tuple(levels[b:c]), l_id, f_id))
    return out, market


def _check_sequence(
    path: Path,
    snapshot_id: int,
    first_id: npt.NDArray[np.int64],
    last_id: npt.NDArray[np.int64],
    prev_id: npt.NDArray[np.int64] | None,
) -> None:
    """Binance continuity rules over the messages kept after the snapshot."""
    kept = np.flatnonzero(last_id > snapshot_id)
    if not len(kept):
        return
    k0 = int(kept[0])
    if prev_id is None:  # spot: U <= lastUpdateId + 1 <= u, then U == previous u + 1
        if first_id[k0] > snapshot_id + 1:
            raise ValueError(
                f"{path}: gap after the snapshot: first kept message starts at "
                f"{int(first_id[k0])} > {snapshot_id} + 1"
            )
        gaps = np.flatnonzero(first_id[kept[1:]] != last_id[kept[:-1]] + 1)
    else:  # USD-M: pu chains to the previous u (ids are shared across symbols)
        if prev_id[k0] > snapshot_id:
            raise ValueError(
                f"{path}: gap after the snapshot: first kept message has pu "
                f"{int(prev_id[k0])} > {snapshot_id}"
            )
        gaps = np.flatnonzero(prev_id[kept[1:]] != last_id[kept[:-1]])
    if len(gaps):
        k = int(kept[int(gaps[0]) + 1])
        raise ValueError(f"{path}: sequence gap before depth message u={int(last_id[k])}")


def _load_trades(path: Path, instrument_id: str) -> list[TradeTick]:
    t = _read_csv(path, _TRADE_COLS)
    ts = _ints(t, "local_ts_ns")
    _check_arrival_order(path, ts)
    is_buy = _sides(path, t, "aggressor_side", ("buy", "sell"))
    aggressor = np.where(is_buy, 1, -1).tolist()
    return list(
        map(
            TradeTick,
            [instrument_id] * t.num_rows,
            ts.tolist(),
            _raw(path, t, "price").tolist(),
            _raw(path, t, "qty").tolist(),
            aggressor,
            t.column("trade_id").to_pylist(),
        )
    )


def _load_bbo(path: Path, instrument_id: str) -> list[tuple[int, QuoteTick]]:
    t = _read_csv(path, _BBO_COLS)
    ts = _ints(t, "local_ts_ns")
    _check_arrival_order(path, ts)
    quotes = map(
        QuoteTick,
        [instrument_id] * t.num_rows,
        ts.tolist(),
        _raw(path, t, "bid_price").tolist(),
        _raw(path, t, "ask_price").tolist(),
        _raw(path, t, "bid_qty").tolist(),
        _raw(path, t, "ask_qty").tolist(),
    )
    return list(zip(_ints(t, "update_id").tolist(), quotes, strict=True))


def load_book_session(
    folder: str | Path, instrument_id: str, *, check_sequence: bool = True
) -> BookSession:
    """Read one ``book/binance_*`` session folder.

    Raises ``ValueError`` if a file is missing or unreadable, a column is missing,
    a value is malformed, a stream is not in arrival order or (with
    ``check_sequence``) the depth messages kept after the snapshot have a gap.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    paths = {k: _find_file(folder, k) for k in ("snapshot", "depth_updates", "bbo", "trades")}
    snapshot = _load_snapshot(paths["snapshot"], instrument_id)
    deltas, market = _load_deltas(
        paths["depth_updates"], instrument_id, snapshot.update_id, check_sequence
    )
    return BookSession(
        instrument_id=instrument_id,
        market=market,
        snapshot=snapshot,
        deltas=deltas,
        trades=_load_trades(paths["trades"], instrument_id),
        bbo=_load_bbo(paths["bbo"], instrument_id),
    )


# ---------------------------------------------------------------------- replay


def applicable_deltas(session: BookSession) -> list[BookDeltas]:
    """Depth messages to apply after the snapshot (``update_id > snapshot.update_id``)."""
    snap_id = session.snapshot.update_id
    return [d for d in session.deltas if d.update_id > snap_id]


def iter_book_session_events(session: BookSession) -> Iterator[MarketData]:
    """Replay the session in arrival order (rules in the module docstring)."""
    snap = session.snapshot
    deltas = [
        d if d.ts >= snap.ts else msgspec.structs.replace(d, ts=snap.ts)
        for d in applicable_deltas(session)
    ]
    quotes = [q for _, q in session.bbo]
    sources: list[Sequence[MarketData]] = [(snap,), deltas, session.trades, quotes]
    ts_parts = []
    for items in sources:
        ts = np.fromiter((x.ts for x in items), dtype=np.int64, count=len(items))
        if len(ts) > 1 and (ts[1:] < ts[:-1]).any():
            raise ValueError(f"{type(items[0]).__name__} items are not in ts order")
        ts_parts.append(ts)
    all_ts = np.concatenate(ts_parts)
    src = np.repeat(np.arange(len(sources)), [len(s) for s in sources])
    # lexsort: last key is primary; np.lexsort is stable, so file order breaks ties.
    order = np.lexsort((src, all_ts))
    objs: list[MarketData] = [x for items in sources for x in items]
    for i in order.tolist():
        yield objs[i]
