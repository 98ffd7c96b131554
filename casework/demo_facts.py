"""The story's key facts, gathered from what was recorded and heard, and the checks that must hold."""

from __future__ import annotations

from typing import Any

from casework.demo_store import Alteration
from casework.demo_story import DAMAGE_CASE, PERIOD, SHORTAGE_CASE, SURPLUS_REF
from casework.demo_world import World
from services.rewards.registry import Registry

CLIMB = ["branch", "regional", "hq"]
NOTICES = ["branch.SZ02", "regional.south", "hq.warehousing"]


def case_facts(story: dict[str, Any], ref: str) -> dict[str, Any]:
    events = story["events"]
    return {
        "case_id": story["stream_id"], "case_ref": ref, "branch_id": events[0]["branch_id"] if events else None,
        "events": [e["event"] for e in events],
        "escalations": [{"level": e["fields"]["level"], "department": e["fields"]["department"],
                         "at": e["occurred_at"], "by": e["principal"], "command_id": e["command_id"]}
                        for e in events if e["event"] == "complaint.escalated"],
        "closed": bool(events) and events[-1]["event"] == "complaint.closed",
        "goods_located_by": next((e["fields"]["reporting_branch"] for e in events
                                  if e["event"] == "complaint.goods_located"), None),
    }


def registry_facts(registry: Registry | None, digest_ok: bool) -> dict[str, Any] | None:
    if registry is None:
        return None
    return {
        "period": registry.period, "review_count": registry.review_count, "digest_matches": digest_ok,
        "rows": [{k: row[k] for k in ("report_ref", "branch_id", "matched_case_id", "responsible", "reward",
                                      "penalty")} for row in registry.rows],
        "totals": registry.totals,
    }


def gather(world: World, cases: dict[str, dict[str, Any]], registry: dict[str, Any] | None,
           before: dict[str, Any], altered: Alteration, after: dict[str, Any]) -> dict[str, Any]:
    heard = world.observer
    escalations = heard.on("casework.escalations")
    return {
        "cases": cases,
        "notices": [{"routing_key": s.routing_key, "case_ref": s.body.get("case_ref"), "level": s.body.get("level"),
                     "at": s.body.get("escalated_at")} for s in escalations if "level" in s.body],
        "warnings": [{"routing_key": s.routing_key, "case_ref": s.body.get("case_ref"), "stage": s.body.get("stage"),
                      "at": s.body.get("warned_at")} for s in escalations if "warned_at" in s.body],
        "outcomes": {mid: o.get("status") for mid, o in sorted(heard.outcomes.items()) if mid.startswith("demo-")},
        "registry": registry,
        "settlement": [{"branch_id": s.body.get("branch_id"), "kind": s.body.get("kind"),
                        "amount": s.body.get("amount")}
                       for s in heard.on("casework.events") if s.body.get("event") == "ledger.settled"],
        "dead_letters": len(heard.on("casework.dead")),
        "verify_before": before,
        "altered": {"stream_id": altered.stream_id, "version": altered.version, "field": altered.field,
                    "before": altered.before, "after": altered.after},
        "verify_after": after,
    }


def checks(facts: dict[str, Any], steps: int) -> list[tuple[str, bool]]:
    """Each key fact of the story, and whether it held."""
    damage, shortage = facts["cases"]["damage"], facts["cases"]["shortage"]
    registry = facts["registry"] or {"rows": [], "totals": [], "digest_matches": False}
    nets = {t["branch_id"]: t["net"] for t in registry["totals"]}
    rows = registry["rows"]
    settled = {s["branch_id"]: (s["kind"], s["amount"]) for s in facts["settlement"]}
    findings = [(f["stream_id"], f["version"], f["kind"]) for f in facts["verify_after"]["findings"]]
    accepted = [status for status in facts["outcomes"].values() if status == "accepted"]
    return [
        (f"all {steps} commands of the story were accepted", len(accepted) == steps),
        ("GZ01's damage case was closed in time and never escalated",
         damage["closed"] and not damage["escalations"]),
        ("SZ02's neglected shortage climbed branch → regional → hq, by the escalation service",
         [e["level"] for e in shortage["escalations"]] == CLIMB
         and all(e["command_id"].startswith("escalate:") for e in shortage["escalations"])),
        ("its HQ escalation went to the warehousing department",
         bool(shortage["escalations"]) and shortage["escalations"][-1]["department"] == "warehousing"),
        (f"escalation notices were heard on {', '.join(NOTICES)}",
         [n["routing_key"] for n in facts["notices"]] == NOTICES),
        ("HQ matched GZ01's surplus to SZ02's shortage case", shortage["goods_located_by"] == "GZ01"),
        (f"the {PERIOD} registry lists GZ01's report {SURPLUS_REF}, SZ02 responsible",
         len(rows) == 1 and rows[0]["report_ref"] == SURPLUS_REF and rows[0]["branch_id"] == "GZ01"
         and rows[0]["matched_case_id"] == SHORTAGE_CASE
         and [r["branch_id"] for r in rows[0]["responsible"]] == ["SZ02"] and registry["digest_matches"]),
        ("GZ01 is credited 200.00 and SZ02 debited 200.00",
         nets == {"GZ01": "200.00", "SZ02": "-200.00"}),
        ("the settlement pays GZ01 200.00 and charges SZ02 200.00",
         settled == {"GZ01": ("payout", "200.00"), "SZ02": ("charge", "200.00")}),
        ("audit verify found every stream intact", facts["verify_before"]["intact"]),
        (f"after the edit, verify named stream {SHORTAGE_CASE[:8]}… version {facts['altered']['version']} as edited",
         findings == [(SHORTAGE_CASE, facts["altered"]["version"], "edited")]),
        ("nothing was dead-lettered", facts["dead_letters"] == 0),
    ]


__all__ = ["DAMAGE_CASE", "case_facts", "checks", "gather", "registry_facts"]
