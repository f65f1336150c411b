"""A small synchronous message bus: handlers subscribe to event types.

Handlers for one type run in subscription order, so the portfolio (subscribed
first) has applied a fill before a strategy hears of it. Subscribing to
``object`` receives every message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any], None]


class MessageBus:
    __slots__ = ("_by_type", "_resolved", "_wildcard")

    def __init__(self) -> None:
        self._by_type: dict[type, list[Handler]] = {}
        self._wildcard: list[Handler] = []
        self._resolved: dict[type, tuple[Handler, ...]] = {}

    def subscribe(self, msg_type: type, handler: Handler) -> None:
        if msg_type is object:
            self._wildcard.append(handler)
        else:
            self._by_type.setdefault(msg_type, []).append(handler)
        self._resolved.clear()

    def unsubscribe(self, msg_type: type, handler: Handler) -> None:
        handlers = self._wildcard if msg_type is object else self._by_type.get(msg_type, [])
        if handler in handlers:
            handlers.remove(handler)
        self._resolved.clear()

    def publish(self, msg: Any) -> None:
        kind = type(msg)
        handlers = self._resolved.get(kind)
        if handlers is None:
            found: list[Handler] = []
            for base in kind.__mro__:
                found.extend(self._by_type.get(base, ()))
            found.extend(self._wildcard)
            handlers = self._resolved[kind] = tuple(found)
        for handler in handlers:
            handler(msg)
