"""What casework publishes: command outcomes, recorded events and escalation notices."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.events.commands import Category, LapseReason, Level, Stage


class OutcomeError(BaseModel):
    """Why a command was not accepted: a stable code and a sentence a person can act on."""

    model_config = ConfigDict(frozen=True)
    code: str
    message: str


class Outcome(BaseModel):
    """Intake's answer to one command, on casework.events as command.<status>.<user> and to reply_to.

    A repeat of an already processed message_id answers `duplicate`, carrying the first
    answer's status, stream and error in `original_status`, `stream_id` and `error`.
    """

    model_config = ConfigDict(frozen=True)
    schema_version: Literal[1] = 1
    command_id: str
    command: str | None = None
    status: Literal["accepted", "rejected", "duplicate"]
    stream_id: UUID | None = None
    version: int | None = None
    error: OutcomeError | None = None
    original_status: Literal["accepted", "rejected"] | None = None


class EventMessage(BaseModel):
    """A recorded event as published on casework.events; the event's own fields follow the envelope."""

    model_config = ConfigDict(extra="allow", frozen=True)
    schema_version: Literal[1] = 1
    stream_id: UUID
    version: int
    event: str
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    branch_id: str
    hash: str
    prev_hash: str

    def field(self, name: str, default: Any = None) -> Any:
        """One of the event's own fields (those beyond the envelope)."""
        return (self.model_extra or {}).get(name, default)


class EscalationNotice(BaseModel):
    """An escalation, on casework.escalations as branch.<id>, regional.<id> or hq.<department>.

    HQ departments, regional offices and branch heads subscribe to the keys meant for them.
    """

    model_config = ConfigDict(frozen=True)
    schema_version: Literal[1] = 1
    case_id: UUID
    case_ref: str
    branch_id: str
    region_id: str
    department: str
    level: Level
    category: Category
    waybill_no: str
    reason: LapseReason | str
    escalated_at: AwareDatetime
    # Who holds the case as it climbs, so that whoever is told knows whom to chase: the named
    # staff member (null where none was named) and their branch (null for an escalation
    # recorded before notices carried it).
    owner: str | None = None
    owner_branch: str | None = None


class WarningNotice(BaseModel):
    """A stage is close to its deadline: warning.<branch_id> on casework.escalations, once per stage."""

    model_config = ConfigDict(frozen=True)
    schema_version: Literal[1] = 1
    case_id: UUID
    case_ref: str
    branch_id: str
    stage: Stage
    due_at: AwareDatetime
    warned_at: AwareDatetime
