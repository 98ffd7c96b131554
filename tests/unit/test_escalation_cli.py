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
