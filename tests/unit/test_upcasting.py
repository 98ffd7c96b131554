"""Events written under an older schema are read through upcasters, and their hashes still hold."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from services.intake.application import IntakeApplication
from services.intake.translate import escalation_notice, event_type
from shared.chain import event_hash
from shared.policy import load_policy
from tests.unit.commands import act, receive


def as_written_before(store: Path, case_id: UUID, version: int, rewrite: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the stored state of the case's event `version` as an older release wrote it."""
    with sqlite3.connect(store) as db:
        state, = db.execute("SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                            (case_id.hex, version)).fetchone()
        document = json.loads(state)
        rewrite(document)
        db.execute("UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
                   (json.dumps(document).encode(), case_id.hex, version))


@pytest.mark.parametrize(("version", "absent"), [(1, ("channel", "claimed_amount", "received_by")),
                                                  (2, ("received_by",))])
def test_an_older_received_event_is_upcast_and_its_hash_holds(tmp_path: Path, version: int,
                                                              absent: tuple[str, ...]) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    app = IntakeApplication(load_policy(), url)
    case_id = receive(app, "OLD").stream_id
    app.close()

    def older(document: dict[str, Any]) -> None:
        assert document.pop("class_version") == 3
        for name in absent:
            assert document.pop(name) is None
        if version > 1:
            document["class_version"] = version

    as_written_before(tmp_path / "store.sqlite3", case_id, 1, older)
    reopened = IntakeApplication(load_policy(), url)
    [event] = list(reopened.events.get(case_id))
    assert all(getattr(event, name) is None for name in absent)
    assert event_hash(event, event_type(event)) == event.hash
    case = reopened.repository.get(case_id)
    assert (case.case_ref, case.owner, case.owner_branch) == ("OLD", None, "GZ01")


def test_a_v1_escalated_event_is_upcast_with_no_holder(tmp_path: Path) -> None:
    """Its notice, replayed, says the holder is unknown rather than failing to parse. (That a
    field upcast as null hashes as the absent field did is the v1 received event's test.)"""
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    app = IntakeApplication(load_policy(), url)
    case_id = receive(app, "OLD").stream_id
    assert act(app, "escalate", case_id).status == "accepted"
    app.close()

    def v1(document: dict[str, Any]) -> None:
        assert document.pop("class_version") == 2
        assert (document.pop("owner"), document.pop("owner_branch")) == (None, "GZ01")

    as_written_before(tmp_path / "store.sqlite3", case_id, 2, v1)
    reopened = IntakeApplication(load_policy(), url)
    *_, event = reopened.events.get(case_id)
    assert (event.owner, event.owner_branch) == (None, None)
    notice = json.loads(escalation_notice(event, "m", {}).body)
    assert (notice["owner"], notice["owner_branch"], notice["case_ref"]) == (None, None, "OLD")
