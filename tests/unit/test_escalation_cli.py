"""The `casework escalation` commands: simulate prints and writes nothing; rebuild checks and restores clocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from services.intake.application import IntakeApplication
from shared.policy import default_policy_path
from tests.unit.commands import act, receive
from tests.unit.test_escalation_kit import T0, short_policy


def invoke(*args: str) -> Result:
    from casework.cli import app, mount

    if not any(group.name == "escalation" for group in app.registered_groups):
        mount()
    return CliRunner().invoke(app, ["escalation", *args])


@pytest.fixture
def recorded_sqlite(tmp_path: Path) -> tuple[str, Path]:
    store = tmp_path / "casework.sqlite3"
    intake = IntakeApplication(short_policy(), f"sqlite:///{store}", clock=lambda: T0)
    outcome = receive(intake, case_ref="N")
    assert outcome.stream_id is not None
    act(intake, "verify", outcome.stream_id)
    intake.close()
    return f"sqlite:///{store}", store


def test_simulate_command_prints_json_and_writes_nothing(tmp_path: Path, recorded_sqlite: tuple[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url, store = recorded_sqlite
    policy_file = tmp_path / "what-if.toml"
    policy_file.write_text(default_policy_path().read_text().replace('remediate = "8h"', 'remediate = "1m"'))
    monkeypatch.setenv("CASEWORK_DATABASE_URL", url)
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    result = invoke("simulate", "--policy", str(policy_file), "--json",
                    "--from", "2025-06-01", "--to", "2025-06-03T12:00:00+08:00")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cases"] == 1
    # Verified at once, on a public holiday (端午); under the what-if policy remediation would have
    # lapsed one working minute later, at 08:31 on Tuesday.
    assert report["rows"] == [{"level": "branch", "department": "warehousing", "branch_id": "GZ01",
                               "actual": 0, "simulated": 1}]
    assert sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before
    assert store.exists()


def test_rebuild_checks_restores_and_shows_the_clocks(recorded_sqlite: tuple[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    url, store = recorded_sqlite
    monkeypatch.setenv("CASEWORK_DATABASE_URL", url)
    missing = invoke("rebuild", "--check", "--json")
    assert missing.exit_code == 1
    [case_id] = json.loads(missing.stdout)["differing"]
    written = invoke("rebuild", "--json")
    assert written.exit_code == 0 and json.loads(written.stdout)["clocks"] == 1
    assert invoke("rebuild", "--check").exit_code == 0
    shown = invoke("clock", case_id, "--json")
    clock = json.loads(shown.stdout)
    assert clock["version"] == 2 and clock["stages"]["verify"]["phase"] == "done"
    assert (store.parent / "casework-escalation.sqlite3").exists()


def test_clock_for_people_names_the_rung_the_waits_and_each_stage_in_the_branch_zone(
        recorded_sqlite: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = recorded_sqlite
    monkeypatch.setenv("CASEWORK_DATABASE_URL", url)
    [case_id] = json.loads(invoke("rebuild", "--check", "--json").stdout)["differing"]
    assert invoke("rebuild").exit_code == 0
    shown = invoke("clock", case_id)
    assert shown.exit_code == 0, shown.output
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert lines[0] == "clock of GZ01's shortage case N, at version 2"
    assert lines[1:3] == ["not escalated", "not waiting on the customer; 0 wait(s) so far, 0h00m in all"]
    stages = json.loads(invoke("clock", case_id, "--json").stdout)["stages"]
    shown_as = {name: "warned" if stage["warned"] and stage["phase"] == "running" else stage["phase"]
                for name, stage in stages.items()}
    assert [line.split()[:3] for line in lines[4:7]] == [[name, "1", shown_as[name]]
                                                        for name in ("verify", "remediate", "close")]
    assert shown_as["verify"] == "done"
    assert lines[-1] == "times in Asia/Shanghai, the branch's calendar"


def test_clock_for_people_shows_a_climb_a_wait_and_a_lapse() -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from rich.console import Console

    from services.escalation.cli import render_clock
    from services.escalation.domain import CaseClock, StageClock, Timer

    utc = UTC
    clock = CaseClock(case_id="c", branch_id="SZ02", category="shortage", case_ref="SZ-1", version=5,
                      reached=1, sent=1, last_escalation=datetime(2026, 11, 3, 2, 0, tzinfo=utc),
                      climb=Timer(left=timedelta(hours=3, minutes=20)),
                      paused_since=datetime(2026, 11, 3, 4, 0, tzinfo=utc), paused_total=timedelta(hours=2), pauses=2)
    clock.stages["verify"] = StageClock(cycle=1, phase="lapsed", lapsed_at=datetime(2026, 11, 3, 1, 30, tzinfo=utc),
                                        started_at=datetime(2026, 11, 2, 1, 0, tzinfo=utc), warned=True,
                                        due=Timer(at=datetime(2026, 11, 3, 1, 30, tzinfo=utc)),
                                        warn=Timer(at=datetime(2026, 11, 3, 1, 0, tzinfo=utc)))
    clock.stages["remediate"] = StageClock(cycle=1, phase="running", warned=True,
                                           started_at=datetime(2026, 11, 3, 1, 30, tzinfo=utc),
                                           due=Timer(left=timedelta(minutes=5)), warn=Timer(left=timedelta(0)))
    console = Console(record=True, width=80)
    render_clock(console, clock, ZoneInfo("Asia/Shanghai"))
    text = console.export_text()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert lines[1:4] == ["escalated to regional on Tue 03 Nov 10:00", "next rung due after 3h20m more working time",
                          "waiting on the customer since Tue 03 Nov 12:00; 2 wait(s) so far, 2h00m in all"]
    assert lines[5:7] == ["verify 1 lapsed Mon 02 Nov 09:00 Tue 03 Nov 09:00 Tue 03 Nov 09:30",
                          "remediate 1 warned Tue 03 Nov 09:30 0h00m left 0h05m left"]
    assert max(len(line) for line in text.splitlines()) <= 80


def test_simulate_for_people_says_how_many_cases_and_over_what_time(
        tmp_path: Path, recorded_sqlite: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = recorded_sqlite
    monkeypatch.setenv("CASEWORK_DATABASE_URL", url)
    result = invoke("simulate", "--policy", str(default_policy_path()), "--from", "2025-06-01",
                    "--to", "2025-06-03T12:00:00+08:00")
    assert result.exit_code == 0, result.output
    title = " ".join(result.stdout.split("┏")[0].split())  # the table's title, however it wrapped
    assert title.endswith(": 1 case received from 2025-06-01 00:00 UTC+08:00 until 2025-06-03 12:00 UTC+08:00"), title
