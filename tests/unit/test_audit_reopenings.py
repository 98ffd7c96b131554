"""`casework audit reopenings`: the handbook's repeat complaints, counted per branch."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tests.unit.commands import BODIES
from tests.unit.test_audit_helpers import CUSTOMER, T0, Story, run_audit


def receive(story: Story, ref: str, branch: str) -> UUID:
    outcome = story.send("complaint.receive", {
        "branch_id": branch, "case_ref": ref, "waybill_no": "WB1", "category": "damage", "customer": CUSTOMER,
        "description": "carton crushed"}, user=f"branch-{branch}")
    return UUID(str(outcome.stream_id))


def act(story: Story, command: str, case: UUID, branch: str, **overrides: Any) -> None:
    story.at(hours=1).send(f"complaint.{command}", {**BODIES[command](str(case)), **overrides},
                           user=f"branch-{branch}")


def settle_and_reopen(story: Story, case: UUID, branch: str) -> None:
    for command in ("verify", "close", "reopen"):
        act(story, command, case, branch)


def told(url: str) -> dict[str, UUID]:
    """GZ01 registers A and B and hands B over to SZ02; A is reopened once while GZ01 holds it,
    B twice while SZ02 holds it; SZ02 registers C, never reopened; SH01 nothing."""
    story = Story(url)
    a, b = receive(story, "A", "GZ01"), receive(story, "B", "GZ01")
    c = receive(story, "C", "SZ02")
    settle_and_reopen(story, a, "GZ01")
    act(story, "hand_over", b, "GZ01", to_branch="SZ02")
    settle_and_reopen(story, b, "SZ02")
    story.at(days=3)
    settle_and_reopen(story, b, "SZ02")
    story.close()
    return {"A": a, "B": b, "C": c}


def test_each_reopening_counts_against_the_branch_that_owned_the_case(sqlite_url: str) -> None:
    told(sqlite_url)
    code, document = run_audit(sqlite_url, "reopenings", "--json")
    assert code == 0, document
    assert document["branches"] == [
        {"branch_id": "SZ02", "received": 1, "reopenings": 2, "cases_reopened": 1,
         "reopenings_per_case_received": 2.0},
        {"branch_id": "GZ01", "received": 2, "reopenings": 1, "cases_reopened": 1,
         "reopenings_per_case_received": 0.5},
    ]


def test_a_window_counts_what_was_recorded_within_it(sqlite_url: str) -> None:
    """The second reopening of B was recorded three days later: only it falls after T0 + 2 days,
    while B's hand-over before the window still decides who owned it."""
    told(sqlite_url)
    since = (T0.replace(microsecond=0)).isoformat()
    day_two = T0.replace(day=T0.day + 2).isoformat()
    _, early = run_audit(sqlite_url, "reopenings", "--json", "--since", since, "--until", day_two)
    _, late = run_audit(sqlite_url, "reopenings", "--json", "--since", day_two)
    assert [(r["branch_id"], r["received"], r["reopenings"]) for r in early["branches"]] == [
        ("GZ01", 2, 1), ("SZ02", 1, 1)]
    assert [(r["branch_id"], r["received"], r["reopenings"]) for r in late["branches"]] == [("SZ02", 0, 1)]


def test_people_get_a_table_and_a_time_without_offset_is_refused(sqlite_url: str) -> None:
    told(sqlite_url)
    code, text = run_audit(sqlite_url, "reopenings")
    assert code == 0
    assert "Reopenings per branch" in text
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if "│" in line]
    assert rows == [["SZ02", "1", "2", "1", "2.00"], ["GZ01", "2", "1", "1", "0.50"]]
    code, text = run_audit(sqlite_url, "reopenings", "--since", "2026-11-01T00:00:00")
    assert code == 2
    assert "no UTC offset" in text
