"""Commands that branch systems, HQ and the services publish to casework.commands."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

MAX_BODY_BYTES = 64 * 1024

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")]
BranchId = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,9}$")]
Department = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{1,31}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{2,30}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Share = Annotated[Decimal, Field(gt=0, le=1, max_digits=12, decimal_places=10)]
Period = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2]|W(0[1-9]|[1-4]\d|5[0-3]))$")]
Category = Literal["damage", "shortage", "detention", "service", "other"]
Level = Literal["branch", "regional", "hq"]
Stage = Literal["verify", "remediate", "close"]


class Command(BaseModel):
    """Base of every command body: strict, versioned, nothing unknown accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    routing_key: ClassVar[str]
    schema_version: Literal[1] = 1


class Customer(BaseModel):
    """The complaining customer, as the branch recorded them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Text
    phone: Phone


class ComplaintReceive(Command):
    """A branch registers a complaint (登记); creates the case stream."""

    routing_key: ClassVar[str] = "complaint.receive"
    branch_id: BranchId
    case_ref: Ref
    waybill_no: Ref
    category: Category
    customer: Customer
    description: LongText
    claimed_amount: Money | None = None
    occurred_at: AwareDatetime | None = None
    channel: Annotated[str, StringConstraints(max_length=32)] | None = None
    # The staff member who registered it: the case's named owner until it is handed over.
    received_by: Text | None = None


class ComplaintVerify(Command):
    """Staff restated the problem, the customer confirmed it, the cause was checked."""

    routing_key: ClassVar[str] = "complaint.verify"
    case_id: UUID
    verified_by: Text
    summary: LongText
    customer_confirmed: bool
    cause: LongText | None = None


class ComplaintHandOver(Command):
    """The case passes to a named colleague, possibly at another branch (互帮互助)."""

    routing_key: ClassVar[str] = "complaint.hand_over"
    case_id: UUID
    to: Text
    note: LongText
    to_branch: BranchId | None = None


class LapseReason(BaseModel):
    """Why the escalation service escalated: which stage lapsed, when, by how much."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    stage: Stage
    due_at: AwareDatetime
    overdue_seconds: Annotated[int, Field(ge=0)]


class ComplaintEscalate(Command):
    """The case climbs the ladder: by a branch by hand, or by the escalation service on a lapse."""

    routing_key: ClassVar[str] = "complaint.escalate"
    case_id: UUID
    level: Level
    reason: LapseReason | LongText
    department: Department | None = None


class ComplaintRemediate(Command):
    """The remedial measure taken and the compensation agreed (理赔)."""

    routing_key: ClassVar[str] = "complaint.remediate"
    case_id: UUID
    action: LongText
    remediated_by: Text
    compensation: Money | None = None


class ComplaintClose(Command):
    """The case is resolved."""

    routing_key: ClassVar[str] = "complaint.close"
    case_id: UUID
    closed_by: Text
    resolution: LongText
    customer_satisfied: bool


class ComplaintReopen(Command):
    """A repeat complaint about a closed case."""

    routing_key: ClassVar[str] = "complaint.reopen"
    case_id: UUID
    reason: LongText


class ComplaintAwaitCustomer(Command):
    """The case waits on the customer; SLA clocks stop until it resumes."""

    routing_key: ClassVar[str] = "complaint.await_customer"
    case_id: UUID
    reason: LongText


class ComplaintResume(Command):
    """The customer answered; SLA clocks run again."""

    routing_key: ClassVar[str] = "complaint.resume"
    case_id: UUID


class SurplusReport(Command):
    """A branch found goods it should not have, inspected, photographed and resealed them."""

    routing_key: ClassVar[str] = "surplus.report"
    branch_id: BranchId
    report_ref: Ref
    reported_by: Text
    goods_name: Text
    window: Text
    clearance_date: dt.date
    inspected_with: Annotated[list[Text], Field(max_length=20)]
    photos: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=500)]], Field(max_length=50)]
    resealed: bool
    waybill_no: Ref | None = None
    # Selects the policy's per-category reward and penalty amounts ([rewards.categories.<name>]).
    goods_category: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] | None = None


class ResponsibleBranch(BaseModel):
    """A branch held responsible for a shortage, and its share of the penalty."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    branch_id: BranchId
    share: Share


class SurplusReview(Command):
    """HQ warehousing's specialist approves or rejects a surplus report."""

    routing_key: ClassVar[str] = "surplus.review"
    report_id: UUID
    reviewer: Text
    approved: bool
    reason: LongText
    matched_case_id: UUID | None = None
    responsible_branches: Annotated[list[ResponsibleBranch], Field(max_length=50)] = []


class RewardsDecidePeriod(Command):
    """HQ issues the period's decision on surplus/shortage rewards and penalties."""

    routing_key: ClassVar[str] = "rewards.decide_period"
    period: Period
    decided_by: Text


class RewardsSettlePeriod(Command):
    """The settlement centre pays out and charges a decided period."""

    routing_key: ClassVar[str] = "rewards.settle_period"
    period: Period
    settled_by: Text


COMMANDS: dict[str, type[Command]] = {
    cls.routing_key: cls
    for cls in (
        ComplaintReceive,
        ComplaintVerify,
        ComplaintHandOver,
        ComplaintEscalate,
        ComplaintRemediate,
        ComplaintClose,
        ComplaintReopen,
        ComplaintAwaitCustomer,
        ComplaintResume,
        SurplusReport,
        SurplusReview,
        RewardsDecidePeriod,
        RewardsSettlePeriod,
    )
}

_ADAPTERS: dict[str, TypeAdapter[Any]] = {key: TypeAdapter(cls) for key, cls in COMMANDS.items()}


def parse_command(routing_key: str, body: bytes) -> Command:
    """Parse a command body; raises KeyError for an unknown routing key, ValidationError otherwise."""
    adapter = _ADAPTERS[routing_key]
    command: Command = adapter.validate_json(body)
    return command
