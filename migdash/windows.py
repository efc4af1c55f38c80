"""Rollout windows: when an environment allows changes to start.

Syntax (strict; one environment setting)::

    windows := window ( ";" window )*          (empty text: always allowed)
    window  := days " " HH:MM "-" HH:MM [ " " zone ]
    days    := day-or-range ( "," day-or-range )*
    day-or-range := Day | Day "-" Day          (Mon Tue Wed Thu Fri Sat Sun; Fri-Mon wraps)

e.g. ``Mon-Fri 22:00-02:00 UTC; Sat,Sun 00:00-24:00 Europe/Paris``.

The days are the days a window *starts*; an end at or before its start
crosses midnight into the next day.  Times are wall-clock times in the
window's zone (an IANA name read through :mod:`zoneinfo`, UTC when left out):
a window is open whenever the local wall clock is inside it, so around a DST
change it opens when the clock first shows a time inside it.  ``24:00`` may
only end a window.  Pure Python: no database, no Flask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from migdash.errors import InvalidInput

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*$")
HORIZON = timedelta(days=15)
"""Every valid window opens within a week; two cover a week lost to a DST gap."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    """Weekdays (Monday is 0) on which the window starts."""
    start: int
    """Minutes after local midnight (0..1439)."""
    end: int
    """Minutes after local midnight (0..1440); at or before *start*: the next day."""
    zone: str = "UTC"

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def open_at(self, local: datetime) -> bool:
        """Whether the wall clock *local* (in this window's zone) is inside the window."""
        minute = local.hour * 60 + local.minute
        today = local.weekday()
        if not self.crosses_midnight:
            return today in self.days and self.start <= minute < self.end
        if today in self.days and minute >= self.start:
            return True
        return (today - 1) % 7 in self.days and minute < self.end

    def __str__(self) -> str:
        return f"{_format_days(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)} {self.zone}"


def parse_windows(text: str) -> tuple[Window, ...]:
    """The windows in *text*; raises :class:`InvalidInput` naming the part at fault."""
    parts = [p.strip() for p in text.split(";")]
    if parts == [""]:
        return ()
    return tuple(_parse_window(part, n) for n, part in enumerate(parts, start=1))


def format_windows(windows: Iterable[Window]) -> str:
    """The canonical text of *windows* (``parse_windows`` reads it back unchanged)."""
    return "; ".join(str(w) for w in windows)


def is_open(windows: Sequence[Window], now: datetime) -> bool:
    """Whether a job may start at *now* (naive means UTC); no windows: always."""
    if not windows:
        return True
    instant = _aware(now)
    return any(w.open_at(instant.astimezone(_zone(w.zone))) for w in windows)


def next_opening(windows: Sequence[Window], now: datetime) -> datetime | None:
    """The first instant at or after *now* when a window is open (*now* itself if open).

    Returned naive UTC when *now* is naive, aware UTC otherwise; None only if
    nothing opens within :data:`HORIZON` (windows swallowed by DST gaps).
    """
    instant = _aware(now)
    if is_open(windows, instant):
        return now
    best: datetime | None = None
    for candidate in _candidates(windows, instant):
        later = candidate > instant and (best is None or candidate < best)
        if later and is_open(windows, candidate):
            best = candidate
    if best is None:
        return None
    return best.replace(tzinfo=None) if now.tzinfo is None else best


def describe_windows(windows: Sequence[Window]) -> str:
    return format_windows(windows) if windows else "always"


def _parse_window(part: str, n: int) -> Window:
    where = f"window {n} ({part!r})"
    if not part:
        raise _bad(f"{where} is empty", "Remove the extra ';'.")
    tokens = part.split()
    if len(tokens) not in (2, 3):
        raise _bad(f"{where} must be 'DAYS HH:MM-HH:MM [ZONE]'", "e.g. Mon-Fri 22:00-02:00 UTC")
    days = _parse_days(tokens[0], where)
    start, _, end = tokens[1].partition("-")
    span = f"{where}, times {tokens[1]!r}"
    start_min = _parse_time(start, span, allow_24=False)
    end_min = _parse_time(end, span, allow_24=True)
    if start_min == end_min:
        raise _bad(f"{where}: start and end are both {start}", "Use 00:00-24:00 for a whole day.")
    zone = tokens[2] if len(tokens) == 3 else "UTC"
    _check_zone(zone, where)
    return Window(days, start_min, end_min, zone)


def _parse_days(text: str, where: str) -> frozenset[int]:
    days: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        a = _day(first, where)
        b = _day(last, where) if dash else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def _day(name: str, where: str) -> int:
    for number, day in enumerate(DAYS):
        if name.lower() == day.lower():
            return number
    raise _bad(f"{where}: {name!r} is not a day", f"Days are {', '.join(DAYS)}.")


def _parse_time(text: str, where: str, *, allow_24: bool) -> int:
    match = TIME.match(text)
    minutes = int(match[1]) * 60 + int(match[2]) if match else -1
    if match is None or minutes > 1440 or (minutes == 1440 and not allow_24):
        raise _bad(
            f"{where}: {text!r} is not a time",
            "Times are HH:MM, 00:00 to 23:59 (24:00 only as an end), e.g. 22:00-02:00.",
        )
    return minutes


def _check_zone(zone: str, where: str) -> None:
    try:
        if ZONE.match(zone) and ".." not in zone:
            _zone(zone)
            return
    except (ValueError, OSError, KeyError):
        pass
    raise _bad(f"{where}: {zone!r} is not a time zone", "Use an IANA name: UTC, Europe/Paris.")


def _bad(message: str, hint: str) -> InvalidInput:
    return InvalidInput(f"rollout windows: {message}", hint=hint, field="windows")


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


def _aware(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _candidates(windows: Sequence[Window], now: datetime) -> Iterable[datetime]:
    """Every instant a window can open: each local start (both folds) and each offset change."""
    for name in {w.zone for w in windows}:
        zone = _zone(name)
        local_today = now.astimezone(zone).date()
        days = [local_today + timedelta(days=i) for i in range(-1, HORIZON.days + 1)]
        for window in (w for w in windows if w.zone == name):
            for day in days:
                if day.weekday() in window.days:
                    yield from _starts(day, window.start, zone)
        yield from _transitions(zone, now, now + HORIZON)


def _starts(day: date, minute: int, zone: tzinfo) -> Iterable[datetime]:
    wall = time(minute // 60, minute % 60)
    for fold in (0, 1):
        yield datetime.combine(day, wall, zone).replace(fold=fold).astimezone(UTC)


def _transitions(zone: tzinfo, begin: datetime, end: datetime) -> Iterable[datetime]:
    """Instants at which *zone*'s UTC offset changes in [begin, end], to the second."""

    def offset(second: int) -> timedelta | None:
        return datetime.fromtimestamp(second, UTC).astimezone(zone).utcoffset()

    at = int(begin.timestamp()) // 3600 * 3600
    while at < end.timestamp():
        nxt = at + 3600
        if offset(at) != offset(nxt):
            low, high = at, nxt
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if offset(mid) == offset(low) else (low, mid)
            yield datetime.fromtimestamp(high, UTC)
        at = nxt


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _format_days(days: frozenset[int]) -> str:
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        ",".join(DAYS[d] for d in r) if len(r) < 3 else f"{DAYS[r[0]]}-{DAYS[r[-1]]}" for r in runs
    )
