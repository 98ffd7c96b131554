"""Guarantee 1 on existing cases: intake dies after its commit and before its ack, and nothing is doubled.

A command on an existing case appends to a stream that is already there, so no unique key
of the database stops a second append: only the idempotency record (CommandRecord) does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.domain import command_record_id, complaint_id
from tests.support.live import APPENDS, Client, case_command, complaint_body, until
from tests.support.processes import ServiceProcess
from tests.support.store import stream_event_counts

pytestmark = pytest.mark.integration

# The command the crashing intake gets for case i is KINDS[i % 3]. A hand-over comes first, so
# the batch that commits before the crash always holds a command that could be appended twice.
KINDS = ("hand_over", "remediate", "verify")
# What each case's stream holds in the end (remediated cases were verified beforehand).
RECORDED = {
    "hand_over": ("Complaint.Received", "Complaint.HandedOver"),
    "remediate": ("Complaint.Received", "Complaint.Verified", "Complaint.Remediated"),
    "verify": ("Complaint.Received", "Complaint.Verified"),
}


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store intake can run on: a throwaway PostgreSQL database, or a SQLite file."""
    return str(request.getfixturevalue("database_url" if request.param == "postgresql" else "sqlite_url"))


@pytest.mark.slow
async def test_intake_killed_between_commit_and_ack_records_each_command_on_a_case_once(
    store_url: str, amqp_url: str, tmp_path: Path
) -> None:
    refs = [f"X{i:03d}" for i in range(30)]
    cases = {ref: complaint_id("GZ01", ref) for ref in refs}
    kinds = {ref: KINDS[i % 3] for i, ref in enumerate(refs)}
    env = {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": store_url}
    log = tmp_path / "intake.log"
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")

        # Given cases recorded by a normal run, those to be remediated already verified
        with ServiceProcess("intake", env, log).start() as normal:
            setup = [await client.publish("complaint.receive", complaint_body(case_ref=ref)) for ref in refs]
            setup += [await client.publish(*case_command("verify", cases[ref])) for ref in refs
                      if kinds[ref] == "remediate"]
            for mid in setup:
                assert (await outcomes.outcome_for(mid, timeout=60))["status"] == "accepted", normal.log()[-2000:]
            assert normal.stop() == 0, normal.log()[-2000:]

        # When intake dies after committing its first batch of commands on them, before acking it
        commands = {await client.publish(*case_command(kinds[ref], cases[ref])): ref for ref in refs}
        with ServiceProcess("intake", env, log).start(
                CASEWORK_FAULT="intake_before_ack", CASEWORK_INTAKE_BATCH_SIZE="8") as crashing:
            await until(lambda: crashing.exited() is not None, timeout=60, what="the injected crash")
            assert crashing.stop() == 137, crashing.log()[-2000:]
        at_crash = stream_event_counts(store_url)
        committed = {mid for mid, ref in commands.items() if at_crash[(cases[ref], APPENDS[kinds[ref]])]}
        assert 0 < len(committed) < len(commands), "the crash came after some commands were recorded, not all"

        # Then intake, started again, takes the redelivered batch and the rest
        with ServiceProcess("intake", env, log).start() as restarted:
            await outcomes.answered(accepted=commands, repeated=committed)
            await outcomes.settle(quiet=1.0)
            assert restarted.stop() == 0, restarted.log()[-2000:]

    counts = stream_event_counts(store_url)
    recorded = {key: n for key, n in counts.items() if key[0] in cases.values()}
    assert recorded == {(cases[ref], kind): 1 for ref in refs for kind in RECORDED[kinds[ref]]}
    assert {mid: counts[(command_record_id(client.user, mid), "CommandRecord.Processed")]
            for mid in commands} == dict.fromkeys(commands, 1)
    seen = outcomes.by_command()
    statuses = {mid: sorted({body["status"] for _, body in seen[mid]}) for mid in commands}
    assert statuses == {mid: ["accepted", "duplicate"] if mid in committed else ["accepted"] for mid in commands}
    for mid, ref in commands.items():
        [original] = {(body["stream_id"], body["version"]) for _, body in seen[mid] if body["status"] == "accepted"}
        assert original[0] == str(cases[ref])
        for _, body in seen[mid]:
            if body["status"] == "duplicate":
                assert (body["stream_id"], body["version"], body["original_status"]) == (*original, "accepted")
