"""Build command submissions for unit tests against the intake application (no broker)."""

from __future__ import annotations

import itertools
import json
from typing import Any
from uuid import UUID

from services.intake.application import IntakeApplication, Submission
from shared.events import Outcome, parse_command

_ids = itertools.count(1)


def submission(routing_key: str, body: dict[str, Any], user: str = "branch-GZ01",
               message_id: str | None = None) -> Submission:
    command = parse_command(routing_key, json.dumps(body, default=str).encode())
    return Submission(command=command, message_id=message_id or f"m{next(_ids)}", user_id=user)


def send(app: IntakeApplication, routing_key: str, body: dict[str, Any], user: str = "branch-GZ01",
         message_id: str | None = None) -> Outcome:
    [outcome] = app.submit([submission(routing_key, body, user, message_id)])
    return outcome


def receive(app: IntakeApplication, case_ref: str = "C1", branch: str = "GZ01", category: str = "shortage",
            user: str | None = None, **extra: Any) -> Outcome:
    body = {"branch_id": branch, "case_ref": case_ref, "waybill_no": "WB1", "category": category,
            "customer": {"name": "王先生", "phone": "13900000000"}, "description": "two cartons short", **extra}
    return send(app, "complaint.receive", body, user or f"branch-{branch}")


# The body of each complaint command, given the case id.
BODIES: dict[str, Any] = {
    "verify": lambda c: {"case_id": c, "verified_by": "Zhang", "summary": "restated", "customer_confirmed": True},
    "hand_over": lambda c: {"case_id": c, "to": "Liu", "note": "end of shift"},
    "escalate": lambda c: {"case_id": c, "level": "branch", "reason": "not going smoothly"},
    "remediate": lambda c: {"case_id": c, "action": "redeliver", "remediated_by": "Zhang",
                            "compensation": "50.00"},
    "close": lambda c: {"case_id": c, "closed_by": "Zhang", "resolution": "delivered",
                        "customer_satisfied": True},
    "reopen": lambda c: {"case_id": c, "reason": "customer called again"},
    "await_customer": lambda c: {"case_id": c, "reason": "waiting for photos"},
    "resume": lambda c: {"case_id": c},
}


def act(app: IntakeApplication, command: str, case_id: UUID, user: str = "branch-GZ01",
        **overrides: Any) -> Outcome:
    body = {**BODIES[command](str(case_id)), **overrides}
    return send(app, f"complaint.{command}", body, user)


def code(outcome: Outcome) -> str | None:
    """The rejection code of an outcome, or None when it was not rejected."""
    return outcome.error.code if outcome.error else None


def report(app: IntakeApplication, ref: str = "S1", branch: str = "GZ01", **extra: Any) -> Outcome:
    """`surplus.report` with complete evidence, sent by the reporting branch."""
    body = {"branch_id": branch, "report_ref": ref, "reported_by": "陈", "goods_name": "电饭煲",
            "window": "W3", "clearance_date": "2026-11-20", "inspected_with": ["site manager", "porter"],
            "photos": ["photo://1"], "resealed": True, **extra}
    return send(app, "surplus.report", body, user=f"branch-{branch}")


def review(app: IntakeApplication, report_id: Any, user: str = "hq-warehousing", **extra: Any) -> Outcome:
    """`surplus.review` approving the report, sent by HQ warehousing."""
    body = {"report_id": str(report_id), "reviewer": "赵", "approved": True, "reason": "reported in time", **extra}
    return send(app, "surplus.review", body, user=user)
