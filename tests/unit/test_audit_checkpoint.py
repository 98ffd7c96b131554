"""Signed checkpoints: truncation and re-hashed chains are caught; forged checkpoints are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from casework.audit import StoreReader
from casework.audit_sign import canonical_json, header_of, keygen, leaf, merkle_levels
from tests.unit.test_audit_helpers import Story, kinds, raw_store, rehash_from, run_audit, tell_case

KEYS = keygen()
SIGNER = {"CASEWORK_AUDIT_SIGNING_KEY": KEYS["CASEWORK_AUDIT_SIGNING_KEY"]}
# An outside party holds only the public key.
PUBLIC = {"CASEWORK_AUDIT_PUBLIC_KEY": KEYS["CASEWORK_AUDIT_PUBLIC_KEY"]}


@pytest.fixture
def signed(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[UUID, Path]]:
    story = Story(sqlite_url)
    case = tell_case(story)
    tell_case(story, "C-2")
    story.close()
    checkpoint = tmp_path / "checkpoint.json"
    code, out = run_audit(sqlite_url, "checkpoint", "-o", str(checkpoint), "--json", **SIGNER)
    assert code == 0, out
    assert out["streams"] == 18
    yield case, checkpoint


def check(url: str, checkpoint: Path, **env: str) -> tuple[int, dict[str, object]]:
    code, out = run_audit(url, "verify", "--all", "--checkpoint", str(checkpoint), "--json", **(env or PUBLIC))
    assert isinstance(out, dict), out
    return code, out


def test_an_untouched_store_holds_to_its_checkpoint(sqlite_url: str, signed: tuple[UUID, Path]) -> None:
    case, checkpoint = signed
    assert check(sqlite_url, checkpoint)[0] == 0
    code, out = run_audit(sqlite_url, "verify", str(case), "--checkpoint", str(checkpoint), "--json", **PUBLIC)
    assert (code, out["intact"]) == (0, True)


def test_streams_that_grew_since_the_checkpoint_still_hold(sqlite_url: str, signed: tuple[UUID, Path]) -> None:
    case, checkpoint = signed
    story = Story(sqlite_url)
    story.at(days=2).send("complaint.reopen", {"case_id": str(case), "reason": "still broken"})
    story.close()
    assert check(sqlite_url, checkpoint)[0] == 0


def test_a_tail_cut_after_the_checkpoint_is_named_truncated(sqlite_url: str, signed: tuple[UUID, Path]) -> None:
    case, checkpoint = signed
    with raw_store(sqlite_url) as raw:
        raw.delete(case, 8, 7)
    assert run_audit(sqlite_url, "verify", "--all", "--json")[0] == 0  # the chain alone cannot tell
    code, out = check(sqlite_url, checkpoint)
    assert (code, kinds(out)) == (1, [(8, "truncated")])
    assert out["findings"][0]["stream_id"] == str(case)
    assert "ends at version 6" in out["findings"][0]["detail"]


def test_a_stream_deleted_whole_is_named_truncated(sqlite_url: str, signed: tuple[UUID, Path]) -> None:
    case, checkpoint = signed
    with raw_store(sqlite_url) as raw:
        raw.delete(case, *range(1, 9))
    code, out = check(sqlite_url, checkpoint)
    assert (code, kinds(out)) == (1, [(8, "truncated")])
    assert "is gone" in out["findings"][0]["detail"]


def test_a_tampered_and_re_hashed_chain_is_caught_only_by_the_checkpoint(
        sqlite_url: str, signed: tuple[UUID, Path]) -> None:
    case, checkpoint = signed
    reader = StoreReader(sqlite_url)
    with raw_store(sqlite_url) as raw:
        rehash_from(reader, raw, case, 3, reason="customer never answered")
    reader.close()
    assert run_audit(sqlite_url, "verify", str(case), "--json")[0] == 0  # consistent in itself
    code, out = check(sqlite_url, checkpoint)
    assert (code, kinds(out)) == (1, [(8, "rewritten")])


def test_checkpoint_refuses_to_sign_a_tampered_store(sqlite_url: str, signed: tuple[UUID, Path],
                                                     tmp_path: Path) -> None:
    case, _ = signed
    with raw_store(sqlite_url) as raw:
        raw.delete(case, 4)
    later = tmp_path / "later.json"
    code, out = run_audit(sqlite_url, "checkpoint", "-o", str(later), **SIGNER)
    assert code == 1
    assert "no checkpoint signed" in out
    assert not later.exists()


def forge_file(checkpoint: Path, change: str) -> None:
    document = json.loads(checkpoint.read_text())
    head = document["heads"][0]
    head["hash"] = "0" * 64
    if change in ("redigest", "resign"):
        rows = document["heads"]
        document["digest"] = merkle_levels([leaf(r["stream_id"], r["version"], r["hash"]) for r in rows])[-1][0].hex()
    if change == "resign":
        from casework.audit_sign import Signer, load_private

        other = Signer("ed25519", load_private(keygen()["CASEWORK_AUDIT_SIGNING_KEY"]))
        document["signature"] = other.sign(canonical_json(header_of(document)))
    if change == "unsigned":
        document = {k: v for k, v in json.loads(checkpoint.read_text()).items() if k != "signature"}
    checkpoint.write_text(json.dumps(document))


@pytest.mark.parametrize(("change", "reason"), [
    ("heads", "do not give the signed digest"),
    ("redigest", "not made by a trusted key"),
    ("resign", "not made by a trusted key"),
    ("unsigned", "malformed"),
])
def test_a_forged_checkpoint_is_rejected(sqlite_url: str, signed: tuple[UUID, Path], change: str,
                                         reason: str) -> None:
    _, checkpoint = signed
    forge_file(checkpoint, change)
    code, out = check(sqlite_url, checkpoint)
    assert (code, kinds(out)) == (1, [(None, "forged")])
    assert reason in out["findings"][0]["detail"]


def test_a_checkpoint_is_not_trusted_without_a_trusted_key(sqlite_url: str, signed: tuple[UUID, Path]) -> None:
    _, checkpoint = signed
    code, out = check(sqlite_url, checkpoint, CASEWORK_AUDIT_HMAC_KEY="not the key")
    assert (code, kinds(out)) == (1, [(None, "forged")])
    assert "no trusted Ed25519 public key" in out["findings"][0]["detail"]


def test_hmac_checkpoints_need_the_same_key(sqlite_url: str, tmp_path: Path) -> None:
    story = Story(sqlite_url)
    tell_case(story)
    story.close()
    checkpoint = tmp_path / "hmac.json"
    assert run_audit(sqlite_url, "checkpoint", "-o", str(checkpoint), CASEWORK_AUDIT_HMAC_KEY="s3cret")[0] == 0
    assert check(sqlite_url, checkpoint, CASEWORK_AUDIT_HMAC_KEY="s3cret")[0] == 0
    code, out = check(sqlite_url, checkpoint, CASEWORK_AUDIT_HMAC_KEY="guess")
    assert (code, kinds(out)) == (1, [(None, "forged")])


def test_checkpoint_without_a_key_is_a_usage_error(sqlite_url: str, tmp_path: Path) -> None:
    code, out = run_audit(sqlite_url, "checkpoint", "-o", str(tmp_path / "x.json"))
    assert code == 2
    assert "CASEWORK_AUDIT_SIGNING_KEY" in out
