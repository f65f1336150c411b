"""Trading calendars: is the market open at this instant, and when does its session close?

:class:`AlwaysOpen` is the 24/7 crypto market; :class:`ExchangeHours` is a weekday
session in an exchange's local time zone (``zoneinfo``, so daylight-saving changes are
handled), with an optional set of holidays and of early-close days. :func:`nyse` builds
the NYSE regular session (09:30-16:00 America/New_York) and, on request, the NYSE
full-day holidays (:func:`nyse_holidays`) and 13:00 early closes
(:func:`nyse_early_closes`) computed by the exchange's standing rules, so they hold for
future years too; one-off closures such as days of mourning are not included - pass them
in ``extra_holidays``.

The calendars live in ``core`` because the simulated venue needs them as well: a DAY
order on an equity expires at the session's close, early closes included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Protocol
from zoneinfo import ZoneInfo

from tradepilot.core.time import NS_PER_SECOND

__all__ = [
    "AlwaysOpen",
    "ExchangeHours",
    "TradingCalendar",
    "calendar_for",
    "nyse",
    "nyse_early_closes",
    "nyse_holidays",
]


class TradingCalendar(Protocol):
    @property
    def name(self) -> str: ...

    def is_open(self, ts_ns: int) -> bool:
        """True if the market is open at ``ts_ns`` (ns since the epoch, UTC)."""
        ...

    def next_open(self, ts_ns: int) -> int:
        """The first instant at or after ``ts_ns`` at which the market is open."""
        ...


class AlwaysOpen:
    """A market that never closes (crypto)."""

    name = "24/7"

    def is_open(self, ts_ns: int) -> bool:
        return True

    def next_open(self, ts_ns: int) -> int:
        return ts_ns


@dataclass(frozen=True)
class ExchangeHours:
    """Regular weekday sessions ``[open, close)`` in a local time zone, minus holidays."""

    name: str
    tz: str
    open_time: time
    close_time: time
    holidays: frozenset[date] = field(default_factory=frozenset)
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    early_closes: Mapping[date, time] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.open_time < self.close_time:
            raise ValueError(f"{self.name}: the session must open before it closes")
        ZoneInfo(self.tz)  # raises for an unknown zone

    def _local(self, ts_ns: int) -> datetime:
        return datetime.fromtimestamp(ts_ns // NS_PER_SECOND, UTC).astimezone(ZoneInfo(self.tz))

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def close_on(self, day: date) -> time:
        """The session's close on ``day`` (earlier on an early-close day)."""
        return self.early_closes.get(day, self.close_time)

    def is_open(self, ts_ns: int) -> bool:
        local = self._local(ts_ns)
        day = local.date()
        if not self.is_trading_day(day):
            return False
        t = local.time().replace(tzinfo=None)
        return self.open_time <= t < self.close_on(day)

    def session_bounds(self, day: date) -> tuple[int, int]:
        """Open and close of ``day``'s session, ns since the epoch."""
        zone = ZoneInfo(self.tz)
        start = datetime.combine(day, self.open_time, zone)
        end = datetime.combine(day, self.close_on(day), zone)
        return int(start.timestamp()) * NS_PER_SECOND, int(end.timestamp()) * NS_PER_SECOND

    def session_close_after(self, ts_ns: int) -> int:
        """The close of the first session that ends after ``ts_ns`` (ns since the epoch).

        During a session: its close; before the open, after the close or on a closed day:
        the close of the next session.
        """
        day = self._local(ts_ns).date()
        for _ in range(400):
            if self.is_trading_day(day):
                end = self.session_bounds(day)[1]
                if ts_ns < end:
                    return end
            day += timedelta(days=1)
        raise ValueError(f"{self.name}: no session within 400 days of {ts_ns}")

    def next_open(self, ts_ns: int) -> int:
        if self.is_open(ts_ns):
            return ts_ns
        day = self._local(ts_ns).date()
        for _ in range(400):  # more than a year of closed days means a broken calendar
            if self.is_trading_day(day):
                start, end = self.session_bounds(day)
                if ts_ns < end:
                    return max(start, ts_ns)
            day += timedelta(days=1)
        raise ValueError(f"{self.name}: no session within 400 days of {ts_ns}")


