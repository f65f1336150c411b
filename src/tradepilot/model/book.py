"""Level-2 order book for one instrument.

Prices and sizes are raw fixed-point ints (see :mod:`tradepilot.model.fixed`).
Each side keeps a ``dict`` price -> size and a sorted list of *keys* maintained
with :mod:`bisect`. The key of a price is ``side * price`` (bids ``+price``,
asks ``-price``), so on both sides the best level is the last key: changes near
the top of the book, by far the most frequent, move almost nothing in the list.

Side convention everywhere: ``+1`` = bids (or a taker BUY), ``-1`` = asks (or a
taker SELL). The book is pure state: no I/O, no clock, no sequence checks (the
caller drops stale updates, see :mod:`tradepilot.data.book_loader`).
"""

from __future__ import annotations

from bisect import bisect_left, insort

from tradepilot.model.data import BookDeltas, BookLevel, BookSnapshot

BID = 1
ASK = -1


class OrderBook:
    """L2 book: best bid is the highest bid price, best ask the lowest ask price."""

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids", "instrument_id", "ts", "update_id")

    def __init__(self, instrument_id: str = "") -> None:
        self.instrument_id = instrument_id
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._bid_keys: list[int] = []  # +price, ascending: best bid last
        self._ask_keys: list[int] = []  # -price, ascending: best ask last
        self.update_id = 0  # update id of the last applied snapshot/deltas
        self.ts = 0  # ts of the last applied snapshot/deltas

    # ------------------------------------------------------------------ updates

    def apply_snapshot(self, snap: BookSnapshot) -> None:
        """Replace the whole book (levels of size 0 are ignored)."""
        bids = {lvl.price: lvl.size for lvl in snap.bids if lvl.size}
        asks = {lvl.price: lvl.size for lvl in snap.asks if lvl.size}
        self._bids = bids
        self._asks = asks
        self._bid_keys = sorted(bids)
        self._ask_keys = sorted([-p for p in asks])
        self.update_id = snap.update_id
        self.ts = snap.ts

    def apply_deltas(self, d: BookDeltas) -> None:
        """Apply a batch of absolute level sizes in order; size 0 removes the level."""
        if d.bids:
            _update_side(self._bids, self._bid_keys, d.bids, 1)
        if d.asks:
            _update_side(self._asks, self._ask_keys, d.asks, -1)
        self.update_id = d.update_id
        self.ts = d.ts

    def apply(self, item: BookSnapshot | BookDeltas) -> None:
        """Apply a snapshot or a batch of deltas."""
        if type(item) is BookDeltas:
            self.apply_deltas(item)
        elif type(item) is BookSnapshot:
            self.apply_snapshot(item)
        else:
            raise TypeError(f"not a book update: {type(item).__name__}")

    def clear(self) -> None:
        """Remove every level (update_id and ts are kept)."""
        self._bids = {}
        self._asks = {}
        self._bid_keys = []
        self._ask_keys = []

    # ------------------------------------------------------------------ queries

    def best_bid(self) -> tuple[int, int] | None:
        """``(price, size)`` of the highest bid, or None if there are no bids."""
        keys = self._bid_keys
        if not keys:
            return None
        p = keys[-1]
        return p, self._bids[p]

    def best_ask(self) -> tuple[int, int] | None:
        """``(price, size)`` of the lowest ask, or None if there are no asks."""
        keys = self._ask_keys
        if not keys:
            return None
        p = -keys[-1]
        return p, self._asks[p]

    def best_bid_price(self) -> int | None:
        keys = self._bid_keys
        return keys[-1] if keys else None

    def best_ask_price(self) -> int | None:
        keys = self._ask_keys
        return -keys[-1] if keys else None

    def mid(self) -> int | None:
        """Floor of ``(best bid + best ask) // 2``, or None if a side is empty."""
        if not self._bid_keys or not self._ask_keys:
            return None
        return (self._bid_keys[-1] - self._ask_keys[-1]) // 2

    def spread(self) -> int | None:
        """Best ask minus best bid, or None if a side is empty."""
        if not self._bid_keys or not self._ask_keys:
            return None
        return -self._ask_keys[-1] - self._bid_keys[-1]

    def is_crossed(self) -> bool:
        """True if both sides exist and best bid >= best ask (crossed or locked)."""
        if not self._bid_keys or not self._ask_keys:
            return False
        return self._bid_keys[-1] >= -self._ask_keys[-1]

    def depth(self, side: int) -> int:
        """Number of price levels on a side."""
        return len(self._bid_keys if _check_side(side) == 1 else self._ask_keys)

    def levels(self, side: int, depth: int) -> list[tuple[int, int]]:
        """The best ``depth`` levels of a side as ``(price, size)``, best first."""
        if _check_side(side) == 1:
            keys, sizes = self._bid_keys, self._bids
        else:
            keys, sizes = self._ask_keys, self._asks
        if depth <= 0:
            return []
        start = len(keys) - depth if depth < len(keys) else 0
        return [(side * k, sizes[side * k]) for k in reversed(keys[start:])]

    def size_at(self, side: int, price: int) -> int:
        """Size resting at ``price`` on a side (0 if no level)."""
        return (self._bids if _check_side(side) == 1 else self._asks).get(price, 0)

    def walk(
        self, side_taking: int, qty: int, limit_price: int | None = None
    ) -> list[tuple[int, int]]:
        """Slices ``(price, qty)`` a taker order would take, level by level, best first.

        A BUY (``+1``) consumes asks upward, a SELL (``-1``) consumes bids downward;
        it stops when ``qty`` is filled, the side is exhausted, or the next level is
        worse than ``limit_price``. The book is not changed.
        """
        if _check_side(side_taking) == 1:
            keys, sizes, sign = self._ask_keys, self._asks, -1
        else:
            keys, sizes, sign = self._bid_keys, self._bids, 1
        out: list[tuple[int, int]] = []
        if qty <= 0:
            return out
        # Keys are ``sign * price``, larger is better: stop below ``sign * limit``.
        floor_key = None if limit_price is None else sign * limit_price
        i = len(keys) - 1
        while qty > 0 and i >= 0:
            k = keys[i]
            if floor_key is not None and k < floor_key:
                break
            price = sign * k
            size = sizes[price]
            take = size if size < qty else qty
            out.append((price, take))
            qty -= take
            i -= 1
        return out

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.instrument_id!r}, update_id={self.update_id}, "
            f"bid={self.best_bid()}, ask={self.best_ask()}, "
            f"levels={len(self._bid_keys)}/{len(self._ask_keys)})"
        )


def _check_side(side: int) -> int:
    if side != 1 and side != -1:
        raise ValueError(f"side must be +1 (bids/buy) or -1 (asks/sell), got {side!r}")
    return side


def _update_side(
    sizes: dict[int, int], keys: list[int], levels: tuple[BookLevel, ...], sign: int
) -> None:
    for lvl in levels:
        price = lvl.price
        size = lvl.size
        if size:
            if price not in sizes:
                insort(keys, sign * price)
            sizes[price] = size
        elif sizes.pop(price, None) is not None:
            del keys[bisect_left(keys, sign * price)]
