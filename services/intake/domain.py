"""Complaint and surplus-report aggregates: the lifecycle rules of the handbook."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from shared.chain import Cause, ChainedAggregate

NAMESPACE = uuid5(NAMESPACE_URL, "urn:casework")
LEVELS = ("branch", "regional", "hq")
# A command's stream ids are worked out two or three times while its batch is decided; a
# cache that holds a few batches' worth saves that, where one of 65,536 entries each held
# 40 MB of ids never asked for again.
IDS_CACHED = 4096


@lru_cache(maxsize=IDS_CACHED)
def complaint_id(branch_id: str, case_ref: str) -> UUID:
    """A case's stream id: the same branch and case_ref can never make two cases."""
    return uuid5(NAMESPACE, f"complaint:{branch_id}:{case_ref}")


@lru_cache(maxsize=IDS_CACHED)
def report_id(branch_id: str, report_ref: str) -> UUID:
    return uuid5(NAMESPACE, f"surplus:{branch_id}:{report_ref}")


@lru_cache(maxsize=IDS_CACHED)
def period_id(period: str) -> UUID:
    return uuid5(NAMESPACE, f"period:{period}")


@lru_cache(maxsize=IDS_CACHED)
def command_record_id(user_id: str, message_id: str) -> UUID:
    return uuid5(NAMESPACE, f"command:{user_id}:{message_id}")


class DomainError(Exception):
    """Raised when a well-formed command breaks a rule; carries a stable code."""

    default_code: ClassVar[str] = "rejected"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code: str = code or self.default_code


class InvalidTransition(DomainError):
    """Raised when a command does not apply to the case in its current state."""

    default_code = "invalid_transition"


class LevelNotHigher(DomainError):
    """Raised when an escalation would not move the case up the ladder."""

    default_code = "level_not_higher"


