"""`casework demo`: the handbook's story plays end to end, and its key facts hold.

The embedded run needs nothing but the project; the last test plays the same story
through real RabbitMQ and PostgreSQL (twice, as a newcomer trying it again would).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from casework.demo import run_demo
from casework.demo_facts import checks
from casework.demo_story import SHORTAGE_CASE, STEPS, SURPLUS_REF


def play(**options: Any) -> tuple[int, dict[str, Any]]:
    """Run the demo with --json; stdout must hold the facts and nothing else."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_demo(as_json=True, **options)
    return code, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[int, dict[str, Any]]]:
    code, facts = play()
    yield code, facts
    shutil.rmtree(Path(urlsplit(facts["store"]).path[1:]).parent, ignore_errors=True)


@pytest.fixture
def facts(embedded: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    return embedded[1]


def test_the_embedded_demo_succeeds_in_well_under_30_seconds(embedded: tuple[int, dict[str, Any]]) -> None:
    code, facts = embedded
    assert code == 0
    assert facts["ok"] is True
    assert facts["store"].startswith("sqlite:///")
    assert "in-process" in facts["broker"]
    assert facts["elapsed_seconds"] < 30


def test_every_command_of_the_story_is_accepted(facts: dict[str, Any]) -> None:
    assert list(facts["outcomes"].values()) == ["accepted"] * len(STEPS)


def test_the_neglected_shortage_climbs_branch_regional_hq_warehousing(facts: dict[str, Any]) -> None:
    shortage = facts["cases"]["shortage"]
    assert [(e["level"], e["by"]) for e in shortage["escalations"]] == [
        ("branch", "service:escalation"), ("regional", "service:escalation"), ("hq", "service:escalation")]
    assert shortage["escalations"][-1]["department"] == "warehousing"
    assert [n["routing_key"] for n in facts["notices"]] == ["branch.SZ02", "regional.south", "hq.warehousing"]
    # Monday 11:30 (2 working hours after 09:30), 17:00 and Tuesday 11:30 (4 working hours each) in Shanghai.
    assert [e["at"] for e in shortage["escalations"]] == [
        "2026-11-02T03:30:00+00:00", "2026-11-02T09:00:00+00:00", "2026-11-03T03:30:00+00:00"]


def test_the_damage_case_handled_in_time_never_escalates(facts: dict[str, Any]) -> None:
    damage = facts["cases"]["damage"]
    assert damage["closed"] is True
    assert damage["escalations"] == []
    assert all(n["case_ref"] != damage["case_ref"] for n in facts["notices"] + facts["warnings"])


def test_hq_matches_the_surplus_to_the_shortage_and_holds_sz02_responsible(facts: dict[str, Any]) -> None:
    assert facts["cases"]["shortage"]["goods_located_by"] == "GZ01"
    registry = facts["registry"]
    assert registry["period"] == "2026-11"
    assert registry["digest_matches"] is True
    assert registry["rows"] == [{
        "report_ref": SURPLUS_REF, "branch_id": "GZ01", "matched_case_id": SHORTAGE_CASE,
        "responsible": [{"branch_id": "SZ02", "share": "1"}], "reward": "200.00", "penalty": "200.00"}]
    nets = {t["branch_id"]: (t["reward_total"], t["penalty_total"], t["net"]) for t in registry["totals"]}
    assert nets == {"GZ01": ("200.00", "0.00", "200.00"), "SZ02": ("0.00", "200.00", "-200.00")}


def test_settlement_pays_gz01_and_charges_sz02(facts: dict[str, Any]) -> None:
    assert sorted((s["branch_id"], s["kind"], s["amount"]) for s in facts["settlement"]) == [
        ("GZ01", "payout", "200.00"), ("SZ02", "charge", "200.00")]


def test_verify_passes_then_names_the_altered_stream_and_version(facts: dict[str, Any]) -> None:
    assert facts["verify_before"]["intact"] is True
    assert facts["verify_before"]["findings"] == []
    altered = facts["altered"]
    assert (altered["stream_id"], altered["version"], altered["field"]) == (SHORTAGE_CASE, 1, "claimed_amount")
    assert (altered["before"], altered["after"]) == ("2400.00", "9400.00")
    assert facts["verify_after"]["intact"] is False
    assert [(f["stream_id"], f["version"], f["kind"]) for f in facts["verify_after"]["findings"]] == [
        (SHORTAGE_CASE, 1, "edited")]


def test_nothing_is_dead_lettered(facts: dict[str, Any]) -> None:
    assert facts["dead_letters"] == 0


def test_a_missing_escalation_makes_the_story_fail(facts: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(facts))
    broken["cases"]["shortage"]["escalations"].pop()
    failed = [fact for fact, held in checks(broken, len(STEPS)) if not held]
    assert any("climbed branch → regional → hq" in fact for fact in failed)


@pytest.mark.integration
@pytest.mark.slow
def test_the_same_story_plays_through_rabbitmq_and_postgresql_twice(amqp_url: str, database_url: str) -> None:
    created: list[str] = []
    try:
        code, first = play(amqp_url=amqp_url, database_url=database_url)
        assert code == 0, [c for c in first["checks"] if not c["held"]]
        assert first["store"] == database_url  # an empty database is used as it is
        assert first["broker"].startswith("RabbitMQ at")
        assert [n["routing_key"] for n in first["notices"]] == ["branch.SZ02", "regional.south", "hq.warehousing"]

        code, second = play(amqp_url=amqp_url, database_url=database_url)
        assert second["store"] != database_url  # the first run's data is kept; a fresh database beside it
        created.append(urlsplit(second["store"]).path.strip("/"))
        assert code == 0, [c for c in second["checks"] if not c["held"]]
    finally:
        parts = urlsplit(database_url)
        admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
