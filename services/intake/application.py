"""The intake Application: commands in, hash-chained events and an outcome out, in one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Notification, Recording, Transcoder

from services.intake.authorise import Actor, Forbidden, authorise_case, check_role
from services.intake.domain import (
    CommandRecord,
    Complaint,
    DomainError,
    Period,
    SurplusReport,
    command_record_id,
    complaint_id,
    period_id,
    report_id,
)
from services.intake.periods import period_after, period_of, validate_period
from services.intake.prefetch import aggregates_from, load_aggregates
from shared.chain import Cause, ChainedAggregate, events_made
from shared.events import Outcome, OutcomeError
from shared.events import commands as c
from shared.pgstore import AsyncEventWriter, BinaryInsertRecorder
from shared.policy import Policy
from shared.store import eventsourcing_env, open_application, save_aggregates
from shared.transcoder import OrjsonTranscoder

log = logging.getLogger("casework.intake")
Clock = Callable[[], datetime]


class HalfApplied(RuntimeError):
    """A command was refused after it had changed a stream: a fault in intake, never saved."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Submission:
    """A parsed command with what the broker proved about it."""

    command: c.Command
    message_id: str
    user_id: str
    reply_to: str | None = None
    correlation_id: str | None = None
    sent_at: datetime | None = None


class Batch:
    """Aggregates touched by one transaction, so two commands on one case see each other.

    The streams a batch names are loaded up front in one query (`preload`); any other
    stream a command reaches is loaded on demand.
    """

    def __init__(self, app: IntakeApplication) -> None:
        self.app = app
        self.touched: dict[UUID, ChainedAggregate] = {}
        self.absent: set[UUID] = set()

    def preload(self, ids: Iterable[UUID]) -> None:
        self.take(load_aggregates(self.app, ids))

    def take(self, loaded: dict[UUID, Any | None]) -> None:
        for stream_id, aggregate in loaded.items():
            if aggregate is None:
                self.absent.add(stream_id)
            else:
                self.touched[stream_id] = aggregate

    def get(self, stream_id: UUID) -> Any | None:
        if stream_id in self.touched:
            return self.touched[stream_id]
        if stream_id in self.absent:
            return None
        try:
            aggregate: ChainedAggregate = self.app.repository.get(stream_id)
        except AggregateNotFoundError:
            self.absent.add(stream_id)
            return None
        self.touched[stream_id] = aggregate
        return aggregate

    def add(self, aggregate: ChainedAggregate) -> None:
        self.absent.discard(aggregate.id)
        self.touched[aggregate.id] = aggregate