# The complaint lifecycle, as one table: command -> the states it may be applied in.
# "awaiting" is not a state of its own: while the customer is awaited only the commands
# marked True in PAUSE_ALLOWS go through.
OPEN = frozenset({"received", "reopened", "verified", "remediated"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "verify": frozenset({"received", "reopened"}),
    "hand_over": OPEN,
    "escalate": OPEN,
    "remediate": frozenset({"verified", "remediated"}),
    "close": frozenset({"verified", "remediated"}),
    "reopen": frozenset({"closed"}),
    "await_customer": OPEN,
    "resume": OPEN,
    "locate_goods": OPEN | {"closed"},
}
PAUSE_ALLOWS = frozenset({"hand_over", "escalate", "resume", "locate_goods"})


class BranchEvent(ChainedAggregate.Event):
    """An event of a branch's stream; branch_id routes it (`complaint.verified.GZ01`)."""

    branch_id: str


class Complaint(ChainedAggregate):
    """A customer complaint (客户投诉). Written by intake only; read by escalation, rewards, audit."""

    STREAM: ClassVar[str] = "complaint"

    class Received(ChainedAggregate.Created):
        # v1 (the first releases) had no claimed_amount or channel, v2 no received_by: all optional.
        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("claimed_amount", None)
            state.setdefault("channel", None)

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state.setdefault("received_by", None)

        branch_id: str
        case_ref: str
        waybill_no: str
        category: str
        customer: dict[str, str]
        description: str
        claimed_amount: str | None
        channel: str | None
        received_by: str | None

        def on(self, c: Any) -> None:
            c.branch_id, c.case_ref, c.waybill_no = self.branch_id, self.case_ref, self.waybill_no
            c.category, c.customer, c.description = self.category, self.customer, self.description
            c.claimed_amount, c.channel = self.claimed_amount, self.channel
            c.status, c.level, c.awaiting, c.reopened_count = "received", None, False, 0
            # Owned from the start: by whoever registered it, where named, and always by the branch.
            c.owner_branch, c.owner = self.branch_id, self.received_by
            c.compensation, c.matched_report_id = None, None

    class Verified(BranchEvent):
        verified_by: str
        summary: str
        customer_confirmed: bool
        cause: str | None

        def on(self, c: Any) -> None:
            c.status = "verified"

    class HandedOver(BranchEvent):
        to: str
        to_branch: str
        note: str

        def on(self, c: Any) -> None:
            c.owner, c.owner_branch = self.to, self.to_branch

    class Escalated(BranchEvent):
        # v1 did not say who held the case when it climbed.
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("owner", None)
            state.setdefault("owner_branch", None)

        case_ref: str
        waybill_no: str
        category: str
        level: str
        department: str
        region_id: str
        reason: Any
        owner: str | None
        owner_branch: str | None

        def on(self, c: Any) -> None:
            c.level = self.level

    class Remediated(BranchEvent):
        action: str
        remediated_by: str
        compensation: str | None

        def on(self, c: Any) -> None:
            c.status, c.compensation = "remediated", self.compensation

    class Closed(BranchEvent):
        closed_by: str
        resolution: str
        customer_satisfied: bool

        def on(self, c: Any) -> None:
            c.status, c.awaiting = "closed", False

    class Reopened(BranchEvent):
        reason: str

        def on(self, c: Any) -> None:
            c.status = "reopened"
            c.reopened_count += 1

    class AwaitingCustomer(BranchEvent):
        reason: str

        def on(self, c: Any) -> None:
            c.awaiting = True

    class Resumed(BranchEvent):
        def on(self, c: Any) -> None:
            c.awaiting = False

    class GoodsLocated(BranchEvent):
        report_id: str
        reporting_branch: str

        def on(self, c: Any) -> None:
            c.matched_report_id = self.report_id

    if TYPE_CHECKING:
        branch_id: str
        case_ref: str
        waybill_no: str
        category: str
        status: str
        level: str | None
        awaiting: bool
        owner: str | None
        owner_branch: str
        matched_report_id: str | None

    @classmethod
    def receive(cls, cause: Cause, **fields: Any) -> Complaint:
        stream_id = complaint_id(fields["branch_id"], fields["case_ref"])
        return cls._start(cls.Received, stream_id, cause, **fields)

    def acting_branches(self) -> set[str]:
        """Branches that may act on the case: the one it came from and the one holding it."""
        return {self.branch_id, self.owner_branch}

    def _check(self, command: str) -> None:
        if self.status not in TRANSITIONS[command]:
            raise InvalidTransition(f"cannot {command.replace('_', ' ')} a case that is {self.status}")
        if self.awaiting and command not in PAUSE_ALLOWS:
            action = command.replace("_", " ")
            raise InvalidTransition(f"the case is awaiting the customer; resume it before you {action}")

    def verify(
        self, cause: Cause, verified_by: str, summary: str, customer_confirmed: bool, cause_found: str | None
    ) -> None:
        self._check("verify")
        self._record(self.Verified, cause, verified_by=verified_by, summary=summary,
                     customer_confirmed=customer_confirmed, cause=cause_found)

    def hand_over(self, cause: Cause, to: str, to_branch: str, note: str) -> None:
        self._check("hand_over")
        self._record(self.HandedOver, cause, to=to, to_branch=to_branch, note=note)

    def escalate(self, cause: Cause, level: str, department: str, region_id: str, reason: Any) -> None:
        self._check("escalate")
        if self.level is not None and LEVELS.index(level) <= LEVELS.index(self.level):
            raise LevelNotHigher(f"the case already stands at {self.level}; escalation only climbs")
        self._record(self.Escalated, cause, case_ref=self.case_ref, waybill_no=self.waybill_no,
                     category=self.category, level=level, department=department, region_id=region_id,
                     reason=reason, owner=self.owner, owner_branch=self.owner_branch)

    def remediate(self, cause: Cause, action: str, remediated_by: str, compensation: str | None) -> None:
        self._check("remediate")
        self._record(self.Remediated, cause, action=action, remediated_by=remediated_by, compensation=compensation)

    def close(self, cause: Cause, closed_by: str, resolution: str, customer_satisfied: bool) -> None:
        self._check("close")
        self._record(self.Closed, cause, closed_by=closed_by, resolution=resolution,
                     customer_satisfied=customer_satisfied)

    def reopen(self, cause: Cause, reason: str) -> None:
        self._check("reopen")
        self._record(self.Reopened, cause, reason=reason)

    def await_customer(self, cause: Cause, reason: str) -> None:
        self._check("await_customer")
        if self.awaiting:
            raise InvalidTransition("the case is already awaiting the customer")
        self._record(self.AwaitingCustomer, cause, reason=reason)

    def resume(self, cause: Cause) -> None:
        self._check("resume")
        if not self.awaiting:
            raise InvalidTransition("the case is not awaiting the customer")
        self._record(self.Resumed, cause)

    def locate_goods(self, cause: Cause, report_id: UUID, reporting_branch: str) -> None:
        self._check("locate_goods")
        if self.matched_report_id is not None:
            raise DomainError(f"the goods of this case were already located by report {self.matched_report_id}",
                              code="already_matched")
        self._record(self.GoodsLocated, cause, report_id=str(report_id), reporting_branch=reporting_branch)


class SurplusReport(ChainedAggregate):
    """Goods a branch found it should not have (多货), inspected on the spot; reviewed by HQ once."""

    STREAM: ClassVar[str] = "surplus"

    class Reported(ChainedAggregate.Created):
        # v1 had no goods_category (the policy's per-category reward and penalty amounts).
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("goods_category", None)

        branch_id: str
        report_ref: str
        reported_by: str
        goods_name: str
        window: str
        clearance_date: str
        inspected_with: list[str]
        photos: list[str]
        resealed: bool
        waybill_no: str | None
        goods_category: str | None

        def on(self, r: Any) -> None:
            r.branch_id, r.report_ref, r.reported_by = self.branch_id, self.report_ref, self.reported_by
            r.goods_name, r.window, r.clearance_date = self.goods_name, self.window, self.clearance_date
            r.reviewed = False

    class Reviewed(BranchEvent):
        reviewer: str
        approved: bool
        reason: str
        matched_case_id: str | None
        responsible_branches: list[dict[str, str]]
        period: str

        def on(self, r: Any) -> None:
            r.reviewed = True

    if TYPE_CHECKING:
        branch_id: str
        reviewed: bool

    @classmethod
    def report(cls, cause: Cause, **fields: Any) -> SurplusReport:
        if not fields["resealed"]:
            raise DomainError("surplus goods must be resealed after inspection before they are reported",
                              code="evidence_incomplete")
        if not fields["inspected_with"] or not fields["photos"]:
            raise DomainError("a surplus report names who inspected the goods and at least one photo",
                              code="evidence_incomplete")
        stream_id = report_id(fields["branch_id"], fields["report_ref"])
        return cls._start(cls.Reported, stream_id, cause, **fields)

    def review(self, cause: Cause, **fields: Any) -> None:
        if self.reviewed:
            raise DomainError("this surplus report was already reviewed", code="already_reviewed")
        self._record(self.Reviewed, cause, **fields)


class Period(ChainedAggregate):
    """A rewards period (a month or a week): which approved reviews it holds, decided, settled."""

    STREAM: ClassVar[str] = "period"

    class Opened(ChainedAggregate.Created):
        period: str

        def on(self, p: Any) -> None:
            p.period, p.review_count, p.decided, p.settled = self.period, 0, False, False

    class ReviewAssigned(ChainedAggregate.Event):
        report_id: str

        def on(self, p: Any) -> None:
            p.review_count += 1

    class Decided(ChainedAggregate.Event):
        period: str
        decided_by: str
        review_count: int

        def on(self, p: Any) -> None:
            p.decided = True

    class Settled(ChainedAggregate.Event):
        period: str
        settled_by: str

        def on(self, p: Any) -> None:
            p.settled = True

    if TYPE_CHECKING:
        period: str
        review_count: int
        decided: bool
        settled: bool

    @classmethod
    def open(cls, cause: Cause, period: str) -> Period:
        return cls._start(cls.Opened, period_id(period), cause, period=period)

    def assign(self, cause: Cause, report: UUID) -> None:
        self._record(self.ReviewAssigned, cause, report_id=str(report))

    def decide(self, cause: Cause, decided_by: str) -> None:
        if self.decided:
            raise DomainError(f"period {self.period} is already decided", code="period_decided")
        self._record(self.Decided, cause, period=self.period, decided_by=decided_by, review_count=self.review_count)

    def settle(self, cause: Cause, settled_by: str) -> None:
        if not self.decided:
            raise DomainError(f"period {self.period} is not decided yet; decide it first", code="period_not_decided")
        if self.settled:
            raise DomainError(f"period {self.period} is already settled", code="period_settled")
        self._record(self.Settled, cause, period=self.period, settled_by=settled_by)


class CommandRecord(ChainedAggregate):
    """One processed command and its outcome: the idempotency record, saved with its events."""

    STREAM: ClassVar[str] = "command"

    class Processed(ChainedAggregate.Created):
        routing_key: str
        status: str
        stream_id: str | None
        version: int | None
        error_code: str | None
        error_message: str | None
        reply_to: str | None
        correlation_id: str | None

        def on(self, r: Any) -> None:
            r.routing_key, r.status, r.stream_id, r.stream_version = (
                self.routing_key, self.status, self.stream_id, self.version)
            r.error_code, r.error_message = self.error_code, self.error_message
            r.command_id, r.user_id = self.command_id, self.user_id

    @classmethod
    def processed(cls, cause: Cause, **fields: Any) -> CommandRecord:
        return cls._start(cls.Processed, command_record_id(cause.user_id, cause.command_id), cause, **fields)
