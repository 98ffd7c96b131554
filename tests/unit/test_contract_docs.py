"""The documents that describe the contract stay true to the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from casework import cli
from casework.asyncapi import asyncapi_document
from casework.settings import Settings
from services.escalation.settings import EscalationSettings
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


def command_line_variables(command: object) -> set[str]:
    """The environment variables the command line's options read, in every sub-command."""
    names = {param.envvar for param in getattr(command, "params", []) if isinstance(param.envvar, str)}
    for sub in getattr(command, "commands", {}).values():
        names |= command_line_variables(sub)
    return names


def test_every_setting_and_option_variable_is_in_the_configuration_table() -> None:
    text = (DOCS / "contract.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(CASEWORK_[A-Z0-9_]+)`", table))
    # The escalation row abbreviates its siblings: `CASEWORK_ESCALATION_BATCH_SIZE`, `…_PREFETCH`.
    documented |= {f"CASEWORK_ESCALATION{suffix}" for suffix in re.findall(r"`…(_[A-Z0-9_]+)`", table)}
    expected = {f"CASEWORK_{name.upper()}" for name in Settings.model_fields}
    expected |= {f"CASEWORK_ESCALATION_{name.upper()}" for name in EscalationSettings.model_fields}
    if not any(group.name == "audit" for group in cli.app.registered_groups):
        cli.mount()
    expected |= command_line_variables(typer.main.get_command(cli.app))
    assert {"CASEWORK_PASSWORD", "CASEWORK_NEW_CIPHER_KEY"} <= expected
    assert sorted(expected - documented) == []
