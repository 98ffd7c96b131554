"""Readable tables of the audit commands, for people (machines get --json)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

SKIP = ("principal", "user_id", "command_id")
CLIP = 80


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _clipped(value: Any) -> str:
    """A value cut to a table cell's share: a 4,000-character description must not hide what follows it."""
    text = _short(value)
    return text if len(text) <= CLIP else text[:CLIP] + "…"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "ongoing"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m"


def render_timeline(console: Console, story: dict[str, Any]) -> None:
    table = Table(title=f"{story['stream']} {story['stream_id']}")
    for column in ("v", "event", "happened", "recorded", "by", "what changed", "chain"):
        table.add_column(column, overflow="fold")
    for row in story["events"]:
        changed = ", ".join(f"{k}: {_clipped(a)} → {_clipped(b)}" for k, (a, b) in row["changes"].items()
                            if k not in SKIP)
        if row["event"] == "complaint.escalated":
            changed += f" (reason: {_clipped(row['fields'].get('reason'))})"
        table.add_row(str(row["version"]), row["event"], row["occurred_at"][:19].replace("T", " "),
                      row["recorded_at"][:19].replace("T", " "),
                      f"{row['principal']}\n({row['user_id']})", changed,
                      "ok" if row["chain_ok"] else "[red]BROKEN[/red]")
    console.print(table)
    for pause in story["pauses"]:
        console.print(f"waited on the customer v{pause['from_version']}–v{pause['to_version'] or '…'}: "
                      f"{_duration(pause['seconds'])} ({pause['reason']})")
    for step in story["escalations"]:
        console.print(f"escalated v{step['version']} to {step['level']} ({step['department']}) "
                      f"by {step['by']}: {_short(step['reason'])}")


def render_state(console: Console, state: dict[str, Any]) -> None:
    when = f"at {state['as_of']}" if state["as_of"] else f"at version {state['version']}"
    table = Table(title=f"{state['type']} {state['stream_id']} as known {when}")
    table.add_column("attribute")
    table.add_column("value", overflow="fold")
    table.add_row("version", str(state["version"]))
    table.add_row("known since", str(state["known_since"]))
    for key, value in (state["state"] or {}).items():
        table.add_row(key, _short(value))
    table.add_row("last hash", str(state["last_hash"]))
    console.print(table)


def render_verification(console: Console, result: dict[str, Any]) -> None:
    checkpoint = result.get("checkpoint")
    against = f" against the checkpoint of {checkpoint['created_at']}" if checkpoint else ""
    if result["intact"]:
        console.print(f"[green]intact[/green]: {result['streams']} streams, {result['events']} "
                      f"events{against}")
        return
    table = Table(title=f"[red]NOT intact[/red]{against}")
    for column in ("stream", "version", "kind", "detail"):
        table.add_column(column, overflow="fold")
    for finding in result["findings"]:
        table.add_row(finding["stream_id"], str(finding["version"] or ""), finding["kind"],
                      finding["detail"])
    console.print(table)
