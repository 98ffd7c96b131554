"""The hash chain: recomputable, linked, and sensitive to every field."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta

import pytest

from services.intake.application import IntakeApplication
from services.intake.translate import event_type
from shared.chain import GENESIS, event_hash, own_fields
from shared.policy import load_policy
from tests.unit.commands import act, receive


@pytest.fixture
def events() -> list[object]:
    app = IntakeApplication(load_policy(), "memory:")
    case_id = receive(app).stream_id
    act(app, "verify", case_id)
    act(app, "escalate", case_id, level="regional")
    return list(app.events.get(case_id))


def test_chain_starts_at_genesis_and_links(events: list) -> None:
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash


def test_hash_is_recomputable(events: list) -> None:
    for event in events:
        assert event_hash(event, event_type(event)) == event.hash


def mutate(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, dict):
        return {**value, "x": 1}
    if value is None:
        return "x"
    raise TypeError(type(value))


def test_any_field_change_changes_the_hash(events: list) -> None:
    checked = 0
    for event in events:
        for name in own_fields(event):
            changed = dataclasses.replace(event, **{name: mutate(getattr(event, name))})
            assert event_hash(changed, event_type(event)) != event.hash, name
            checked += 1
        for name, value in (("occurred_at", event.occurred_at + timedelta(microseconds=1)),
                            ("timestamp", event.timestamp + timedelta(microseconds=1)),
                            ("originator_version", event.originator_version + 1),
                            ("prev_hash", "f" * 64)):
            changed = dataclasses.replace(event, **{name: value})
            assert event_hash(changed, event_type(event)) != event.hash, name
    assert checked > 20
