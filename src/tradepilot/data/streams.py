"""Merging several market-data streams into one time-ordered stream.

Items with equal timestamps keep a fixed order: by the position of their stream
in the argument list, then by their order within it. The same inputs therefore
always give the same sequence, which keeps multi-instrument backtests
deterministic.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any


def merge_streams(*streams: Iterable[Any]) -> Iterator[Any]:
    """Merge streams whose items carry a ``ts`` attribute (each stream already in order)."""
    if len(streams) == 1:
        yield from streams[0]
        return
    iterators = [iter(s) for s in streams]
    heap: list[tuple[int, int, int, Any]] = []
    for idx, it in enumerate(iterators):
        first = next(it, None)
        if first is not None:
            heap.append((first.ts, idx, 0, first))
    heapq.heapify(heap)
    while heap:
        _, idx, n, item = heap[0]
        yield item
        nxt = next(iterators[idx], None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt.ts, idx, n + 1, nxt))
