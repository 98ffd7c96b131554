"""Pydantic models of the policy file; every rule about its shape lives here."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from shared.calendars import TWENTY_FOUR_SEVEN, CalendarSpec

_DURATION = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")
CATEGORIES = ("damage", "shortage", "detention", "service", "other")
STAGES = ("verify", "remediate", "close")


def parse_duration(value: object) -> timedelta:
    """Read "90s", "15m", "4h", "2d", "1d12h" (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError(f"expected a duration such as '90s', '15m', '4h', '2d' or '1d12h', got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Amount = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(Strict):
    """A regional office (片区办公室) and the calendar its branches work by."""

    name: str
    calendar: str = "24x7"


class Branch(Strict):
    """A branch company."""

    name: str
    region: str


class Organisation(Strict):
    """Regions, branches and HQ's functional departments."""

    name: str = "casework"
    hq_timezone: str = "Asia/Shanghai"
    regions: dict[str, Region]
    branches: dict[str, Branch]
    departments: dict[str, str]

    @model_validator(mode="after")
    def _branches_in_known_regions(self) -> Organisation:
        for branch_id, branch in self.branches.items():
            if branch.region not in self.regions:
                raise ValueError(f"branches.{branch_id}.region: unknown region {branch.region!r}")
            if not re.fullmatch(r"[A-Z][A-Z0-9]{1,9}", branch_id):
                raise ValueError(f"branches.{branch_id}: a branch id is 2-10 capitals and digits")
        return self


Principal = str  # "branch:<id>", "hq:<department>", "regional:<region>", "service:<name>", "admin"


class StageDeadlines(Strict):
    """How long each stage may take, in the region's working time."""

    verify: Duration | None = None
    remediate: Duration | None = None
    close: Duration | None = None


class Sla(Strict):
    """Deadlines per stage, tighter ones per category, the ladder step and the warning threshold."""

    stages: StageDeadlines = StageDeadlines(
        verify=timedelta(hours=4), remediate=timedelta(days=1), close=timedelta(days=3)
    )
    categories: dict[str, StageDeadlines] = {}
    ladder_step: Duration = timedelta(hours=4)
    warning_at: Annotated[float, Field(gt=0, lt=1)] = 0.8
    departments: dict[str, str] = dict.fromkeys(CATEGORIES, "customer_service")

    @field_validator("categories", "departments")
    @classmethod
    def _known_categories(cls, value: dict[str, object]) -> dict[str, object]:
        for category in value:
            if category not in CATEGORIES:
                raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
        return value

    def deadline(self, stage: str, category: str) -> timedelta | None:
        """The stage's deadline for a category: the category's own, else the general one."""
        override = self.categories.get(category)
        own: timedelta | None = getattr(override, stage) if override else None
        general: timedelta | None = getattr(self.stages, stage)
        return own if own is not None else general


class RewardAmounts(Strict):
    reward: Amount
    penalty: Amount


class Rewards(Strict):
    """Surplus-goods rewards and shortage penalties (多货奖励机制), decided per period."""

    currency: Literal["CNY"] = "CNY"
    period: Literal["month", "week"] = "month"
    reward: Amount = Decimal("200.00")
    penalty: Amount = Decimal("200.00")
    categories: dict[str, RewardAmounts] = {}


class Policy(Strict):
    """The whole policy file."""

    organisation: Organisation
    users: dict[str, Principal]
    calendars: dict[str, CalendarSpec] = {}
    sla: Sla = Sla()
    rewards: Rewards = Rewards()
    version: str = ""

    @model_validator(mode="after")
    def _references_resolve(self) -> Policy:
        org = self.organisation
        for user, principal in self.users.items():
            kind, _, name = principal.partition(":")
            known: dict[str, set[str]] = {
                "branch": set(org.branches),
                "hq": set(org.departments),
                "regional": set(org.regions),
                "service": {"escalation", "rewards", "intake"},
            }
            if principal == "admin":
                continue
            if kind not in known or name not in known[kind]:
                raise ValueError(f"users.{user}: unknown principal {principal!r}")
        for region_id, region in org.regions.items():
            if region.calendar != "24x7" and region.calendar not in self.calendars:
                raise ValueError(f"organisation.regions.{region_id}.calendar: unknown calendar {region.calendar!r}")
        for category, department in self.sla.departments.items():
            if department not in org.departments:
                raise ValueError(f"sla.departments.{category}: unknown department {department!r}")
        return self

    def principal(self, user: str) -> Principal | None:
        """The principal a RabbitMQ user acts as, or None for a user the policy doesn't know."""
        return self.users.get(user)

    def calendar_for_branch(self, branch_id: str) -> CalendarSpec:
        """The business calendar of the branch's region."""
        region = self.organisation.regions[self.organisation.branches[branch_id].region]
        return TWENTY_FOUR_SEVEN if region.calendar == "24x7" else self.calendars[region.calendar]

    def region_of(self, branch_id: str) -> str:
        return self.organisation.branches[branch_id].region

    def department_for(self, category: str) -> str:
        return self.sla.departments.get(category, "customer_service")
