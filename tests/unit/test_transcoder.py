"""Intake's orjson transcoder writes what the library's JSON transcoder writes, or leaves it to it."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.application import IntakeApplication
from shared.policy import load_policy
from shared.transcoder import OrjsonTranscoder
from tests.unit.test_relay_pages import every_kind_of_event


def registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    return transcoder


LIBRARY, FAST = registered(JSONTranscoder()), registered(OrjsonTranscoder())


def test_every_kind_of_event_intake_records_is_stored_byte_for_byte_as_the_library_writes_it(tmp_path: Path) -> None:
    app = IntakeApplication(load_policy(), f"sqlite:///{tmp_path}/casework.sqlite3")
    assert isinstance(app.mapper.transcoder, OrjsonTranscoder)
    every_kind_of_event(app)
    stored = list(app.recorder.select_notifications(1, 1000))
    assert len({n.topic for n in stored}) >= 9, "complaints through their life, surplus, command records"
    for notification in stored:
        state = LIBRARY.decode(notification.state)
        assert FAST.encode(state) == LIBRARY.encode(state) == notification.state, notification.topic


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.text(),
    st.floats(allow_nan=True, allow_infinity=True), st.uuids(), st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.just(UTC)),
)
states = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


def same(a: Any, b: Any) -> bool:
    """Equality that counts NaN as equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), states, max_size=8))
def test_any_state_decodes_to_what_the_library_encoding_decodes_to(state: dict[str, Any]) -> None:
    assert same(LIBRARY.decode(FAST.encode(state)), LIBRARY.decode(LIBRARY.encode(state)))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(),
              st.datetimes(timezones=st.just(UTC)), st.decimals(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20), max_size=8))
def test_states_of_strings_numbers_and_times_are_the_same_bytes(state: dict[str, Any]) -> None:
    assert FAST.encode(state) == LIBRARY.encode(state)


def test_what_orjson_would_write_differently_is_left_to_the_library() -> None:
    for state in ({"id": UUID(int=7)}, {"nested": [{"id": UUID(int=7)}]}, {"x": math.nan}, {"x": -math.inf},
                  {"big": 2**80}, {"when": datetime(2026, 11, 27, 8, 30, tzinfo=UTC)},
                  {"amount": Decimal("12.50")}):
        assert FAST.encode(state) == LIBRARY.encode(state), state
    for transcoder in (FAST, LIBRARY):  # a type with no transcoding is refused alike
        with pytest.raises(TranscodingNotRegisteredError):
            transcoder.encode({"day": date(2026, 11, 27)})