# -- NYSE --------------------------------------------------------------------------------------
def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month = (h + el - 7 * m + 114) // 31
    day = (h + el - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` (Monday = 0) of a month; ``n = -1`` is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    """Saturday holidays move to Friday, Sunday holidays to Monday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@cache
def nyse_holidays(year: int) -> frozenset[date]:
    """NYSE full-day holidays of ``year`` by the exchange's standing rules.

    New Year's Day (not moved back into the previous year when it falls on a
    Saturday), Martin Luther King Jr. Day (from 1998), Washington's Birthday, Good
    Friday, Memorial Day, Juneteenth (from 2022), Independence Day, Labor Day,
    Thanksgiving and Christmas.
    """
    days = {
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday: third Monday of February
        _easter(year) - timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day: last Monday of May
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day: first Monday of September
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving: fourth Thursday of November
        _observed(date(year, 12, 25)),
    }
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:
        days.add(_observed(new_year))
    if year >= 1998:
        days.add(_nth_weekday(year, 1, 0, 3))  # Martin Luther King Jr. Day
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))
    return frozenset(days)


#: Early closes the standing rules do not produce (the Friday after Christmas 2003).
NYSE_IRREGULAR_EARLY_CLOSES = {date(2003, 12, 26): time(13, 0)}


@cache
def nyse_early_closes(year: int) -> Mapping[date, time]:
    """NYSE 13:00 early closes of ``year`` by the exchange's standing rules.

    The day before Independence Day when it falls Monday to Thursday (on a Friday it is
    the observed holiday itself), the day after Thanksgiving, and Christmas Eve when it
    falls Monday to Thursday (a Friday Christmas Eve is the observed Christmas holiday).
    For 2013, the year of the bundled minute data: 3 July, 29 November and 24 December.
    """
    one = time(13, 0)
    days = {_nth_weekday(year, 11, 3, 4) + timedelta(days=1): one}
    for candidate in (date(year, 7, 3), date(year, 12, 24)):
        if candidate.weekday() <= 3:
            days[candidate] = one
    days.update({d: t for d, t in NYSE_IRREGULAR_EARLY_CLOSES.items() if d.year == year})
    holidays = nyse_holidays(year)
    return {d: t for d, t in days.items() if d not in holidays}


def nyse(
    holidays: bool = False,
    years: Iterable[int] = range(1990, 2101),
    extra_holidays: Iterable[date] = (),
) -> ExchangeHours:
    """The NYSE regular session, 09:30-16:00 America/New_York, Monday to Friday.

    ``holidays``: also the full-day holidays and the 13:00 early closes of ``years``.
    """
    days: set[date] = set(extra_holidays)
    early: dict[date, time] = {}
    if holidays:
        for year in years:
            days |= nyse_holidays(year)
            early.update(nyse_early_closes(year))
    return ExchangeHours(
        name="NYSE",
        tz="America/New_York",
        open_time=time(9, 30),
        close_time=time(16, 0),
        holidays=frozenset(days),
        early_closes={d: t for d, t in early.items() if d not in days},
    )


def calendar_for(name: str, holidays: bool = False) -> TradingCalendar:
    """``"crypto"``/``"24/7"`` or ``"nyse"``/``"equity"`` -> a calendar."""
    key = name.strip().lower()
    if key in ("crypto", "24/7", "always", "continuous"):
        return AlwaysOpen()
    if key in ("nyse", "equity", "us_equity", "us-equity"):
        return nyse(holidays=holidays)
    raise ValueError(f"unknown market calendar {name!r} (use crypto or nyse)")
