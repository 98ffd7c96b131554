"""Dispute files: signed, self-contained, checkable offline; any change to them is named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from casework.audit_sign import keygen
from tests.unit.test_audit_helpers import Story, kinds, raw_store, run_audit, tell_case

KEYS = keygen()
SIGNER = {"CASEWORK_AUDIT_SIGNING_KEY": KEYS["CASEWORK_AUDIT_SIGNING_KEY"]}
NO_DATABASE = "postgresql://nobody@127.0.0.1:1/none"


@pytest.fixture
def exported(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[UUID, Path]]:
    story = Story(sqlite_url)
    case = tell_case(story)
    story.close()
    checkpoint = tmp_path / "checkpoint.json"
    assert run_audit(sqlite_url, "checkpoint", "-o", str(checkpoint), **SIGNER)[0] == 0
    dispute = tmp_path / "case.json"
    code, out = run_audit(sqlite_url, "export", str(case), "-o", str(dispute), "--checkpoint", str(checkpoint),
                          **SIGNER)
    assert code == 0, out
    yield case, dispute


def offline(dispute: Path, public_key: str = KEYS["CASEWORK_AUDIT_PUBLIC_KEY"]) -> tuple[int, Any]:
    return run_audit(NO_DATABASE, "verify", "--file", str(dispute), "--public-key", public_key, "--json")


def edit(dispute: Path, change: Any) -> None:
    document = json.loads(dispute.read_text())
    change(document)
    dispute.write_text(json.dumps(document, ensure_ascii=False))


def test_a_dispute_file_checks_out_with_the_public_key_alone(exported: tuple[UUID, Path]) -> None:
    case, dispute = exported
    code, out = offline(dispute)
    assert (code, out["intact"], out["events"]) == (0, True, 8)
    document = json.loads(dispute.read_text())
    assert document["stream_id"] == str(case)
    assert document["checkpoint"]["head"] == {"stream_id": str(case), **document["head"]}


def test_an_edited_event_in_the_file_is_named(exported: tuple[UUID, Path]) -> None:
    _, dispute = exported
    edit(dispute, lambda d: d["events"][6]["content"].update(compensation="1200.00"))
    code, out = offline(dispute)
    assert code == 1
    assert (7, "edited") in kinds(out)
    assert (None, "forged") in kinds(out)  # the export's signature no longer holds either


def test_a_removed_event_in_the_file_is_named(exported: tuple[UUID, Path]) -> None:
    _, dispute = exported
    edit(dispute, lambda d: d["events"].pop(2))
    assert (3, "removed") in kinds(offline(dispute)[1])


def test_a_file_re_hashed_and_re_signed_by_someone_else_is_refused(exported: tuple[UUID, Path]) -> None:
    _, dispute = exported
    other = keygen()
    code, out = offline(dispute, other["CASEWORK_AUDIT_PUBLIC_KEY"])
    assert code == 1
    assert {k for _, k in kinds(out)} == {"forged"}


def test_the_printable_page_shows_the_timeline_pauses_and_escalations(exported: tuple[UUID, Path]) -> None:
    _, dispute = exported
    page = dispute.with_suffix(".html").read_text()
    assert "李小姐" in page
    assert "photos of the cartons" in page and "2 h 00 min" in page  # happened 02:20 to 04:20
    assert "customer asks for a manager" in page
    assert "complaint.closed" in page
    assert json.loads(dispute.read_text())["head"]["hash"] in page


def test_the_page_escapes_what_branches_typed(sqlite_url: str, tmp_path: Path) -> None:
    story = Story(sqlite_url)
    case = tell_case(story)
    story.at(days=1).send("complaint.reopen", {"case_id": str(case), "reason": "<script>alert(1)</script>"})
    story.close()
    out = tmp_path / "x.json"
    assert run_audit(sqlite_url, "export", str(case), "-o", str(out), **SIGNER)[0] == 0
    page = out.with_suffix(".html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_tampered_stream_is_not_exported(sqlite_url: str, exported: tuple[UUID, Path], tmp_path: Path) -> None:
    case, _ = exported
    with raw_store(sqlite_url) as raw:
        raw.delete(case, 5)
    out = tmp_path / "again.json"
    code, text = run_audit(sqlite_url, "export", str(case), "-o", str(out), **SIGNER)
    assert code == 1
    assert "not intact" in text
    assert not out.exists()
