"""Time, injected: the wall clock in production, a clock tests and the simulator move by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to; listeners (the scheduler) hear every move."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)
        self.listeners: list[Callable[[], None]] = []

    def __call__(self) -> datetime:
        return self.now

    def listen(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self.now + delta)

    def set(self, moment: datetime) -> datetime:
        self.now = moment.astimezone(UTC)
        for listener in self.listeners:
            listener()
        return self.now
