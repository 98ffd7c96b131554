"""The hash chain's fast canonical encoding writes exactly the bytes of its reference definition."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.domain import CommandRecord, Complaint, Period, SurplusReport
from services.rewards.domain import Book, Claim, Ledger
from shared.chain import canonical, canonical_reference

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | texts
           | st.uuids() | st.decimals(allow_nan=False, allow_infinity=False, places=2)
           | st.dates() | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
                      max_leaves=20)


@settings(max_examples=500)
@given(fields=st.dictionaries(texts, values, max_size=8), stream=st.uuids(), version=st.integers(1, 10**6),
       event_type=texts, prev=texts, occurred=st.datetimes(timezones=st.just(UTC)))
def test_fast_and_reference_encodings_agree(fields: dict[str, Any], stream: UUID, version: int, event_type: str,
                                            prev: str, occurred: datetime) -> None:
    fast = canonical(stream, version, event_type, fields, occurred, occurred, prev)
    document = {"stream_id": str(stream), "version": version, "type": event_type,
                "fields": {k: v for k, v in fields.items() if v is not None},
                "occurred_at": occurred.isoformat(), "recorded_at": occurred.isoformat(), "prev_hash": prev}
    assert fast == canonical_reference(document)


def test_reference_encoding_of_known_values() -> None:
    """A fixed document, so the reference itself cannot drift unnoticed."""
    document = {"b": [1, True, None], "a": {"y": "值", "x": date(2026, 11, 27)},
                "c": Decimal("1.50"), "d": UUID(int=1), "e": datetime(2026, 11, 27, 8, tzinfo=UTC)}
    expected = ('{"a":{"x":"2026-11-27","y":"值"},"b":[1,true,null],"c":"1.50",'
                '"d":"00000000-0000-0000-0000-000000000001","e":"2026-11-27T08:00:00+00:00"}')
    assert canonical_reference(document) == expected.encode()


def test_no_event_declares_a_float() -> None:
    """Floats are where the two encodings part (1e16 against 1e+16): events carry none."""
    aggregates = (Complaint, SurplusReport, Period, CommandRecord, Ledger, Claim, Book)
    checked = 0
    for aggregate in aggregates:
        for name in dir(aggregate):
            event = getattr(aggregate, name)
            if isinstance(event, type) and dataclasses.is_dataclass(event):
                for hint in typing.get_type_hints(event).values():
                    assert "float" not in repr(hint), (event, hint)
                    checked += 1
    assert checked > 50
