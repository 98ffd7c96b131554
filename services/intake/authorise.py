"""Who may do what: principals from the policy against the case they act on."""

from __future__ import annotations

from typing import Any

from services.intake.domain import LEVELS, DomainError
from shared.policy import Policy


class Forbidden(DomainError):
    """Raised when the speaking principal may not issue this command."""

    default_code = "forbidden"


class NotYourBranch(DomainError):
    """Raised when a branch acts for another branch or on another branch's case."""

    default_code = "not_your_branch"


class Actor:
    """The principal a validated RabbitMQ user acts as."""

    def __init__(self, principal: str, policy: Policy) -> None:
        self.principal = principal
        self.kind, _, self.name = principal.partition(":")
        self.policy = policy

    @property
    def is_admin(self) -> bool:
        return self.principal == "admin"

    def require_branch(self, branch_id: str) -> None:
        if self.is_admin:
            return
        if self.kind != "branch":
            raise Forbidden(f"{self.principal} cannot act for branch {branch_id}; only the branch itself can")
        if self.name != branch_id:
            raise NotYourBranch(f"{self.principal} cannot act for branch {branch_id}")


def check_role(actor: Actor, principal: str, what: str) -> None:
    if not (actor.is_admin or actor.principal == principal):
        raise Forbidden(f"only {principal} (or admin) may {what}; you are {actor.principal}")


def authorise_case(actor: Actor, complaint: Any, command: str) -> None:
    """Branches act on their own and handed-over cases; offices on cases escalated to them."""
    if actor.is_admin:
        return
    if actor.kind == "branch":
        if actor.name not in complaint.acting_branches():
            raise NotYourBranch(f"case {complaint.id} belongs to {complaint.branch_id}, not {actor.name}")
        return
    if actor.principal == "service:escalation" and command == "escalate":
        return
    reached = LEVELS.index(complaint.level) if complaint.level else -1
    if actor.kind == "regional" and reached >= 1 and actor.policy.region_of(complaint.branch_id) == actor.name:
        return
    if actor.kind == "hq" and reached >= 2 and actor.policy.department_for(complaint.category) == actor.name:
        return
    raise Forbidden(f"{actor.principal} may not {command.replace('_', ' ')} case {complaint.id}")
