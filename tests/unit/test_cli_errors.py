"""What the command line says when it is configured wrong or pointed at nothing: one line, an exit code, no file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from services.escalation.store import store_location
from services.intake.application import IntakeApplication
from shared.policy import default_policy_path, load_policy
from shared.store import DatabaseUrlError, eventsourcing_env
from tests.unit.commands import receive
from tests.unit.test_rewards_helpers import decided_world, fed


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, to see what a command leaves in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("url", ["sqlite:var/x.db", "sqlite://var/x.db", "sqlite:/var/x.db", "sqlite:///"])
def test_a_sqlite_url_without_three_slashes_is_refused_not_shortened(url: str, elsewhere: Path) -> None:
    with pytest.raises(DatabaseUrlError, match=r"sqlite:///PATH \(relative to the current directory\)"):
        eventsourcing_env(url)
    with pytest.raises(DatabaseUrlError, match=r"sqlite:////PATH \(absolute\)"):
        store_location(url)
    assert list(elsewhere.iterdir()) == []


def test_three_slashes_are_relative_and_four_absolute(elsewhere: Path) -> None:
    assert eventsourcing_env("sqlite:///var/x.db")["SQLITE_DBNAME"] == "var/x.db"
    assert eventsourcing_env("sqlite:////srv/x.db", "rewards")["SQLITE_DBNAME"] == "/srv/x-rewards.db"
    assert store_location("sqlite:///var/x.db") == "sqlite:///var/x-escalation.db"
    assert store_location("sqlite:////srv/x.db") == "sqlite:////srv/x-escalation.db"


def casework(*args: str, **env: str) -> Result:
    """`casework ARGS` as a person types it, with the environment given (and nothing else of CASEWORK_*)."""
    from casework.cli import app, mount

    if not any(group.name == "audit" for group in app.registered_groups):
        mount()
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400", **env})


@pytest.fixture(autouse=True)
def defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings a new user has: none."""
    for name in [n for n in os.environ if n.startswith("CASEWORK_")]:
        monkeypatch.delenv(name)


