"""Seeded fault injection for the local exchange.

A profile (YAML or a dict) lists rules; each rule names a fault ``kind`` and
when it fires, counted over the events it matches (requests for HTTP faults,
messages for WebSocket faults)::

    seed: 7
    rules:
      - {kind: http_429, at: [3], count: 2, retry_after: 1}   # the 3rd and 4th request
      - {kind: http_5xx, rate: 0.05, status: 503, paths: [/api/v3/order]}
      - {kind: timeout, every: 50, delay_s: 3}
      - {kind: response_lost, at: [10], methods: [POST]}      # executed, then the reply is lost
      - {kind: ws_disconnect, at: [100], channel: market}
      - {kind: ws_stall, at: [20], duration_s: 2}
      - {kind: duplicate_event, rate: 0.1}                    # user-data events
      - {kind: reorder_event, at: [2]}
      - {kind: delayed_fill, rate: 1.0, delay_s: 0.5}
      - {kind: stale_data, at: [2], duration_s: 1}            # depth/ticker frozen
      - {kind: clock_skew, offset_ms: 2500}

A rule fires on the Nth matching event if N is in ``at``, if ``every`` divides N,
or with probability ``rate`` (drawn from the rule's own generator, seeded by the
profile's seed and the rule's position); once fired it also fires on the next
``count - 1`` matching events (a burst). The same profile, seed and sequence of
events give the same faults. Every fault that fires is counted in ``hits``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradepilot.core.yamlfile import load_yaml

__all__ = ["HTTP_KINDS", "FaultInjector", "FaultProfile", "FaultRule", "load_profile"]

HTTP_KINDS = ("http_429", "http_418", "http_5xx", "timeout", "response_lost")
WS_KINDS = ("ws_disconnect", "ws_stall")
USER_KINDS = ("duplicate_event", "reorder_event", "delayed_fill")
OTHER_KINDS = ("stale_data", "clock_skew")
KINDS = HTTP_KINDS + WS_KINDS + USER_KINDS + OTHER_KINDS


@dataclass
class FaultRule:
    kind: str
    rate: float = 0.0
    at: tuple[int, ...] = ()
    every: int = 0
    count: int = 1
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    channel: str = ""  # ws faults: "market" | "user" | "" (both)
    status: int = 503
    retry_after: int = 1
    delay_s: float = 1.0
    duration_s: float = 1.0
    offset_ms: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (one of {', '.join(KINDS)})")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"{self.kind}: rate must be in [0, 1]")
        if self.count < 1 or self.every < 0 or any(n < 1 for n in self.at):
            raise ValueError(f"{self.kind}: count, every and at must be positive")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaultRule:
        d = dict(d)
        for key in ("at", "paths", "methods"):
            if key in d:
                value = d[key]
                d[key] = tuple(value) if isinstance(value, list | tuple) else (value,)
        if "methods" in d:
            d["methods"] = tuple(str(m).upper() for m in d["methods"])
        return cls(**d)


@dataclass
class FaultProfile:
    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaultProfile:
        return cls(int(d.get("seed", 0)), [FaultRule.from_dict(r) for r in d.get("rules", [])])


def load_profile(path: str | Path) -> FaultProfile:
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a fault profile is a mapping with 'seed' and 'rules'")
    return FaultProfile.from_dict(data)


class _RuleState:
    def __init__(self, rule: FaultRule, seed: int, index: int) -> None:
        self.rule = rule
        self.rng = random.Random(f"{seed}:{index}:{rule.kind}")
        self.seen = 0
        self.burst_left = 0

    def step(self) -> bool:
        self.seen += 1
        rule = self.rule
        if self.burst_left > 0:
            self.burst_left -= 1
            return True
        fire = self.seen in rule.at or (rule.every > 0 and self.seen % rule.every == 0)
        if rule.rate > 0:
            draw = self.rng.random() < rule.rate  # drawn every time: same seed, same sequence
            fire = fire or draw
        if fire:
            self.burst_left = rule.count - 1
        return fire


class FaultInjector:
    """Decides, event by event, which faults fire; counts them in ``hits``."""

    def __init__(self, profile: FaultProfile | None = None) -> None:
        self.profile = profile or FaultProfile()
        self._states = [
            _RuleState(r, self.profile.seed, i) for i, r in enumerate(self.profile.rules)
        ]
        self.hits: Counter[str] = Counter()

    @property
    def clock_skew_ms(self) -> int:
        return sum(r.offset_ms for r in self.profile.rules if r.kind == "clock_skew")

    def _match(
        self, kinds: tuple[str, ...], method: str = "", path: str = "", channel: str = ""
    ) -> FaultRule | None:
        fired: FaultRule | None = None
        for st in self._states:
            rule = st.rule
            if rule.kind not in kinds:
                continue
            if rule.paths and not any(path.startswith(p) for p in rule.paths):
                continue
            if rule.methods and method.upper() not in rule.methods:
                continue
            if rule.channel and channel and rule.channel != channel:
                continue
            if st.step() and fired is None:
                fired = rule
        if fired is not None:
            self.hits[fired.kind] += 1
        return fired

    def on_request(self, method: str, path: str) -> FaultRule | None:
        """The HTTP fault for this request, if any."""
        return self._match(HTTP_KINDS, method, path)

    def on_ws_message(self, channel: str) -> FaultRule | None:
        return self._match(WS_KINDS, channel=channel)

    def on_user_event(self) -> FaultRule | None:
        return self._match(USER_KINDS, channel="user")

    def on_market_read(self, path: str) -> FaultRule | None:
        return self._match(("stale_data",), path=path)
