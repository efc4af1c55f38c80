"""Rollout windows: the parser is strict and round-trips; next_opening is the first open instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from migdash.errors import InvalidInput
from migdash.windows import (
    DAYS,
    Window,
    format_windows,
    is_open,
    next_opening,
    parse_windows,
)

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

windows_st = st.lists(
    st.builds(
        Window,
        days=st.frozensets(st.integers(0, 6), min_size=1),
        start=st.integers(0, 1439),
        end=st.integers(0, 1440),
        zone=st.sampled_from(ZONES),
    ).filter(lambda w: w.start != w.end),
    min_size=1,
    max_size=3,
).map(tuple)

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@given(windows_st)
def test_format_then_parse_round_trips(windows: tuple[Window, ...]) -> None:
    text = format_windows(windows)
    assert parse_windows(text) == windows
    assert format_windows(parse_windows(text)) == text


@given(st.text(max_size=40))
def test_garbage_is_refused_with_the_part_named(text: str) -> None:
    problem: InvalidInput | None = None
    try:
        windows = parse_windows(text)
    except InvalidInput as exc:
        problem = exc
    if problem is not None:
        assert problem.field == "windows"
        assert "window " in problem.message
    else:
        assert parse_windows(format_windows(windows)) == windows


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Mon-Fri 22:00-02:00 UTC; Sat,Sunday 00:00-24:00", "'Sunday' is not a day"),
        ("Mon 24:00-01:00", "'24:00' is not a time"),
        ("Mon 10:00-10:60", "'10:60' is not a time"),
        ("Mon 9:00-10:00", "'9:00' is not a time"),
        ("Mon 10:00-10:00", "start and end are both 10:00"),
        ("Mon 10:00-11:00 Mars/Olympus", "'Mars/Olympus' is not a time zone"),
        ("Mon 10:00-11:00 ../../etc/passwd", "is not a time zone"),
        ("Mon 10:00-11:00;", "window 2 ('') is empty"),
        ("Mon 10:00 11:00", "window 1 ('Mon 10:00 11:00')"),
    ],
)
def test_refusals_name_the_bad_part(text: str, named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_windows(text)
    assert named in caught.value.message


def test_syntax_examples() -> None:
    windows = parse_windows("mon-fri 22:00-02:00; Sat,Sun 00:00-24:00 UTC; Fri-Mon 01:00-02:00 UTC")
    assert windows[0] == Window(frozenset(range(5)), 22 * 60, 2 * 60, "UTC")
    assert windows[2].days == frozenset({4, 5, 6, 0})
    assert parse_windows("  ") == ()
    assert format_windows(windows[:1]) == "Mon-Fri 22:00-02:00 UTC"
    assert DAYS[windows[0].start // 60 - 22] == "Mon"


def test_crossing_midnight_belongs_to_the_start_day() -> None:
    windows = parse_windows("Fri 22:00-02:00")
    friday = datetime(2026, 11, 27)  # a Friday
    assert not is_open(windows, friday + timedelta(hours=21, minutes=59))
    assert is_open(windows, friday + timedelta(hours=22))
    assert is_open(windows, friday + timedelta(days=1, hours=1, minutes=59))
    assert not is_open(windows, friday + timedelta(days=1, hours=2))
    assert not is_open(windows, friday + timedelta(hours=1))  # Thursday night is not in it
    assert next_opening(windows, friday) == friday + timedelta(hours=22)


def test_empty_means_always() -> None:
    now = datetime(2026, 11, 27, 12, 0)
    assert is_open((), now)
    assert next_opening((), now) == now


def test_dst_spring_forward_opens_when_the_clock_jumps_into_the_window() -> None:
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    windows = parse_windows("Sun 02:30-04:00 America/New_York")
    before = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    opening = next_opening(windows, before)
    assert opening == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert opening.astimezone(ZoneInfo("America/New_York")).hour == 3


def test_dst_fall_back_local_times() -> None:
    # Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
    windows = parse_windows("Sun 02:15-02:45 Europe/Paris")
    first = next_opening(windows, datetime(2026, 10, 24, 22, 0, tzinfo=UTC))
    assert first == datetime(2026, 10, 25, 0, 15, tzinfo=UTC)  # 02:15 CEST
    second = next_opening(windows, datetime(2026, 10, 25, 0, 50, tzinfo=UTC))
    assert second == datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET, the second time


@settings(max_examples=150, deadline=None)
@given(windows_st, instants, st.floats(0, 1, exclude_max=True))
def test_next_opening_is_open_and_nothing_before_it_is(
    windows: tuple[Window, ...], now: datetime, fraction: float
) -> None:
    opening = next_opening(windows, now)
    assert opening is not None
    assert opening >= now
    assert is_open(windows, opening)
    if opening > now:
        assert not is_open(windows, now)
        between = now + (opening - now) * fraction
        assert between >= opening or not is_open(windows, between)
        assert not is_open(windows, max(now, opening - timedelta(seconds=1)))


@settings(max_examples=50, deadline=None)
@given(windows_st, instants)
def test_naive_utc_in_naive_utc_out(windows: tuple[Window, ...], now: datetime) -> None:
    naive = now.replace(tzinfo=None)
    opening = next_opening(windows, naive)
    aware = next_opening(windows, now)
    assert opening is not None
    assert aware is not None
    assert opening.tzinfo is None
    assert opening == aware.replace(tzinfo=None)
    assert is_open(windows, naive) == is_open(windows, now)


DST_CHANGES = [
    ("America/New_York", datetime(2026, 3, 8, 7, 0, tzinfo=UTC), 120),  # 02:00 -> 03:00
    ("America/New_York", datetime(2026, 11, 1, 6, 0, tzinfo=UTC), 120),  # 02:00 -> 01:00
    ("Europe/Paris", datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 120),
    ("Europe/Paris", datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 180),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC), 120),  # half an hour
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC), 120),
]
"""(zone, the instant its offset changes, the local minute of the change)."""


@st.composite
def around_a_dst_change(draw: st.DrawFn) -> tuple[tuple[Window, ...], datetime]:
    """Windows starting or ending near a zone's DST change, and a moment before it."""
    zone, change, minute = draw(st.sampled_from(DST_CHANGES))
    near = st.integers(max(0, minute - 90), minute + 90)
    start, end = draw(near), draw(st.one_of(near, st.integers(0, 1440)))
    assume(start != end)
    local_day = change.astimezone(ZoneInfo(zone)).weekday()
    days = draw(st.sampled_from([frozenset({local_day}), frozenset(range(7))]))
    now = change + timedelta(minutes=draw(st.integers(-36 * 60, 3 * 60)))
    return (Window(days, start, end, zone),), now


@settings(max_examples=400, deadline=None)
@given(around_a_dst_change(), st.floats(0, 1, exclude_max=True))
def test_next_opening_around_dst_changes(
    case: tuple[tuple[Window, ...], datetime], fraction: float
) -> None:
    windows, now = case
    opening = next_opening(windows, now)
    assert opening is not None
    assert is_open(windows, opening)
    between = now + (opening - now) * fraction
    assert between >= opening or not is_open(windows, between)
    assert opening == now or not is_open(windows, opening - timedelta(seconds=1))
