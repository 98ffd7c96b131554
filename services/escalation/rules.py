"""The SLA rules clocks are computed under: one policy version, and which version was in force when."""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from shared.calendars import TWENTY_FOUR_SEVEN, BusinessCalendar
from shared.policy import Policy


class Rules:
    """One policy version's SLA section, read the way the clocks need it."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.version = policy.version
        self.warning_at = policy.sla.warning_at
        self.ladder_step = policy.sla.ladder_step
        self._calendars: dict[str, BusinessCalendar] = {}

    def deadline(self, stage: str, category: str) -> dt.timedelta | None:
        return self.policy.sla.deadline(stage, category)

    def calendar(self, branch_id: str) -> BusinessCalendar:
        """The working time of the branch's region; a branch the policy no longer names works 24x7."""
        found = self._calendars.get(branch_id)
        if found is None:
            spec = (self.policy.calendar_for_branch(branch_id) if branch_id in self.policy.organisation.branches
                    else TWENTY_FOUR_SEVEN)
            found = self._calendars[branch_id] = BusinessCalendar.from_spec(spec)
        return found

    def department(self, category: str) -> str:
        return self.policy.department_for(category)


class PolicyBook:
    """The policy versions in the order they took effect; a clock started at t follows the one in force at t."""

    def __init__(self, entries: Sequence[tuple[dt.datetime, Rules]]) -> None:
        if not entries:
            raise ValueError("a policy book needs at least one policy")
        ordered = sorted(entries, key=lambda entry: entry[0])
        self._since = [since for since, _ in ordered]
        self._rules = [rules for _, rules in ordered]

    @classmethod
    def single(cls, policy: Policy) -> PolicyBook:
        return cls([(dt.datetime.min.replace(tzinfo=dt.UTC), Rules(policy))])

    def at(self, moment: dt.datetime) -> Rules:
        # Facts older than the first recorded policy follow the first one: nothing earlier is known.
        index = bisect.bisect_right(self._since, moment) - 1
        return self._rules[max(index, 0)]

    @property
    def latest(self) -> Rules:
        return self._rules[-1]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return int(value.total_seconds())
    if isinstance(value, dt.date | Decimal):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a policy document")


def policy_document(policy: Policy) -> str:
    """The policy as JSON that validates back into the same Policy (durations in seconds)."""
    return json.dumps(policy.model_dump(mode="python"), default=_plain, sort_keys=True, ensure_ascii=False)


def policy_from_document(document: str) -> Policy:
    return Policy.model_validate(json.loads(document))
