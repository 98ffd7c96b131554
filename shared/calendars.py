"""Business-time arithmetic for SLA deadlines: working hours, rest days and holidays per region."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar  # type: ignore[import-untyped,unused-ignore]
import holidays as holidays_lib
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_ZERO = timedelta(0)
# Longer than any real closure; only a spec with no reachable working day gets this far.
_MAX_IDLE_DAYS = 3660


def _minutes(span: str) -> tuple[int, int]:
    match = _SPAN.fullmatch(span.strip())
    if not match:
        raise ValueError(f"{span!r} is not a span of the form 'HH:MM-HH:MM'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or end <= start:
        raise ValueError(f"{span!r} is not a span within one day (00:00 to 24:00, end after start)")
    return start, end


def _to_us(at: datetime) -> int:
    return (at - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class CalendarSpec(BaseModel):
    """When a region works: its zone, daily working spans, rest days and holidays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str
    always_open: bool = False
    working_hours: list[str] = ["09:00-12:00", "13:30-18:00"]
    rest_days: list[str] = ["sat", "sun"]
    holidays: str | None = "CN"
    extra_holidays: list[date] = []
    extra_working_days: list[date] = []

    def __hash__(self) -> int:
        # Frozen, but the list fields defeat pydantic's own hash; calendars are cached per spec.
        return hash(tuple(tuple(v) if isinstance(v, list) else v for v in self.__dict__.values()))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _valid_spans(cls, value: list[str]) -> list[str]:
        previous_end = 0
        for span in value:
            start, end = _minutes(span)
            if start < previous_end:
                raise ValueError(f"{span!r} overlaps or precedes the span before it")
            previous_end = end
        return [span.strip() for span in value]

    @field_validator("rest_days")
    @classmethod
    def _valid_weekdays(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        unknown = [name for name in names if name not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
        if set(names) == set(WEEKDAYS):
            raise ValueError("every weekday is a rest day; nothing would ever be due")
        return names

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        try:
            holidays_lib.country_holidays(code)
        except NotImplementedError:
            raise ValueError(f"no public-holiday list for country {value!r}") from None
        return code

    @model_validator(mode="after")
    def _consistent(self) -> CalendarSpec:
        if not self.always_open and not self.working_hours:
            raise ValueError("working_hours is empty, so the calendar never opens")
        both = sorted(set(self.extra_holidays) & set(self.extra_working_days))
        if both:
            raise ValueError(f"extra_holidays and extra_working_days both list {both[0]}")
        return self


TWENTY_FOUR_SEVEN = CalendarSpec(timezone="UTC", always_open=True, holidays=None)

_DaySpans = tuple[int, tuple[tuple[int, int], ...]]


class BusinessCalendar:
    """Working-time arithmetic over one CalendarSpec; instants are exact to the microsecond."""

    def __init__(self, spec: CalendarSpec) -> None:
        self.spec = spec
        self._tz = ZoneInfo(spec.timezone)
        self._spans = [_minutes(span) for span in spec.working_hours]
        self._rest = frozenset(WEEKDAYS.index(name) for name in spec.rest_days)
        self._closed = frozenset(spec.extra_holidays)
        self._open = frozenset(spec.extra_working_days)
        self._public = holidays_lib.country_holidays(spec.holidays) if spec.holidays else None
        # Keyed by local date ordinal: each day is converted to UTC spans once, then reused.
        self._day = functools.lru_cache(maxsize=8192)(self._compute_day)

    @classmethod
    def from_spec(cls, spec: CalendarSpec) -> BusinessCalendar:
        calendar = _INSTANCES.get((cls, spec))
        if calendar is None:
            calendar = _INSTANCES[(cls, spec)] = cls(spec)
        return calendar

    def is_working_day(self, day: date) -> bool:
        if self.spec.always_open or day in self._open:
            return True
        if day in self._closed:
            return False
        if self.spec.holidays == "CN":
            # chinese_calendar alone knows the adjusted working days (调休); a named day is
            # a statutory holiday or its make-up working day, whatever the rest days say.
            try:
                off, name = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:
                pass
            else:
                return not off if name is not None else day.weekday() not in self._rest
        if self._public is not None and day in self._public:
            return False
        return day.weekday() not in self._rest

    def is_working_time(self, at: datetime) -> bool:
        t = self._us(at)
        if self.spec.always_open:
            return True
        return any(s <= t < e for s, e in self._day(self._ordinal(at))[1])

    def next_opening(self, at: datetime) -> datetime:
        t = self._us(at)
        if not self.spec.always_open:
            for _, spans in self._days(self._ordinal(at)):
                for s, e in spans:
                    if e > t:
                        return _from_us(max(s, t))
        return at.astimezone(UTC)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        if duration < _ZERO:
            raise ValueError(f"duration must not be negative, got {duration}")
        t = self._us(start)
        if self.spec.always_open or not duration:
            return start.astimezone(UTC) + duration
        remaining = duration // _US
        for total, spans in self._days(self._ordinal(start)):
            if total < remaining and spans[0][0] >= t:
                remaining -= total
                continue
            for s, e in spans:
                if e > t:
                    s = max(s, t)  # noqa: PLW2901
                    if remaining <= e - s:
                        return _from_us(s + remaining)
                    remaining -= e - s
        raise AssertionError("unreachable: _days never ends")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        t0, t1 = self._us(start), self._us(end)
        if t1 <= t0:
            return _ZERO
        if self.spec.always_open:
            return timedelta(microseconds=t1 - t0)
        worked = 0
        for ordinal in range(self._ordinal(start), self._ordinal(end) + 1):
            total, spans = self._day(ordinal)
            if spans and spans[0][0] >= t0 and spans[-1][1] <= t1:
                worked += total
            else:
                worked += sum(max(0, min(e, t1) - max(s, t0)) for s, e in spans)
        return timedelta(microseconds=worked)

    def _us(self, at: datetime) -> int:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"datetime must be timezone-aware, got naive {at.isoformat()}")
        return _to_us(at)

    def _ordinal(self, at: datetime) -> int:
        return at.astimezone(self._tz).toordinal()

    def _days(self, ordinal: int) -> Iterator[_DaySpans]:
        idle = 0
        while True:
            day = self._day(ordinal)
            if day[1]:
                idle = 0
                yield day
            else:
                idle += 1
                if idle > _MAX_IDLE_DAYS:
                    raise ValueError(f"calendar {self.spec} has no working time ahead")
            ordinal += 1

    def _compute_day(self, ordinal: int) -> _DaySpans:
        day = date.fromordinal(ordinal)
        if not self.is_working_day(day):
            return 0, ()
        midnight = datetime.combine(day, time())
        spans = []
        for start, end in self._spans:
            s = self._wall_to_us(midnight + timedelta(minutes=start))
            e = self._wall_to_us(midnight + timedelta(minutes=end))
            if e > s:  # a span wholly inside a spring-forward gap does not exist that day
                spans.append((s, e))
        return sum(e - s for s, e in spans), tuple(spans)

    def _wall_to_us(self, wall: datetime) -> int:
        # fold=0 picks the first of a repeated wall time; a wall time skipped by a DST jump
        # maps to the jump itself, found by bisection between its two possible readings.
        lo = _to_us(wall.replace(tzinfo=self._tz, fold=1))
        hi = _to_us(wall.replace(tzinfo=self._tz))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _from_us(mid).astimezone(self._tz).replace(tzinfo=None) >= wall:
                hi = mid
            else:
                lo = mid
        return hi


# Specs come from the policy file, so there are only a handful of distinct ones.
_INSTANCES: dict[tuple[type[BusinessCalendar], CalendarSpec], BusinessCalendar] = {}
