"""The documents that describe the contract stay true to the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from casework.asyncapi import asyncapi_document
from shared.events import COMMANDS, ErrorCode
from shared.topology import BINDINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_asyncapi_document_is_current() -> None:
    stored = json.loads((DOCS / "asyncapi.json").read_text())
    assert stored == json.loads(json.dumps(asyncapi_document())), "run: casework contract -o docs/asyncapi.json"


def test_every_command_and_error_code_is_in_contract_md() -> None:
    text = (DOCS / "contract.md").read_text()
    missing = [key for key in COMMANDS if f"`{key}`" not in text]
    missing += [code.value for code in ErrorCode if f"`{code.value}`" not in text]
    assert missing == []


def test_every_queue_is_in_contract_md() -> None:
    text = (DOCS / "contract.md").read_text()
    queues = {queue.name for bindings in BINDINGS.values() for queue, _, _ in bindings}
    assert [q for q in sorted(queues) if not re.search(rf"`{re.escape(q)}`", text)] == []
