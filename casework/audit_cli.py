"""`casework audit`: a case's history for auditors, and proof that nothing was altered."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Annotated, Any

import typer

from casework.cli import console, fail, settings

audit_app = typer.Typer(no_args_is_help=True, help="Replay a case's history; prove nothing was altered.")


@audit_app.command("timeline")
def audit_timeline(
    case_id: Annotated[str, typer.Argument(help="The case's stream id (a UUID).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every event of a stream, in order: when, who, what changed."""
    from casework.audit import timeline

    try:
        stream = uuid.UUID(case_id)
    except ValueError:
        fail(f"{case_id!r} is not a case id (a UUID)")
    config = settings()
    rows = timeline(config.database_url, stream)
    if not rows:
        fail(f"no stream {case_id}", code=1)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    render_timeline(rows)


def render_timeline(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"stream {rows[0]['stream_id']}")
    for column in ("v", "event", "occurred", "recorded", "by", "details"):
        table.add_column(column)
    for row in rows:
        details = ", ".join(f"{k}={v}" for k, v in row["fields"].items() if v not in (None, "", [], {}))
        table.add_row(str(row["version"]), row["event"], row["occurred_at"][:19], row["recorded_at"][:19],
                      f"{row['principal']} ({row['user_id']})", details[:120])
    console.print(table)


