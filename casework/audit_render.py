"""Readable tables of the audit commands, for people (machines get --json)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

SKIP = ("principal", "user_id", "command_id")
CLIP = 80


def _short(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _clipped(value: Any) -> str:
    """A value cut to a table cell's share: a 4,000-character description must not hide what follows it."""
    text = _short(value)
    return text if len(text) <= CLIP else text[:CLIP] + "…"


def hours_minutes(seconds: float) -> str:
    """A span as `2h05m`, for people; minutes rounded down."""
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


def _duration(seconds: int | None) -> str:
    return "ongoing" if seconds is None else hours_minutes(seconds)


def _when(row: dict[str, Any]) -> str:
    """When it happened, and when it was recorded where that was a second or more later."""
    happened, recorded = (str(row[k])[:19].replace("T", " ") for k in ("occurred_at", "recorded_at"))
    if recorded == happened:
        return happened
    return f"{happened}, recorded {recorded[11:] if recorded[:10] == happened[:10] else recorded}"


def _change(before: Any, after: Any) -> str:
    """What one attribute became: its value where it had none before, `before → after` otherwise."""
    return _clipped(after) if before is None else f"{_clipped(before)} → {_clipped(after)}"


def render_timeline(console: Console, story: dict[str, Any]) -> None:
    """Each event as a heading (version, event, when, who) over the attributes it set or changed.

    One event a block, like a version-control log, rather than a table: a case's attributes and
    a customer's description need the terminal's width, and a seven-column table in 80
    columns leaves them a word a line.
    """
    rows = story["events"]
    intact = "chain ok" if story["chain_ok"] else "[red]chain BROKEN[/red]"
    console.print(f"[bold]{story['stream']} {story['stream_id']}[/bold]: "
                  f"{len(rows)} event{'s' if len(rows) != 1 else ''}, {intact}")
    for row in rows:
        broken = "" if row["chain_ok"] else " · [red]chain BROKEN here[/red]"
        console.print(f"\n[bold]v{row['version']} {escape(row['event'])}[/bold] · {_when(row)}{broken}")
        console.print(f"   [dim]by {escape(str(row['principal']))} ({escape(str(row['user_id']))})[/dim]")
        lines = [(k, _change(a, b)) for k, (a, b) in row["changes"].items() if k not in SKIP]
        if row["event"] == "complaint.escalated":
            lines.append(("reason", _clipped(row["fields"].get("reason"))))
        grid = Table.grid(padding=(0, 2))
        grid.add_column()
        grid.add_column(overflow="fold")
        for key, text in lines:
            grid.add_row(key, Text(text))  # a long value wraps in its own column
        console.print(Padding(grid, (0, 0, 0, 3), expand=False))
    if story["pauses"] or story["escalations"]:
        console.print()
    for pause in story["pauses"]:
        console.print(f"waited on the customer v{pause['from_version']}–v{pause['to_version'] or '…'}: "
                      f"{_duration(pause['seconds'])} ({escape(str(pause['reason']))})")
    for step in story["escalations"]:
        console.print(f"escalated v{step['version']} to {step['level']} ({step['department']}) "
                      f"by {step['by']}: {escape(_short(step['reason']))}")


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
