"""The one registry of deterministic ids.

Client order ids are ``<strategy>-<n>``, an algorithm's children ``<parent>-c<n>`` and
its parent orders ``<strategy>-P<n>``. The same run always produces the same ids, and a
restored session continues after the highest number its journal holds - no id is ever
handed out twice, whoever asks (the order manager, the algorithm host, the projection).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["IdRegistry"]


class IdRegistry:
    """Counters per prefix: ``orders`` (``<prefix>-<n>``), ``children`` (``<parent>-c<n>``)
    and ``parents`` (``<strategy>-P<n>``), each the highest ``n`` handed out or seen."""

    __slots__ = ("children", "orders", "parents")

    def __init__(self) -> None:
        self.orders: dict[str, int] = {}
        self.children: dict[str, int] = {}
        self.parents: dict[str, int] = {}

    def next_order_id(self, prefix: str) -> str:
        n = self.orders.get(prefix, 0) + 1
        self.orders[prefix] = n
        return f"{prefix}-{n}"

    def next_child_id(self, parent_id: str) -> str:
        n = self.children.get(parent_id, 0) + 1
        self.children[parent_id] = n
        return f"{parent_id}-c{n}"

    def next_parent_id(self, strategy_id: str) -> str:
        n = self.parents.get(strategy_id, 0) + 1
        self.parents[strategy_id] = n
        return f"{strategy_id}-P{n}"

    def peek_order_id(self, prefix: str) -> str:
        """The id :meth:`next_order_id` would hand out next (nothing is reserved)."""
        return f"{prefix}-{self.orders.get(prefix, 0) + 1}"

    def peek_child_id(self, parent_id: str) -> str:
        return f"{parent_id}-c{self.children.get(parent_id, 0) + 1}"

    def peek_parent_id(self, strategy_id: str) -> str:
        return f"{strategy_id}-P{self.parents.get(strategy_id, 0) + 1}"

    def observe(self, any_id: str) -> None:
        """Count an id seen elsewhere (a journal), so it is never handed out again."""
        head, sep, tail = any_id.rpartition("-")
        if not sep:
            return
        if tail.isascii() and tail.isdigit():
            counters = self.orders
        elif tail[1:].isascii() and tail[1:].isdigit() and tail[:1] in ("c", "P"):
            counters = self.children if tail[0] == "c" else self.parents
            tail = tail[1:]
        else:
            return
        n = int(tail)
        if n > counters.get(head, 0):
            counters[head] = n

    def restore(
        self,
        orders: Mapping[str, int] = {},
        children: Mapping[str, int] = {},
        parents: Mapping[str, int] = {},
    ) -> None:
        """Continue after restored counters (a counter never goes down)."""
        for mine, theirs in (
            (self.orders, orders),
            (self.children, children),
            (self.parents, parents),
        ):
            for prefix, n in theirs.items():
                if n > mine.get(prefix, 0):
                    mine[prefix] = n

    def restore_from(self, other: IdRegistry) -> None:
        self.restore(other.orders, other.children, other.parents)
