"""Business-time arithmetic: weekends, CN holidays and 调休, lunch, time zones, DST, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.calendars import TWENTY_FOUR_SEVEN, BusinessCalendar, CalendarSpec

SHANGHAI = ZoneInfo("Asia/Shanghai")
URUMQI = ZoneInfo("Asia/Urumqi")
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)

CN = BusinessCalendar(CalendarSpec(timezone="Asia/Shanghai"))
CN_SIX_DAY = BusinessCalendar(
    CalendarSpec(
        timezone="Asia/Shanghai", working_hours=["08:30-12:00", "13:30-18:00"], rest_days=["sun"]
    )
)
BERLIN_DAILY = BusinessCalendar(CalendarSpec(timezone="Europe/Berlin", rest_days=[], holidays=None))


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=SHANGHAI)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


# --- weekends, nights and lunch --------------------------------------------------------------


def test_friday_afternoon_deadline_lands_on_monday_morning() -> None:
    due = CN.add(sh(2025, 6, 13, 16, 0), 4 * H)  # Fri 16:00-18:00, then Mon from 09:00
    assert due == utc(2025, 6, 16, 3, 0)
    assert due.tzinfo is UTC
    assert due.astimezone(SHANGHAI) == sh(2025, 6, 16, 11, 0)
    assert CN.elapsed(sh(2025, 6, 13, 16, 0), due) == 4 * H


def test_crosses_lunch_break() -> None:
    assert CN.add(sh(2025, 6, 10, 11, 0), 3 * H) == sh(2025, 6, 10, 15, 30)


def test_crosses_the_night() -> None:
    assert CN.add(sh(2025, 6, 10, 17, 0), 2 * H) == sh(2025, 6, 11, 10, 0)


def test_ends_exactly_at_closing_time() -> None:
    assert CN.add(sh(2025, 6, 10, 17, 0), H) == sh(2025, 6, 10, 18, 0)


def test_start_outside_hours_counts_from_next_opening() -> None:
    assert CN.add(sh(2025, 6, 14, 10, 0), 30 * timedelta(minutes=1)) == sh(2025, 6, 16, 9, 30)
    assert CN.add(sh(2025, 6, 10, 12, 15), H) == sh(2025, 6, 10, 14, 30)
    assert CN.add(sh(2025, 6, 10, 6, 0), H) == sh(2025, 6, 10, 10, 0)


def test_zero_duration_is_start_itself_even_outside_hours() -> None:
    start = sh(2025, 6, 14, 3, 7, 9, 123456)
    assert CN.add(start, timedelta(0)) == start
    assert CN.add(start, timedelta(0)).tzinfo is UTC


def test_microsecond_exact() -> None:
    due = CN.add(sh(2025, 6, 10, 11, 59, 59, 999999), timedelta(microseconds=2))
    assert due == sh(2025, 6, 10, 13, 30, 0, 1)


def test_next_opening_and_is_working_time() -> None:
    assert CN.next_opening(sh(2025, 6, 14, 10, 0)) == sh(2025, 6, 16, 9, 0)
    assert CN.next_opening(sh(2025, 6, 10, 12, 30)) == sh(2025, 6, 10, 13, 30)
    inside = sh(2025, 6, 10, 10, 0)
    assert CN.next_opening(inside) == inside
    assert CN.next_opening(inside).tzinfo is UTC
    assert CN.is_working_time(inside)
    assert not CN.is_working_time(sh(2025, 6, 10, 12, 0))
    assert not CN.is_working_time(sh(2025, 6, 10, 18, 0))
    assert not CN.is_working_time(sh(2025, 6, 14, 10, 0))


def test_rejects_naive_datetimes_and_negative_durations() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CN.add(datetime(2025, 6, 10, 10, 0), H)
    with pytest.raises(ValueError, match="timezone-aware"):
        CN.is_working_time(datetime(2025, 6, 10, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        CN.elapsed(sh(2025, 6, 10, 10, 0), datetime(2025, 6, 11, 10, 0))
    with pytest.raises(ValueError, match="negative"):
        CN.add(sh(2025, 6, 10, 10, 0), -H)


def test_elapsed_is_zero_when_end_not_after_start() -> None:
    assert CN.elapsed(sh(2025, 6, 10, 11, 0), sh(2025, 6, 10, 10, 0)) == timedelta(0)
    assert CN.elapsed(sh(2025, 6, 10, 11, 0), sh(2025, 6, 10, 11, 0)) == timedelta(0)


# --- China: National Day 2025 and its adjusted working days (调休) ------------------------------


def test_chinese_calendar_knows_national_day_2025() -> None:
    assert CN.is_working_day(date(2025, 9, 28))  # Sunday, adjusted working day
    assert all(not CN.is_working_day(date(2025, 10, d)) for d in range(1, 9))
    assert CN.is_working_day(date(2025, 10, 9))
    assert CN.is_working_day(date(2025, 10, 11))  # Saturday, adjusted working day
    assert not CN.is_working_day(date(2025, 10, 12))
    assert not CN.is_working_day(date(2025, 10, 18))  # an ordinary Saturday


def test_deadline_from_before_national_day_uses_adjusted_saturday() -> None:
    start = sh(2025, 9, 30, 16, 0)
    # 2h on 30 Sep, nothing 1-8 Oct, 7.5h on each of 9 and 10 Oct, then the working Saturday.
    assert CN.add(start, 2 * H + 2 * H) == sh(2025, 10, 9, 11, 0)
    due = CN.add(start, 2 * H + 15 * H + H)
    assert due == sh(2025, 10, 11, 10, 0)
    assert due == utc(2025, 10, 11, 2, 0)
    assert CN.elapsed(sh(2025, 10, 11, 0, 0), sh(2025, 10, 12, 0, 0)) == timedelta(hours=7.5)
    assert CN.elapsed(start, due) == 18 * H


def test_thirty_working_days_across_the_holiday_week() -> None:
    start = sh(2025, 9, 26, 9, 0)  # Friday
    due = CN.add(start, 30 * timedelta(hours=7.5))
    # Working days from 26 Sep: 26, 28, 29, 30 Sep; 9, 10, 11 Oct; then 23 ordinary weekdays.
    assert due == sh(2025, 11, 12, 18, 0)
    assert CN.elapsed(start, due) == 30 * timedelta(hours=7.5)


def test_six_day_week_still_closes_for_holiday_saturdays() -> None:
    assert CN_SIX_DAY.is_working_day(date(2025, 10, 18))  # ordinary Saturday
    assert not CN_SIX_DAY.is_working_day(date(2025, 10, 4))  # Saturday inside National Day
    assert CN_SIX_DAY.is_working_day(date(2025, 9, 28))  # adjusted working Sunday
    assert not CN_SIX_DAY.is_working_day(date(2025, 10, 19))
    assert CN_SIX_DAY.add(sh(2025, 10, 17, 17, 0), 2 * H) == sh(2025, 10, 18, 9, 30)


def test_falls_back_to_holidays_library_outside_chinese_calendar_years() -> None:
    assert not CN.is_working_day(date(2035, 10, 1))
    assert not CN.is_working_day(date(2035, 1, 1))
    assert CN.is_working_day(date(2035, 10, 9))
    assert not CN.is_working_day(date(2035, 10, 13))  # Saturday


def test_extra_holidays_and_working_days() -> None:
    cal = BusinessCalendar(
        CalendarSpec(
            timezone="Asia/Shanghai",
            extra_holidays=[date(2025, 6, 11)],
            extra_working_days=[date(2025, 6, 14), date(2025, 10, 2)],
        )
    )
    assert not cal.is_working_day(date(2025, 6, 11))
    assert cal.is_working_day(date(2025, 6, 14))
    assert cal.is_working_day(date(2025, 10, 2))
    assert cal.add(sh(2025, 6, 10, 17, 0), 2 * H) == sh(2025, 6, 12, 10, 0)


# --- time zones and daylight saving ---------------------------------------------------------


def test_same_utc_start_gives_different_deadlines_per_zone() -> None:
    start = utc(2025, 6, 10, 8, 0)  # 16:00 Shanghai, 14:00 Urumqi, 10:00 Berlin
    urumqi = BusinessCalendar(CalendarSpec(timezone="Asia/Urumqi"))
    berlin = BusinessCalendar(CalendarSpec(timezone="Europe/Berlin", holidays="DE"))
    deadlines = {
        "shanghai": CN.add(start, 4 * H),
        "urumqi": urumqi.add(start, 4 * H),
        "berlin": berlin.add(start, 4 * H),
    }
    assert deadlines == {
        "shanghai": utc(2025, 6, 11, 3, 0),
        "urumqi": utc(2025, 6, 10, 12, 0),
        "berlin": utc(2025, 6, 10, 13, 30),
    }
    assert deadlines["shanghai"].astimezone(SHANGHAI) == sh(2025, 6, 11, 11, 0)
    assert deadlines["urumqi"] == datetime(2025, 6, 10, 18, 0, tzinfo=URUMQI)
    assert deadlines["berlin"] == datetime(2025, 6, 10, 15, 30, tzinfo=BERLIN)


def test_berlin_spring_forward_keeps_local_opening_hours() -> None:
    start = datetime(2025, 3, 29, 17, 0, tzinfo=BERLIN)  # Saturday, CET
    due = BERLIN_DAILY.add(start, 2 * H)
    assert due == datetime(2025, 3, 30, 10, 0, tzinfo=BERLIN)
    assert due == utc(2025, 3, 30, 8, 0)
    assert BERLIN_DAILY.next_opening(utc(2025, 3, 30, 6, 30)) == utc(2025, 3, 30, 7, 0)


def test_berlin_fall_back_keeps_local_opening_hours() -> None:
    start = datetime(2025, 10, 25, 17, 0, tzinfo=BERLIN)  # Saturday, CEST
    due = BERLIN_DAILY.add(start, 2 * H)
    assert due == utc(2025, 10, 26, 9, 0)  # 10:00 CET


def test_dst_days_contribute_their_real_length() -> None:
    cal = BusinessCalendar(
        CalendarSpec(
            timezone="Europe/Berlin", working_hours=["00:00-24:00"], rest_days=[], holidays=None
        )
    )
    short_day = datetime(2025, 3, 30, tzinfo=BERLIN), datetime(2025, 3, 31, tzinfo=BERLIN)
    long_day = datetime(2025, 10, 26, tzinfo=BERLIN), datetime(2025, 10, 27, tzinfo=BERLIN)
    assert cal.elapsed(*short_day) == 23 * H
    assert cal.elapsed(*long_day) == 25 * H
    assert cal.add(short_day[0], 24 * H) == datetime(2025, 3, 31, 1, 0, tzinfo=BERLIN)
    assert cal.add(long_day[0], 24 * H) == datetime(2025, 10, 26, 23, 0, tzinfo=BERLIN)


def test_span_starting_inside_the_dst_gap_opens_at_the_jump() -> None:
    cal = BusinessCalendar(
        CalendarSpec(
            timezone="Europe/Berlin", working_hours=["02:30-03:30"], rest_days=[], holidays=None
        )
    )
    day = datetime(2025, 3, 30, tzinfo=BERLIN), datetime(2025, 3, 31, tzinfo=BERLIN)
    assert cal.elapsed(*day) == timedelta(minutes=30)  # 02:30-03:00 never happens that night
    assert cal.next_opening(day[0]) == utc(2025, 3, 30, 1, 0)


# --- 24x7 -------------------------------------------------------------------------------------


def test_twenty_four_seven_is_plain_addition() -> None:
    cal = BusinessCalendar.from_spec(TWENTY_FOUR_SEVEN)
    start = datetime(2025, 3, 30, 1, 30, tzinfo=BERLIN)
    assert cal.add(start, 2 * H) == utc(2025, 3, 30, 2, 30)
    # Elapsed time, not wall-clock: Berlin's clocks go forward that night.
    month = timedelta(days=30, microseconds=7)
    assert cal.add(start, month) == start.astimezone(UTC) + month == utc(2025, 4, 29, 0, 30, 0, 7)
    assert cal.elapsed(start, datetime(2025, 3, 30, 4, 0, tzinfo=BERLIN)) == timedelta(hours=1.5)
    assert cal.is_working_time(sh(2025, 10, 1, 3, 0))
    assert cal.next_opening(start) == start
    assert cal.is_working_day(date(2025, 10, 1))


def test_from_spec_caches_per_spec() -> None:
    spec = CalendarSpec(timezone="Asia/Shanghai", rest_days=["sun"])
    same = CalendarSpec(timezone="Asia/Shanghai", rest_days=["sun"])
    assert BusinessCalendar.from_spec(spec) is BusinessCalendar.from_spec(same)
    assert BusinessCalendar.from_spec(spec) is not BusinessCalendar.from_spec(TWENTY_FOUR_SEVEN)
    assert hash(spec) == hash(same)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "overrides", "fragment"),
    [
        ("timezone", {"timezone": "Mars/Olympus_Mons"}, "Mars/Olympus_Mons"),
        ("working_hours", {"working_hours": ["25:00-26:00"]}, "25:00-26:00"),
        ("working_hours", {"working_hours": ["09:00-12:00", "11:00-14:00"]}, "overlaps"),
        ("working_hours", {"working_hours": ["13:30-18:00", "09:00-12:00"]}, "precedes"),
        ("working_hours", {"working_hours": ["9-12"]}, "HH:MM-HH:MM"),
        ("working_hours", {"working_hours": ["12:00-09:00"]}, "12:00-09:00"),
        ("rest_days", {"rest_days": ["sat", "funday"]}, "funday"),
        ("holidays", {"holidays": "XX"}, "XX"),
    ],
)
def test_invalid_specs_name_the_field(
    field: str, overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        CalendarSpec.model_validate({"timezone": "Asia/Shanghai", **overrides})
    assert caught.value.errors()[0]["loc"] == (field,)
    assert field in str(caught.value)
    assert fragment in str(caught.value)


def test_invalid_whole_spec() -> None:
    with pytest.raises(ValidationError, match="working_hours"):
        CalendarSpec(timezone="UTC", working_hours=[])
    with pytest.raises(ValidationError, match="extra_working_days"):
        CalendarSpec(
            timezone="UTC", extra_holidays=[date(2025, 1, 2)], extra_working_days=[date(2025, 1, 2)]
        )
    with pytest.raises(ValidationError, match="extra"):
        CalendarSpec.model_validate({"timezone": "UTC", "hours": ["09:00-17:00"]})


def test_spec_normalises_and_is_frozen() -> None:
    spec = CalendarSpec(timezone="Europe/Berlin", rest_days=["Sat", " SUN"], holidays="de")
    assert spec.rest_days == ["sat", "sun"]
    assert spec.holidays == "DE"
    with pytest.raises(ValidationError):
        spec.timezone = "UTC"  # type: ignore[misc]


# --- properties -------------------------------------------------------------------------------

SPECS = [
    CalendarSpec(timezone="Asia/Shanghai"),
    CalendarSpec(
        timezone="Asia/Urumqi", working_hours=["10:00-14:00", "15:30-20:00"], rest_days=["sun"]
    ),
    CalendarSpec(timezone="Europe/Berlin", holidays="DE"),
    CalendarSpec(
        timezone="Europe/Berlin", working_hours=["01:00-02:45", "22:00-24:00"], rest_days=[]
    ),
    CalendarSpec(timezone="America/New_York", working_hours=["00:00-24:00"], holidays="US"),
    TWENTY_FOUR_SEVEN,
]
starts = st.datetimes(
    min_value=datetime(2003, 1, 1),
    max_value=datetime(2028, 12, 31),
    timezones=st.sampled_from([UTC, SHANGHAI, BERLIN, ZoneInfo("America/New_York")]),
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


@settings(max_examples=300, deadline=None)
@given(spec=st.sampled_from(SPECS), start=starts, d1=durations, d2=durations)
def test_add_and_elapsed_are_inverse_and_add_is_monotonic(
    spec: CalendarSpec, start: datetime, d1: timedelta, d2: timedelta
) -> None:
    cal = BusinessCalendar.from_spec(spec)
    due = cal.add(start, d1)
    assert due.tzinfo is UTC
    assert due >= start
    assert cal.elapsed(start, due) == d1
    assert cal.elapsed(start, cal.add(start, d2)) == d2
    lo, hi = sorted((d1, d2))
    assert cal.add(start, lo) <= cal.add(start, hi)
    if d1:
        assert cal.add(start, d1) > cal.add(start, d1 - timedelta(microseconds=1))


@settings(max_examples=200, deadline=None)
@given(spec=st.sampled_from(SPECS), at=starts)
def test_next_opening_is_working_time(spec: CalendarSpec, at: datetime) -> None:
    cal = BusinessCalendar.from_spec(spec)
    opening = cal.next_opening(at)
    assert opening >= at
    assert cal.is_working_time(opening)
    assert cal.elapsed(at, opening) == timedelta(0)
    assert cal.add(at, timedelta(microseconds=1)) == opening + timedelta(microseconds=1)
