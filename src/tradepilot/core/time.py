"""Time units and parsing shared by every layer: nanoseconds since the epoch (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR


#: The longest duration accepted anywhere (``inf`` and ``1e308`` are not durations).
MAX_DURATION_NS = 100 * 365 * 86_400 * 1_000_000_000


def parse_duration(text: str) -> int:
    """'300s', '5m', '24h', '2d', '150ms' or a bare number of seconds -> nanoseconds."""
    text = text.strip().lower()
    units = (
        ("ms", 1_000_000),
        ("s", NS_PER_SECOND),
        ("m", NS_PER_MINUTE),
        ("h", NS_PER_HOUR),
        ("d", NS_PER_DAY),
    )
    number, mult = text, NS_PER_SECOND
    for suffix, unit in units:
        if text.endswith(suffix):
            number, mult = text[: -len(suffix)], unit
            break
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 300s, 5m, 24h)") from None
    if value < 0 or value != value:
        raise ValueError(f"duration must be non-negative: {text!r}")
    if value * mult > MAX_DURATION_NS:
        raise ValueError(f"duration too long: {text!r} (at most 100 years)")
    return round(value * mult)


def parse_time(text: str) -> int:
    """ISO date or datetime (UTC unless it says otherwise) -> ns since the epoch."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a date or time: {text!r} (use e.g. 2021-05-18 or 2021-05-18T12:00)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * NS_PER_SECOND + dt.microsecond * 1000


def iso(ts_ns: int) -> str:
    """ns since the epoch -> ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(ts_ns / NS_PER_SECOND, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
