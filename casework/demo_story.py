"""The handbook's story as the commands its people send, at the moments they send them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from casework.demo_world import ZONE
from services.intake.domain import complaint_id, report_id

PERIOD = "2026-11"
DAMAGE_REF = "GZ-2026-1102-01"
SHORTAGE_REF = "SZ-2026-1102-07"
SURPLUS_REF = "GZ-SUR-2026-1103-02"
SHORTAGE_WAYBILL = "SZ66023417"
CLAIMED = "2400.00"
DAMAGE_CASE = str(complaint_id("GZ01", DAMAGE_REF))
SHORTAGE_CASE = str(complaint_id("SZ02", SHORTAGE_REF))
SURPLUS_REPORT = str(report_id("GZ01", SURPLUS_REF))


@dataclass(frozen=True)
class Actor:
    """Who sends a command: the RabbitMQ user the policy knows, and a name for people."""

    user: str
    name: str


GZ01 = Actor("branch-GZ01", "Guangzhou branch (GZ01)")
SZ02 = Actor("branch-SZ02", "Shenzhen branch (SZ02)")
WAREHOUSING = Actor("hq-warehousing", "HQ warehousing (集团仓储部)")
SETTLEMENT = Actor("hq-settlement", "Settlement centre (结算中心)")


@dataclass(frozen=True)
class Step:
    """One command of the story: when, by whom, what it means, and its body."""

    at: datetime
    actor: Actor
    command: str
    says: str
    body: dict[str, Any]


def at(day: int, month: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


def customer(name: str, phone: str) -> dict[str, str]:
    return {"name": name, "phone": phone}


STEPS: tuple[Step, ...] = (
    Step(at(2, 11, 9, 5), GZ01, "complaint.receive",
         "registers a damage complaint: 2 of 6 cartons of floor tiles arrived crushed", {
             "branch_id": "GZ01", "case_ref": DAMAGE_REF, "waybill_no": "GZ88010231", "category": "damage",
             "customer": customer("陈先生", "13900000001"), "claimed_amount": "860.00", "channel": "phone",
             "received_by": "王芳 (GZ01 customer service)",
             "description": "Two of six cartons of floor tiles arrived crushed"}),
    Step(at(2, 11, 9, 30), SZ02, "complaint.receive",
         f"registers a shortage complaint: 7 of 10 cartons of phone cases delivered, {CLAIMED} claimed", {
             "branch_id": "SZ02", "case_ref": SHORTAGE_REF, "waybill_no": SHORTAGE_WAYBILL, "category": "shortage",
             "customer": customer("李小姐", "13800000000"), "claimed_amount": CLAIMED, "channel": "phone",
             "description": "Ordered 10 cartons of phone cases, received 7"}),
    Step(at(2, 11, 10, 10), GZ01, "complaint.verify",
         "restates the damage to the customer, who confirms it; finds the cause", {
             "case_id": DAMAGE_CASE, "verified_by": "王芳 (GZ01 customer service)", "customer_confirmed": True,
             "summary": "2 of 6 cartons crushed; confirmed with the customer by phone",
             "cause": "Stacked under machine parts at GZ01 window 3"}),
    Step(at(2, 11, 14, 0), GZ01, "complaint.remediate",
         "sends replacement tiles and agrees 520.00 of the 860.00 claimed", {
             "case_id": DAMAGE_CASE, "remediated_by": "王芳 (GZ01 customer service)", "compensation": "520.00",
             "action": "Replacement tiles sent on GZ88010299; compensation for the delay agreed"}),
    Step(at(2, 11, 16, 30), GZ01, "complaint.close",
         "closes the damage case; the customer is satisfied", {
             "case_id": DAMAGE_CASE, "closed_by": "王芳 (GZ01 customer service)", "customer_satisfied": True,
             "resolution": "Replacement delivered, compensation paid"}),
    Step(at(3, 11, 14, 20), GZ01, "surplus.report",
         "finds 3 cartons it should not have at window 7; opens them with the site manager, warehouse "
         "keeper and porters, photographs, reseals and labels them, and reports them to HQ", {
             "branch_id": "GZ01", "report_ref": SURPLUS_REF, "reported_by": "王芳 (GZ01 customer service)",
             "goods_name": "phone cases (手机壳), 3 cartons", "window": "window 7", "clearance_date": "2026-11-03",
             "inspected_with": ["site manager 刘强", "warehouse keeper 张伟", "porters 孙磊, 周杰"],
             "photos": ["gz01/2026-11-03/sur-02-opened.jpg", "gz01/2026-11-03/sur-02-label.jpg"],
             "resealed": True, "waybill_no": SHORTAGE_WAYBILL}),
    Step(at(4, 11, 10, 0), WAREHOUSING, "surplus.review",
         "approves GZ01's report, matches it to SZ02's shortage and holds SZ02 responsible", {
             "report_id": SURPLUS_REPORT, "reviewer": "赵敏 (investigation specialist)", "approved": True,
             "reason": f"Reported the same day with full evidence; waybill {SHORTAGE_WAYBILL} is SZ02's shortage",
             "matched_case_id": SHORTAGE_CASE, "responsible_branches": [{"branch_id": "SZ02", "share": "1"}]}),
    Step(at(4, 11, 11, 0), SZ02, "complaint.verify",
         "at last verifies its case: the 3 cartons went to Guangzhou by mistake", {
             "case_id": SHORTAGE_CASE, "verified_by": "黄磊 (SZ02 customer service)", "customer_confirmed": True,
             "summary": "7 of 10 cartons delivered; the other 3 are at GZ01",
             "cause": "Loaded onto the Guangzhou trunk at SZ02 window 2"}),
    Step(at(4, 11, 15, 0), SZ02, "complaint.remediate",
         "has GZ01 forward the 3 cartons to the customer", {
             "case_id": SHORTAGE_CASE, "remediated_by": "黄磊 (SZ02 customer service)",
             "action": "GZ01 forwarded the 3 cartons on GZ88010342; delivered"}),
    Step(at(4, 11, 17, 30), SZ02, "complaint.close",
         "closes the shortage case; the customer is satisfied", {
             "case_id": SHORTAGE_CASE, "closed_by": "黄磊 (SZ02 customer service)", "customer_satisfied": True,
             "resolution": "All 10 cartons delivered; apologised for the delay"}),
    Step(at(1, 12, 9, 30), WAREHOUSING, "rewards.decide_period",
         f"issues the decision on surplus/shortage rewards and penalties of {PERIOD} (关于多货少货奖罚的决定)", {
             "period": PERIOD, "decided_by": "HQ warehousing (集团仓储部)"}),
    Step(at(1, 12, 14, 0), SETTLEMENT, "rewards.settle_period",
         f"pays out and charges {PERIOD} as decided", {
             "period": PERIOD, "settled_by": "Settlement centre (结算中心)"}),
)

# What a newcomer is told before a step, where the story turns.
INTERLUDES: dict[int, str] = {
    3: "Meanwhile SZ02 does nothing about its shortage. The escalation service keeps its SLA clock: "
       "verify within 2 working hours, then one rung up the ladder every 4 working hours.",
    10: "The rest of November passes. On the first working day of December HQ decides the month.",
}
