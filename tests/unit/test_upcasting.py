"""Events written under an older schema are read through upcasters, and their hashes still hold."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from services.intake.application import IntakeApplication
from services.intake.translate import event_type
from shared.chain import event_hash
from shared.policy import load_policy
from tests.unit.commands import receive


def test_v1_received_event_is_upcast_and_its_hash_holds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    app = IntakeApplication(load_policy(), url)
    case_id = receive(app, "OLD").stream_id
    app.close()
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        state, = db.execute("SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = 1",
                            (case_id.hex,)).fetchone()
        document = json.loads(state)
        assert document.pop("class_version") == 2
        document.pop("channel")
        document.pop("claimed_amount")
        db.execute("UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 1",
                   (json.dumps(document).encode(), case_id.hex))
    reopened = IntakeApplication(load_policy(), url)
    [event] = list(reopened.events.get(case_id))
    assert (event.channel, event.claimed_amount) == (None, None)
    assert event_hash(event, event_type(event)) == event.hash
    assert reopened.repository.get(case_id).case_ref == "OLD"
