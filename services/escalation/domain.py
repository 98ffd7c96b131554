"""What the escalation service reasons about: complaint facts, case clocks, and the effects of a lapse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.calendars import BusinessCalendar

LEVELS = ("branch", "regional", "hq")
STAGES = ("verify", "remediate", "close")
TOP = len(LEVELS) - 1
NO_RUNG = -1
ZERO = timedelta(0)


@dataclass(frozen=True)
class Lapse:
    """The stage and due time an escalation by this service was sent for."""

    stage: str
    due_at: datetime


@dataclass(frozen=True)
class Fact:
    """One recorded complaint event, reduced to what the clocks read."""

    case_id: str
    version: int
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    branch_id: str = ""
    category: str = ""
    case_ref: str = ""
    level: str = ""
    department: str = ""
    command_id: str = ""
    lapse: Lapse | None = None


@dataclass
class Timer:
    """A deadline in working time: an instant while the case runs, the working time left while paused."""

    at: datetime | None = None
    left: timedelta | None = None

    def pause(self, moment: datetime, calendar: BusinessCalendar) -> None:
        if self.at is not None:
            self.left, self.at = calendar.elapsed(moment, self.at), None

    def resume(self, moment: datetime, calendar: BusinessCalendar) -> None:
        if self.left is not None:
            self.at, self.left = calendar.add(moment, self.left), None


def _timer(timer: Timer | None) -> Timer | None:
    return None if timer is None else Timer(timer.at, timer.left)


@dataclass
class StageClock:
    """One stage (verify, remediate, close) of one cycle of a case; a reopening starts a new cycle."""

    cycle: int = 0
    phase: str = "idle"  # idle, running, lapsed, done
    policy: str = ""
    started_at: datetime | None = None
    step: timedelta = ZERO
    due: Timer | None = None
    warn: Timer | None = None
    warned: bool = False
    lapsed_at: datetime | None = None


@dataclass
class CaseClock:
    """Everything the service knows about one case: its stages, the rung reached, its pauses."""

    case_id: str
    branch_id: str = ""
    category: str = ""
    case_ref: str = ""
    version: int = 0
    closed: bool = False
    reached: int = NO_RUNG
    sent: int = NO_RUNG
    last_escalation: datetime | None = None
    climb: Timer | None = None
    paused_since: datetime | None = None
    paused_total: timedelta = ZERO
    pauses: int = 0
    stages: dict[str, StageClock] = field(default_factory=lambda: {name: StageClock() for name in STAGES})

    def copy(self) -> CaseClock:
        """A copy the ladder may change: timers and stages are the only mutable parts.

        The ladder copies a clock for every fact it applies; `copy.deepcopy` cost two thirds
        of a rebuild.
        """
        clone = object.__new__(CaseClock)
        clone.__dict__.update(self.__dict__)
        clone.climb = _timer(self.climb)
        clone.stages = {}
        for name, stage in self.stages.items():
            copied = object.__new__(StageClock)
            copied.__dict__.update(stage.__dict__)
            copied.due, copied.warn = _timer(stage.due), _timer(stage.warn)
            clone.stages[name] = copied
        return clone

    @property
    def rung(self) -> int:
        """The highest rung recorded, or sent and not yet seen recorded."""
        return max(self.reached, self.sent)


@dataclass(frozen=True)
class Escalation:
    """complaint.escalate to send: one rung up, for a stage that lapsed."""

    case_id: str
    stage: str
    cycle: int
    level: str
    department: str
    due_at: datetime
    overdue_seconds: int
    decided_at: datetime

    @property
    def message_id(self) -> str:
        # Deterministic, so that a repeat after a crash or from a second process collapses at intake.
        return f"escalate:{self.case_id}:{self.stage}-{self.cycle}:{self.level}"


@dataclass(frozen=True)
class StageWarning:
    """A stage reached its warning threshold: warning.<branch_id> on casework.escalations."""

    case_id: str
    case_ref: str
    branch_id: str
    stage: str
    cycle: int
    due_at: datetime
    warned_at: datetime

    @property
    def message_id(self) -> str:
        return f"warning:{self.case_id}:{self.stage}:{self.cycle}"


Effect = Escalation | StageWarning


@dataclass(frozen=True, order=True)
class Action:
    """The next thing due on a case: a warning, a stage's lapse, or a climb after a ladder step."""

    at: datetime
    rank: int
    stage_index: int
    kind: str

    @property
    def stage(self) -> str:
        return STAGES[self.stage_index]