def free_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CASE = "0b6b7c8e-1111-4111-8111-111111111111"
READ_ONLY = [
    ("audit", "timeline", CASE),
    ("audit", "state", CASE, "--version", "1"),
    ("audit", "verify", "--all"),
    ("audit", "verify", CASE),
    ("audit", "checkpoint", "-o", "checkpoint.json"),
    ("audit", "export", CASE, "-o", "dispute.json"),
    ("rewards", "registry", "2026-11"),
    ("rewards", "status", "2026-11"),
    ("rewards", "rebuild", "2026-11"),
    ("escalation", "rebuild", "--check"),
    ("escalation", "rebuild"),
    ("escalation", "clock", CASE),
    ("escalation", "simulate", "--policy", str(default_policy_path())),
    ("replay", "publish", "--binding", "complaint.#", "--queue", "mine"),
    ("replay", "rebuild"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_command_that_reads_refuses_a_store_that_is_not_there_and_creates_none(
        command: tuple[str, ...], elsewhere: Path) -> None:
    result = casework(*command, CASEWORK_AUDIT_HMAC_KEY="a-key-for-signing-that-is-long-enough!!")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: no store at sqlite:///var/casework")
    assert "a relative path is taken from the current directory" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_sqlite_file_without_casework_tables_is_not_a_store(elsewhere: Path) -> None:
    (elsewhere / "empty.db").touch()
    result = casework("audit", "verify", "--all", CASEWORK_DATABASE_URL="sqlite:///empty.db")
    assert (result.exit_code, result.stderr) == (
        2, f"error: no store at sqlite:///empty.db: empty.db holds no table stored_events (a relative path is "
           f"taken from the current directory, {elsewhere})\n")


@pytest.mark.integration
def test_a_postgresql_database_without_casework_tables_is_not_reported_intact(database_url: str) -> None:
    result = casework("audit", "verify", "--all", CASEWORK_DATABASE_URL=database_url)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: no store at {database_url}: PostgreSQL database ")
    assert "has no table casework_events" in result.stderr


def test_an_unreachable_postgresql_is_named_with_its_host_and_database_at_once() -> None:
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/cases"
    for command in (("audit", "verify", "--all"), ("run", "--only", "intake"), ("run", "--only", "escalation")):
        started = time.monotonic()
        result = casework(*command, CASEWORK_DATABASE_URL=url)
        assert result.exit_code == 3, result.output
        assert f"PostgreSQL database cases at 127.0.0.1:{port}" in result.stderr
        assert "Traceback" not in result.output and time.monotonic() - started < 3


@pytest.mark.parametrize("url", ["mysql://casework@db/cases", "var/casework.sqlite3"])
@pytest.mark.parametrize("command", [("run",), ("audit", "verify", "--all"), ("audit", "timeline", CASE)],
                         ids=" ".join)
def test_an_unsupported_database_url_is_one_line(url: str, command: tuple[str, ...], elsewhere: Path) -> None:
    result = casework(*command, CASEWORK_DATABASE_URL=url)
    assert (result.exit_code, result.stderr) == (
        2, f"error: {url!r}: CASEWORK_DATABASE_URL must be sqlite:///PATH, postgresql://USER@HOST:PORT/DB "
           "or memory:\n")


def test_run_refuses_a_sqlite_url_that_would_lose_a_character(elsewhere: Path) -> None:
    result = casework("run", "--only", "intake", CASEWORK_DATABASE_URL="sqlite:var/x.db")
    assert result.exit_code == 2, result.output
    assert "sqlite:///PATH (relative to the current directory)" in result.stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("command", [("run", "--only", "intake"), ("topology",),
                                     ("subscribe", "escalations", "hq.warehousing", "--limit", "1")], ids=" ".join)
def test_an_unreachable_rabbitmq_is_one_line_and_exit_3(command: tuple[str, ...]) -> None:
    port = free_port()
    result = casework(*command, CASEWORK_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{port}/",
                      CASEWORK_DATABASE_URL="memory:")
    assert result.exit_code == 3, result.output
    assert f"error: cannot reach RabbitMQ: [Errno 111] Connect call failed ('127.0.0.1', {port})" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [("topology",), ("subscribe", "escalations", "hq.warehousing", "--limit", "1")],
                         ids=" ".join)
def test_an_unreachable_rabbitmq_is_said_once_by_a_real_process(command: tuple[str, ...]) -> None:
    """Outside the test runner nothing collects the client library's log: the process's whole
    standard error is the one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")}
    env.update(COLUMNS="400", CASEWORK_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    done = subprocess.run([sys.executable, "-m", "casework", *command], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 3
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach RabbitMQ: ")


@pytest.mark.integration
def test_replay_into_a_queue_that_does_not_exist_is_one_line(amqp_url: str, elsewhere: Path) -> None:
    app = IntakeApplication(load_policy(), "sqlite:///cases.db")
    receive(app)
    app.close()
    result = casework("replay", "publish", "--binding", "complaint.#", "--queue", "casework.client.nobody.x",
                      CASEWORK_DATABASE_URL="sqlite:///cases.db", CASEWORK_AMQP_URL=amqp_url)
    assert result.exit_code == 2, result.output
    assert result.stderr.endswith("\nerror: no queue 'casework.client.nobody.x' on the broker at CASEWORK_AMQP_URL: "
                                  "the subscriber declares and binds its queue first\n")
    assert "Traceback" not in result.output


def test_publish_names_a_body_file_that_cannot_be_read(elsewhere: Path) -> None:
    result = casework("publish", "complaint.receive", "--json", "@nowhere.json")
    assert (result.exit_code, result.stderr) == (2, "error: --json @nowhere.json: No such file or directory\n")


@pytest.mark.parametrize("command", [("replay", "rebuild"), ("rewards", "rebuild", "2026-11")], ids=" ".join)
def test_a_missing_policy_file_is_one_line(command: tuple[str, ...], elsewhere: Path) -> None:
    result = casework(*command, CASEWORK_POLICY="nowhere.toml")
    assert (result.exit_code, result.stderr) == (
        2, "error: policy nowhere.toml: cannot be read: No such file or directory\n")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(("variable", "command"), [
    ("CASEWORK_ESCALATION_BATCH_SIZE", ("run", "--only", "escalation")),
    ("CASEWORK_ESCALATION_BATCH_SIZE", ("escalation", "clock", CASE)),
    ("CASEWORK_PREFETCH", ("run",)),
])
def test_a_setting_that_is_not_a_number_is_named_by_its_variable(variable: str, command: tuple[str, ...]) -> None:
    result = casework(*command, **{variable: "abc", "CASEWORK_DATABASE_URL": "memory:"})
    assert (result.exit_code, result.stderr) == (
        2, f"error: configuration: {variable}='abc': Input should be a valid integer, unable to parse string "
           "as an integer\n")


def test_checking_before_the_services_ran_creates_no_clock_or_rewards_store(elsewhere: Path) -> None:
    # Given intake's store only: the escalation and rewards services never ran.
    intake = IntakeApplication(load_policy(), "sqlite:///var/casework.sqlite3")
    receive(intake, case_ref="N")
    intake.close()
    before = sorted(path.name for path in (elsewhere / "var").iterdir())
    checked = casework("escalation", "rebuild", "--check")
    rebuilt = casework("replay", "rebuild", "--json")
    assert checked.exit_code == 1 and "1 differed from the stored ones" in checked.stdout
    assert rebuilt.exit_code == 1
    assert [result["equal"] for result in json.loads(rebuilt.stdout).values()] == [False, True]
    assert sorted(path.name for path in (elsewhere / "var").iterdir()) == before


@pytest.mark.parametrize("period", ["2026-13", "foo", "2026-W60", "2026"])
@pytest.mark.parametrize("command", ["registry", "status", "rebuild"])
def test_a_period_that_cannot_exist_is_called_invalid_not_undecided(command: str, period: str,
                                                                    elsewhere: Path) -> None:
    result = casework("rewards", command, period)
    assert (result.exit_code, result.stderr) == (
        2, f"error: {period!r} is not a valid period: expected a month (2026-11) or an ISO week (2026-W48)\n")


def test_status_reads_as_text_not_python(elsewhere: Path) -> None:
    url = "sqlite:///casework.sqlite3"
    fed(decided_world().messages(), url=url).close()
    result = casework("rewards", "status", "2026-11", CASEWORK_DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines["decision"].startswith("decided_by 钱主任, review_count 3, decided_at 2026-11-10T02:00:00+00:00")
    assert (lines["decided"], lines["settlement"], lines["settled"]) == ("yes", "none", "no")


def test_publish_refuses_a_command_intake_does_not_take_before_connecting() -> None:
    result = casework("publish", "complaint.recieve", "--json", "{}",
                      CASEWORK_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: unknown command 'complaint.recieve'; intake takes ")
    assert "complaint.receive, complaint.remediate" in result.stderr


def test_publish_says_what_password_it_uses_when_none_is_given() -> None:
    result = casework("publish", "--help")
    assert "default: the user's name" in " ".join(result.stdout.replace("│", " ").split())


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Every command under a command group, with the first paragraph of its help."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, (*path, name))
        else:
            found.append(((*path, name), (command.help or "").split("\n\n")[0]))
    return found


def test_every_command_summary_reads_as_one_line_in_its_groups_help() -> None:
    """A docstring wrapped at the source's width must not reach the help broken mid-sentence."""
    import typer.main

    from casework.cli import app

    casework("--help")  # mounts the sub-command groups
    commands = _commands(typer.main.get_command(app))
    assert len(commands) >= 20
    for path, summary in commands:
        listing = casework(*path[:-1], "--help", COLUMNS="400").stdout
        lines = [" ".join(line.replace("│", " ").split()) for line in listing.splitlines()]
        assert any(line.endswith(" ".join(summary.split())) for line in lines), (path, summary)