class IntakeApplication(Application[UUID]):
    """The only writer of complaint, surplus and period streams."""

    name = "casework"

    def __init__(self, policy: Policy, database_url: str, clock: Clock = utc_now,
                 env: dict[str, str] | None = None) -> None:
        self.policy = policy
        self.clock = clock
        # Told of every commit's events, with their notification ids (the relay in this process).
        self.on_recorded: Callable[[list[Recording[UUID]]], None] | None = None
        settings = {**eventsourcing_env(database_url, "casework"), **(env or {})}
        open_application(lambda: super(IntakeApplication, self).__init__(env=settings), settings)
        # On PostgreSQL the consumer's batches are read and committed on its event loop.
        self.writer = (AsyncEventWriter(self.recorder, settings)
                       if isinstance(self.recorder, BinaryInsertRecorder) else None)

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if self.on_recorded is not None:
            self.on_recorded(recordings)

    # -- the one use case -------------------------------------------------------------
    def submit(self, submissions: Sequence[Submission]) -> list[Outcome]:
        """Apply commands and record their events and outcomes atomically; retry on conflict."""
        try:
            return self._submit_once(submissions)
        except IntegrityError:
            if len(submissions) == 1:
                return [self._submit_retrying(submissions[0])]
        # Another writer touched one of the streams: take the commands one at a time.
        return [self._submit_retrying(s) for s in submissions]

    def _submit_retrying(self, submission: Submission, attempts: int = 5) -> Outcome:
        for attempt in range(attempts):
            try:
                return self._submit_once([submission])[0]
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
                log.info("version conflict on %s, retrying", submission.message_id)
        raise AssertionError("unreachable")

    def _submit_once(self, submissions: Sequence[Submission]) -> list[Outcome]:
        batch = Batch(self)
        batch.preload(self._named_streams(submissions))
        outcomes = self._decide(batch, submissions)
        save_aggregates(self, [a for a in batch.touched.values() if a.pending_events])
        return outcomes

    async def submit_async(self, submissions: Sequence[Submission]) -> list[Outcome]:
        """`submit`, with PostgreSQL's reads and the commit done on the event loop.

        In a thread, the commit's three round trips to the database each had to win the
        interpreter back from the consumer's event loop, which tripled a batch's time at
        1,000 commands/s. Here the loop carries on with deliveries while the database
        answers. A conflict goes the thread's way, which retries command by command.
        """
        if self.writer is None:
            return await asyncio.to_thread(self.submit, submissions)
        named = list(dict.fromkeys(self._named_streams(submissions)))
        batch = Batch(self)
        if all(type(submission.command) is c.ComplaintReceive for submission in submissions):
            # A receive names only streams it creates: the case, and its command's record. They
            # are new unless the case or the command came before, which the insert's unique
            # key reports; the batch is then read and decided again. A round trip fewer.
            batch.take(dict.fromkeys(named))
        else:
            batch.take(aggregates_from(self, named, await self.writer.select_streams(named)))
        outcomes = self._decide(batch, submissions)
        events = [event for aggregate in batch.touched.values() if aggregate.pending_events
                  for event in aggregate.collect_events()]
        stored = [self.mapper.to_stored_event(event) for event in events]
        try:
            notification_ids = await self.writer.insert(stored)
        except IntegrityError:
            return await asyncio.to_thread(self.submit, submissions)
        self._notify([Recording(event, Notification(
            originator_id=record.originator_id, originator_version=record.originator_version,
            topic=record.topic, state=record.state, id=notification_id))
            for event, record, notification_id in zip(events, stored, notification_ids, strict=True)])
        return outcomes

    async def aclose(self) -> None:
        if self.writer is not None:
            await self.writer.close()

    def _decide(self, batch: Batch, submissions: Sequence[Submission]) -> list[Outcome]:
        """Apply each command in turn to the batch's aggregates; returns their outcomes."""
        outcomes: list[Outcome] = []
        for submission in submissions:
            record_id = command_record_id(submission.user_id, submission.message_id)
            earlier = batch.get(record_id)
            if earlier is not None:
                outcomes.append(duplicate_outcome(earlier))
                continue
            outcome = self._apply(batch, submission)
            cause = self._cause(submission, "service:intake")
            batch.add(CommandRecord.processed(
                cause,
                routing_key=submission.command.routing_key,
                status=outcome.status,
                stream_id=str(outcome.stream_id) if outcome.stream_id else None,
                version=outcome.version,
                error_code=outcome.error.code if outcome.error else None,
                error_message=outcome.error.message if outcome.error else None,
                reply_to=submission.reply_to,
                correlation_id=submission.correlation_id,
            ))
            outcomes.append(outcome)
        return outcomes

    def _named_streams(self, submissions: Sequence[Submission]) -> list[UUID]:
        ids: list[UUID] = []
        for submission in submissions:
            ids.append(command_record_id(submission.user_id, submission.message_id))
            command = submission.command
            target = target_stream(command)
            if target:
                ids.append(target)
            matched = command.__dict__.get("matched_case_id")
            if matched:
                ids.append(matched)
            if isinstance(command, c.SurplusReview):
                ids.append(period_id(period_of(self.clock(), self.policy)))
            if isinstance(command, c.RewardsDecidePeriod | c.RewardsSettlePeriod):
                ids.append(period_id(command.period))
        return ids

    def _cause(self, submission: Submission, principal: str) -> Cause:
        now = self.clock()
        occurred = submission.command.__dict__.get("occurred_at") or submission.sent_at or now
        return Cause(principal=principal, user_id=submission.user_id, command_id=submission.message_id,
                     occurred_at=min(occurred, now).astimezone(UTC), recorded_at=now)

    def _apply(self, batch: Batch, submission: Submission) -> Outcome:
        command = submission.command
        stream_id: UUID | None = None
        made = events_made()
        try:
            principal = self.policy.principal(submission.user_id)
            if principal is None:
                raise DomainError(f"RabbitMQ user {submission.user_id!r} is not in the policy", code="unknown_user")
            actor = Actor(principal, self.policy)
            cause = self._cause(submission, principal)
            handler = getattr(self, "_" + command.routing_key.replace(".", "_"))
            stream_id = target_stream(command)
            stream_id = handler(batch, actor, cause, command) or stream_id
        except DomainError as error:
            if events_made() != made:
                # Its events would be saved with the batch although the command was refused.
                raise HalfApplied(f"{command.routing_key} {submission.message_id} was refused ({error.code}) "
                                  "after it had changed a stream") from error
            return Outcome(command_id=submission.message_id, command=command.routing_key, status="rejected",
                           stream_id=stream_id, error=OutcomeError(code=error.code, message=str(error)))
        aggregate = batch.get(stream_id) if stream_id else None
        return Outcome(command_id=submission.message_id, command=command.routing_key, status="accepted",
                       stream_id=stream_id, version=aggregate.version if aggregate else None)

    # -- complaints ---------------------------------------------------------------------
    def _complaint_receive(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintReceive) -> UUID:
        if cmd.branch_id not in self.policy.organisation.branches:
            raise DomainError(f"branch {cmd.branch_id} is not in the policy", code="unknown_branch")
        actor.require_branch(cmd.branch_id)
        stream_id = complaint_id(cmd.branch_id, cmd.case_ref)
        if batch.get(stream_id) is not None:
            raise DomainError(f"case {cmd.case_ref} of {cmd.branch_id} is already registered", code="case_exists")
        batch.add(Complaint.receive(
            cause, branch_id=cmd.branch_id, case_ref=cmd.case_ref, waybill_no=cmd.waybill_no,
            category=cmd.category, customer=cmd.customer.model_dump(), description=cmd.description,
            claimed_amount=money(cmd.claimed_amount), channel=cmd.channel, received_by=cmd.received_by,
        ))
        return stream_id

    def _complaint(self, batch: Batch, actor: Actor, case_id: UUID, command: str) -> Complaint:
        complaint = batch.get(case_id)
        if not isinstance(complaint, Complaint):
            raise DomainError(f"no case {case_id}", code="case_not_found")
        authorise_case(actor, complaint, command)
        return complaint

    def _complaint_verify(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintVerify) -> None:
        self._complaint(batch, actor, cmd.case_id, "verify").verify(
            cause, cmd.verified_by, cmd.summary, cmd.customer_confirmed, cmd.cause)

    def _complaint_hand_over(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintHandOver) -> None:
        complaint = self._complaint(batch, actor, cmd.case_id, "hand_over")
        to_branch = cmd.to_branch or complaint.owner_branch
        if to_branch not in self.policy.organisation.branches:
            raise DomainError(f"branch {to_branch} is not in the policy", code="unknown_branch")
        complaint.hand_over(cause, cmd.to, to_branch, cmd.note)

    def _complaint_escalate(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintEscalate) -> None:
        complaint = self._complaint(batch, actor, cmd.case_id, "escalate")
        department = cmd.department or self.policy.department_for(complaint.category)
        if department not in self.policy.organisation.departments:
            raise DomainError(f"department {department} is not in the policy", code="forbidden")
        reason = cmd.reason if isinstance(cmd.reason, str) else cmd.reason.model_dump(mode="json")
        complaint.escalate(cause, cmd.level, department, self.policy.region_of(complaint.branch_id), reason)

    def _complaint_remediate(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintRemediate) -> None:
        self._complaint(batch, actor, cmd.case_id, "remediate").remediate(
            cause, cmd.action, cmd.remediated_by, money(cmd.compensation))

    def _complaint_close(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintClose) -> None:
        self._complaint(batch, actor, cmd.case_id, "close").close(
            cause, cmd.closed_by, cmd.resolution, cmd.customer_satisfied)

    def _complaint_reopen(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintReopen) -> None:
        self._complaint(batch, actor, cmd.case_id, "reopen").reopen(cause, cmd.reason)

    def _complaint_await_customer(self, batch: Batch, actor: Actor, cause: Cause,
                                  cmd: c.ComplaintAwaitCustomer) -> None:
        self._complaint(batch, actor, cmd.case_id, "await_customer").await_customer(cause, cmd.reason)

    def _complaint_resume(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.ComplaintResume) -> None:
        self._complaint(batch, actor, cmd.case_id, "resume").resume(cause)

    # -- surplus goods and rewards periods ---------------------------------------------
    def _surplus_report(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.SurplusReport) -> UUID:
        if cmd.branch_id not in self.policy.organisation.branches:
            raise DomainError(f"branch {cmd.branch_id} is not in the policy", code="unknown_branch")
        actor.require_branch(cmd.branch_id)
        stream_id = report_id(cmd.branch_id, cmd.report_ref)
        if batch.get(stream_id) is not None:
            raise DomainError(f"report {cmd.report_ref} of {cmd.branch_id} is already registered",
                              code="report_exists")
        batch.add(SurplusReport.report(
            cause, branch_id=cmd.branch_id, report_ref=cmd.report_ref, reported_by=cmd.reported_by,
            goods_name=cmd.goods_name, window=cmd.window, clearance_date=cmd.clearance_date.isoformat(),
            inspected_with=list(cmd.inspected_with), photos=list(cmd.photos), resealed=cmd.resealed,
            waybill_no=cmd.waybill_no, goods_category=cmd.goods_category,
        ))
        return stream_id

    def _surplus_review(self, batch: Batch, actor: Actor, cause: Cause, cmd: c.SurplusReview) -> None:
        check_role(actor, "hq:warehousing", "review surplus reports")
        report = batch.get(cmd.report_id)
        if not isinstance(report, SurplusReport):
            raise DomainError(f"no surplus report {cmd.report_id}", code="report_not_found")
        if report.reviewed:
            raise DomainError("this surplus report was already reviewed", code="already_reviewed")
        shares = self._check_shares(cmd)
        complaint = self._check_match(batch, cmd)
        period = self._open_period(batch, cause) if cmd.approved else None
        report.review(cause, reviewer=cmd.reviewer, approved=cmd.approved, reason=cmd.reason,
                      matched_case_id=str(cmd.matched_case_id) if cmd.matched_case_id else None,
                      responsible_branches=shares, period=period.period if period else "")
        if period is not None:
            period.assign(cause, report.id)
        if complaint is not None:
            complaint.locate_goods(cause, report.id, report.branch_id)

    def _check_shares(self, cmd: c.SurplusReview) -> list[dict[str, str]]:
        branches = cmd.responsible_branches
        if not branches:
            return []
        if not cmd.approved:
            raise DomainError("a rejected report holds no branch responsible", code="shares_invalid")
        ids = [b.branch_id for b in branches]
        if len(set(ids)) != len(ids):
            raise DomainError("each responsible branch is named once", code="shares_invalid")
        unknown = [i for i in ids if i not in self.policy.organisation.branches]
        if unknown:
            raise DomainError(f"unknown responsible branches: {', '.join(unknown)}", code="unknown_branch")
        total = sum(b.share for b in branches)
        if total != 1:
            raise DomainError(f"responsibility shares add up to {total}, not 1", code="shares_invalid")
        return [{"branch_id": b.branch_id, "share": str(b.share.normalize())} for b in branches]

    def _check_match(self, batch: Batch, cmd: c.SurplusReview) -> Complaint | None:
        if cmd.matched_case_id is None:
            return None
        if not cmd.approved:
            raise DomainError("a rejected report matches no shortage", code="match_invalid")
        complaint = batch.get(cmd.matched_case_id)
        if not isinstance(complaint, Complaint) or complaint.category != "shortage":
            raise DomainError(f"{cmd.matched_case_id} is not a shortage complaint", code="match_invalid")
        if complaint.matched_report_id is not None:
            raise DomainError(f"the shortage of case {cmd.matched_case_id} is already matched by report "
                              f"{complaint.matched_report_id}", code="already_matched")
        return complaint

    def _open_period(self, batch: Batch, cause: Cause) -> Period:
        """The period a review recorded now falls in: its own, or the next open one if decided."""
        name = period_of(cause.recorded_at, self.policy)
        while True:
            period = batch.get(period_id(name))
            if period is None:
                period = Period.open(cause, name)
                batch.add(period)
                return period
            if not period.decided:
                return period  # type: ignore[no-any-return]
            name = period_after(name)

    def _rewards_decide_period(self, batch: Batch, actor: Actor, cause: Cause,
                               cmd: c.RewardsDecidePeriod) -> UUID:
        check_role(actor, "hq:warehousing", "decide rewards periods")
        validate_period(cmd.period, self.policy, cause.recorded_at)
        period = batch.get(period_id(cmd.period))
        if period is None:
            period = Period.open(cause, cmd.period)
            batch.add(period)
        period.decide(cause, cmd.decided_by)
        return period.id

    def _rewards_settle_period(self, batch: Batch, actor: Actor, cause: Cause,
                               cmd: c.RewardsSettlePeriod) -> UUID:
        check_role(actor, "hq:settlement", "settle rewards periods")
        period = batch.get(period_id(cmd.period))
        if period is None:
            raise DomainError(f"period {cmd.period} is not decided yet; decide it first", code="period_not_decided")
        period.settle(cause, cmd.settled_by)
        return period.id  # type: ignore[no-any-return]


def target_stream(command: c.Command) -> UUID | None:
    """The stream a command names, for the outcome even when it is rejected."""
    fields = command.__dict__  # a pydantic model's fields; getattr on a missing one raises inside pydantic
    for attribute in ("case_id", "report_id"):
        value = fields.get(attribute)
        if isinstance(value, UUID):
            return value
    if isinstance(command, c.ComplaintReceive):
        return complaint_id(command.branch_id, command.case_ref)
    if isinstance(command, c.SurplusReport):
        return report_id(command.branch_id, command.report_ref)
    return None


def money(amount: Any) -> str | None:
    return None if amount is None else f"{amount:.2f}"


def duplicate_outcome(record: Any) -> Outcome:
    error = OutcomeError(code=record.error_code, message=record.error_message) if record.error_code else None
    return Outcome(command_id=record.command_id, command=record.routing_key, status="duplicate",
                   stream_id=UUID(record.stream_id) if record.stream_id else None,
                   version=record.stream_version, error=error, original_status=record.status)


__all__ = ["Forbidden", "IntakeApplication", "Submission"]
