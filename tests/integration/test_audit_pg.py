"""Audit on PostgreSQL: tampering with SQL on casework_events is named; as-of and rekey work there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.cipher import AESCipher

from casework.audit import StoreReader
from casework.audit_asof import AsOfReader
from casework.audit_rekey import rekey
from casework.audit_sign import keygen
from tests.unit.test_audit_helpers import RawStore, Story, forge, kinds, raw_store, rehash_from, run_audit, tell_case

pytestmark = pytest.mark.integration
SIGNER = {"CASEWORK_AUDIT_SIGNING_KEY": keygen()["CASEWORK_AUDIT_SIGNING_KEY"]}


@pytest.fixture
def signed(database_url: str, tmp_path: Path) -> Iterator[tuple[UUID, Path]]:
    story = Story(database_url)
    case = tell_case(story)
    tell_case(story, "C-2")
    story.close()
    checkpoint = tmp_path / "checkpoint.json"
    assert run_audit(database_url, "checkpoint", "-o", str(checkpoint), **SIGNER)[0] == 0
    yield case, checkpoint


def edit_byte(raw: RawStore, case: UUID) -> None:
    raw.set_state(case, 2, raw.state(case, 2).replace(b"crushed", b"crusted"))


def swap(raw: RawStore, case: UUID) -> None:
    rows = {v: (t, s) for v, t, s in raw.rows(case)}
    raw.set_state(case, 2, rows[5][1], rows[5][0])
    raw.set_state(case, 5, rows[2][1], rows[2][0])


def insert(raw: RawStore, case: UUID) -> None:
    reader = StoreReader(raw.url)
    prev = reader.decode(reader.recorder.select_events(case, gt=3, lte=4)[0]).hash
    topic, state, _ = forge(reader, case, 8, 5, prev, resolution="settled by phone")
    reader.close()
    raw.shift(case, 5, 1)
    raw.insert(case, 5, topic, state)


def rehash(raw: RawStore, case: UUID) -> None:
    reader = StoreReader(raw.url)
    rehash_from(reader, raw, case, 6, note="never handed over")
    reader.close()


@pytest.mark.parametrize(("tamper", "expected"), [
    (edit_byte, [(2, "edited")]),
    (lambda raw, case: raw.delete(case, 6), [(6, "removed")]),
    (swap, [(2, "reordered"), (5, "reordered")]),
    (insert, [(5, "inserted")]),
    (lambda raw, case: raw.delete(case, 8), [(8, "truncated")]),
    (rehash, [(8, "rewritten")]),
], ids=["edit-one-byte", "delete-one", "swap-two", "insert-one", "truncate-tail", "tamper-and-rehash"])
def test_each_kind_of_tampering_is_detected_and_named(
        database_url: str, signed: tuple[UUID, Path], tamper: Callable[[RawStore, UUID], None],
        expected: list[tuple[int, str]]) -> None:
    case, checkpoint = signed
    with raw_store(database_url) as raw:
        tamper(raw, case)
    code, out = run_audit(database_url, "verify", "--all", "--checkpoint", str(checkpoint), "--json", **SIGNER)
    assert (code, kinds(out)) == (1, expected)
    assert {f["stream_id"] for f in out["findings"]} == {str(case)}


def test_as_of_with_snapshots_on_postgres(database_url: str) -> None:
    story = Story(database_url)
    case = tell_case(story)
    story.close()
    reader = StoreReader(database_url)
    events = reader.stream(case)
    reader.close()
    for interval in (2, 2):  # the second pass starts from the snapshots the first one wrote
        asof = AsOfReader(database_url, interval=interval)
        for event in events:
            result = asof.at_time(case, event.timestamp)
            assert (result.version, result.aggregate.last_hash) == (event.originator_version, event.hash)
            assert asof.at_time(case, event.occurred_at).version == event.originator_version - 1
        asof.close()
    assert AsOfReader(database_url, interval=2).at_version(case, 7).from_snapshot == 6


def test_rekey_on_postgres_keeps_the_chain(database_url: str, tmp_path: Path) -> None:
    old, new = AESCipher.create_key(32), AESCipher.create_key(32)
    story = Story(database_url, cipher_key=old)
    tell_case(story)
    story.close()
    checkpoint = tmp_path / "cp.json"
    assert run_audit(database_url, "checkpoint", "-o", str(checkpoint), CASEWORK_CIPHER_KEY=old, **SIGNER)[0] == 0
    assert rekey(database_url, old, new)["casework_events"] == 16
    code, out = run_audit(database_url, "verify", "--all", "--checkpoint", str(checkpoint), "--json",
                          CASEWORK_CIPHER_KEY=new, **SIGNER)
    assert (code, out["intact"]) == (0, True)
