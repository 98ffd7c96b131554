"""Shared by the rewards tests: intake in memory on a fake clock, and what it publishes to casework.rewards."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.intake.application import IntakeApplication, Submission
from services.rewards.application import RewardsApplication
from services.rewards.rebuild import feed, history
from shared.events import Outcome, parse_command
from shared.policy import Policy, load_policy

NOV_10 = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
THIRDS = {"SZ02": "0.3333333333", "SH01": "0.3333333333", "HZ03": "0.3333333334"}
Message = tuple[str, bytes]


class World:
    """HQ and the branches working through intake (in memory); rewards sees what intake's relay publishes."""

    def __init__(self, policy: Policy | None = None, now: datetime = NOV_10, url: str = "memory:") -> None:
        self.policy = policy or load_policy()
        self.now = now
        self.intake = IntakeApplication(self.policy, url, clock=lambda: self.now)
        self._seen = 0

    def send(self, user: str, key: str, body: dict[str, Any]) -> Outcome:
        command = parse_command(key, json.dumps(body).encode())
        [outcome] = self.intake.submit([Submission(command, str(uuid.uuid4()), user)])
        return outcome

    def accepted(self, user: str, key: str, body: dict[str, Any]) -> UUID:
        outcome = self.send(user, key, body)
        assert outcome.status == "accepted", outcome
        assert outcome.stream_id is not None
        return outcome.stream_id

    def shortage(self, branch: str = "SZ02", ref: str = "C-1", category: str = "shortage") -> UUID:
        return self.accepted(f"branch-{branch}", "complaint.receive", {
            "branch_id": branch, "case_ref": ref, "waybill_no": "WB-1", "category": category,
            "customer": {"name": "李小姐", "phone": "13800000000"}, "description": "三箱少货"})

    def report(self, branch: str = "GZ01", ref: str = "R-1", reported_by: str = "王五",
               goods: str = "电饭煲", category: str | None = None) -> UUID:
        body = {"branch_id": branch, "report_ref": ref, "reported_by": reported_by, "goods_name": goods,
                "window": "3号窗口", "clearance_date": "2026-11-09", "inspected_with": ["现场管理员", "仓管员"],
                "photos": ["photo://1"], "resealed": True}
        if category:
            body["goods_category"] = category
        return self.accepted(f"branch-{branch}", "surplus.report", body)

    def review_body(self, report: UUID, shares: dict[str, str] | None = None, matched: UUID | None = None,
                    approved: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"report_id": str(report), "reviewer": "赵专员", "approved": approved,
                                "reason": "属实" if approved else "未按规定上报"}
        if matched:
            body["matched_case_id"] = str(matched)
        if shares:
            body["responsible_branches"] = [{"branch_id": b, "share": s} for b, s in shares.items()]
        return body

    def review(self, report: UUID, shares: dict[str, str] | None = None, matched: UUID | None = None,
               approved: bool = True) -> Outcome:
        return self.send("hq-warehousing", "surplus.review", self.review_body(report, shares, matched, approved))

    def decide(self, period: str = "2026-11", user: str = "hq-warehousing") -> Outcome:
        return self.send(user, "rewards.decide_period", {"period": period, "decided_by": "钱主任"})

    def settle(self, period: str = "2026-11", user: str = "hq-settlement") -> Outcome:
        return self.send(user, "rewards.settle_period", {"period": period, "settled_by": "孙会计"})

    def messages(self) -> list[Message]:
        """Everything intake has published to casework.rewards so far."""
        return list(history(self.intake))

    def new_messages(self) -> list[Message]:
        """What was published since the last call."""
        everything = self.messages()
        fresh, self._seen = everything[self._seen:], len(everything)
        return fresh


def rewards(policy: Policy | None = None, url: str = "memory:") -> RewardsApplication:
    return RewardsApplication(policy or load_policy(), url, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
                              user_id="svc-rewards")


def fed(messages: Iterable[Message], policy: Policy | None = None, url: str = "memory:",
        batch: int = 500) -> RewardsApplication:
    app = rewards(policy, url)
    feed(app, messages, batch)
    return app


def recorded(app: RewardsApplication) -> list[Any]:
    """Every event rewards recorded, in notification order."""
    found: list[Any] = []
    start = 1
    while page := app.recorder.select_notifications(start, 1000):
        found.extend(app.mapper.to_domain_event(n) for n in page)
        start = page[-1].id + 1  # ids have gaps where a transaction rolled back
    return found


def entries(app: RewardsApplication) -> list[tuple[str, str, str, str]]:
    """Ledger credits and debits as (kind, branch, report_id, amount), sorted."""
    from services.rewards.domain import Ledger

    found = [(type(e).__name__, e.branch_id, e.report_id, e.amount) for e in recorded(app)
             if isinstance(e, Ledger.Credited | Ledger.Debited)]
    return sorted(found)


def three_way_world() -> tuple[World, UUID]:
    """GZ01 reports surplus matching SZ02's shortage; SZ02, SH01 and HZ03 share the blame in thirds."""
    world = World()
    case = world.shortage()
    report = world.report()
    assert world.review(report, THIRDS, matched=case).status == "accepted"
    return world, report


def decided_world(url: str = "memory:") -> World:
    """Three approved reviews (one in thirds, one on a single branch, one with no one to blame), decided."""
    world = World(url=url)
    case = world.shortage()
    world.review(world.report(ref="R-1"), THIRDS, matched=case)
    world.review(world.report(ref="R-2"), {"SZ02": "1"})
    world.review(world.report(branch="SH01", ref="R-3", reported_by="周六", goods="羽绒服"))
    assert world.decide().status == "accepted"
    return world
