"""`casework replay rebuild`: read models rebuilt from history give the live state's digest, and only it."""

from __future__ import annotations

from pathlib import Path

import pytest

from casework.rebuild import REBUILDERS
from casework.settings import Settings
from services.escalation.application import EscalationApplication
from services.escalation.history import IntakeHistory
from services.escalation.rules import PolicyBook
from services.escalation.store import open_store, store_location
from services.intake.application import IntakeApplication
from services.rewards.application import RewardsApplication
from services.rewards.rebuild import feed, history
from shared.policy import load_policy
from tests.unit.commands import act, receive, send


def quiet(done: int, total: int | None) -> None:
    """Progress goes nowhere in tests."""


@pytest.fixture
def config(tmp_path: Path) -> Settings:
    """A store with complaints and a decided period, and live read models built from it."""
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    policy = load_policy()
    intake = IntakeApplication(policy, url)
    shortage = receive(intake, "S1", branch="SZ02").stream_id
    act(intake, "verify", receive(intake, "D1", category="damage").stream_id)
    report = send(intake, "surplus.report", {
        "branch_id": "GZ01", "report_ref": "R1", "reported_by": "陈", "goods_name": "电饭煲", "window": "W3",
        "clearance_date": "2026-11-20", "inspected_with": ["site manager"], "photos": ["p1"], "resealed": True})
    send(intake, "surplus.review", {"report_id": str(report.stream_id), "reviewer": "赵", "approved": True,
                                    "reason": "ok", "matched_case_id": str(shortage),
                                    "responsible_branches": [{"branch_id": "SZ02", "share": "1"}]},
         user="hq-warehousing")
    send(intake, "rewards.decide_period", {"period": intake.clock().strftime("%Y-%m"), "decided_by": "仓储部"},
         user="hq-warehousing")
    intake.close()
    live_rewards = RewardsApplication(policy, url)
    reader = IntakeHistory.open(url)
    try:
        from casework.audit import StoreReader

        store_reader = StoreReader(url)
        feed(live_rewards, history(store_reader))
        store_reader.close()
        store = open_store(store_location(url))
        app = EscalationApplication(store, PolicyBook.single(policy), reader)
        app.replace(app.rebuild(reader.facts(), intake.clock()))
        store.close()
    finally:
        reader.close()
        live_rewards.close()
    return Settings(database_url=url)


def test_rebuilt_digests_equal_the_live_ones(config: Settings) -> None:
    for name, rebuild in REBUILDERS.items():
        result = rebuild(config, quiet)
        assert result["items"] > 0, name
        assert result["digest"] == result["live_digest"], name


def test_a_changed_live_clock_makes_the_digests_differ(config: Settings) -> None:
    store = open_store(store_location(config.database_url))
    row = next(r for r in store.rows() if '"reached":-1' in r.state)
    store._run("UPDATE escalation_clocks SET state = ? WHERE case_id = ?",
               (row.state.replace('"reached":-1', '"reached":0', 1), row.case_id))
    store.close()
    result = REBUILDERS["escalation"](config, quiet)
    assert result["digest"] != result["live_digest"]
