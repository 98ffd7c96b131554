"""Customer data at rest: stored encrypted, audited the same, and the chain survives a new key."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.cipher import AESCipher

from casework.audit import CipherKeyError, StoreReader, cipher_env, timeline
from casework.audit_asof import AsOfReader
from casework.audit_rekey import rekey
from casework.audit_sign import keygen
from casework.audit_verify import verify
from tests.unit.test_audit_helpers import Story, kinds, raw_store, run_audit, tell_case

OLD, NEW = AESCipher.create_key(32), AESCipher.create_key(16)
SIGNER = {"CASEWORK_AUDIT_SIGNING_KEY": keygen()["CASEWORK_AUDIT_SIGNING_KEY"]}


def test_customer_data_is_stored_encrypted(sqlite_url: str) -> None:
    story = Story(sqlite_url, cipher_key=OLD)
    case = tell_case(story)
    story.close()
    with raw_store(sqlite_url) as raw:
        stored = b"".join(state for _, _, state in raw.rows(case))
    assert "李小姐".encode() not in stored and b"13800000000" not in stored
    assert timeline(sqlite_url, case, OLD)["events"][0]["fields"]["customer"]["name"] == "李小姐"
    assert verify(sqlite_url, cipher_key=OLD).intact


def test_without_the_key_nothing_decodes(sqlite_url: str) -> None:
    story = Story(sqlite_url, cipher_key=OLD)
    case = tell_case(story)
    story.close()
    result = verify(sqlite_url, case)
    assert [(f.version, f.kind) for f in result.findings] == [(v, "edited") for v in range(1, 9)]


def test_one_byte_changed_in_ciphertext_is_an_edit(sqlite_url: str) -> None:
    story = Story(sqlite_url, cipher_key=OLD)
    case = tell_case(story)
    story.close()
    with raw_store(sqlite_url) as raw:
        state = bytearray(raw.state(case, 6))
        state[40] ^= 0x01
        raw.set_state(case, 6, bytes(state))
    assert [(f.version, f.kind) for f in verify(sqlite_url, case, cipher_key=OLD).findings] == [(6, "edited")]


def test_after_key_rotation_the_chain_and_checkpoint_still_hold(sqlite_url: str, tmp_path: Path) -> None:
    story = Story(sqlite_url, cipher_key=OLD)
    case = tell_case(story)
    story.close()
    AsOfReader(sqlite_url, OLD, interval=3).at_version(case, 8)  # snapshots under the old key
    checkpoint = tmp_path / "before.json"
    assert run_audit(sqlite_url, "checkpoint", "-o", str(checkpoint), CASEWORK_CIPHER_KEY=OLD, **SIGNER)[0] == 0

    counts = rekey(sqlite_url, OLD, NEW)

    assert counts == {"stored_events": 16, "snapshots": 2}
    code, out = run_audit(sqlite_url, "verify", "--all", "--checkpoint", str(checkpoint), "--json",
                          CASEWORK_CIPHER_KEY=NEW, **SIGNER)
    assert (code, out["intact"]) == (0, True)
    assert verify(sqlite_url, case, cipher_key=OLD).findings  # the old key opens nothing now
    warm = AsOfReader(sqlite_url, NEW, interval=3).at_version(case, 8)
    assert warm.from_snapshot == 6


def test_an_explicit_key_beats_the_process_environment(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    story = Story(sqlite_url, cipher_key=NEW)
    case = tell_case(story)
    story.close()
    # eventsourcing would read CASEWORK_CIPHER_KEY by itself for the application "casework".
    monkeypatch.setenv("CASEWORK_CIPHER_KEY", OLD)
    reader = StoreReader(sqlite_url, NEW)
    assert len(reader.stream(case)) == 8
    reader.close()


def test_a_malformed_key_is_refused_clearly(sqlite_url: str) -> None:
    with pytest.raises(CipherKeyError, match="16, 24 or 32"):
        cipher_env("c2hvcnQ=")
    code, out = run_audit(sqlite_url, "verify", "--all", CASEWORK_CIPHER_KEY="not base64!")
    assert code == 2
    assert "not base64" in out


def test_rotation_to_plaintext_and_back(sqlite_url: str) -> None:
    story = Story(sqlite_url, cipher_key=OLD)
    case = tell_case(story)
    story.close()
    rekey(sqlite_url, OLD, None)
    assert verify(sqlite_url, case).intact
    rekey(sqlite_url, None, NEW)
    assert kinds(verify(sqlite_url, case, cipher_key=NEW).as_json()) == []
