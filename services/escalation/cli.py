"""`casework escalation` sub-commands."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from casework.groups import command_group

escalation_app = command_group("SLA clocks and the escalation ladder.")


def _moment(value: str | None, zone: str, option: str) -> datetime | None:
    """A date (midnight in HQ's zone) or an ISO 8601 instant."""
    from casework.cli import fail

    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), ZoneInfo(zone))
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r}: expected YYYY-MM-DD or an ISO 8601 time")
        raise
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


@escalation_app.command("simulate")
def simulate_command(
    policy: Annotated[Path, typer.Option("--policy", help="The SLA policy to try (TOML).")],
    start: Annotated[str | None, typer.Option("--from", help="Cases received from (YYYY-MM-DD, HQ time).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to (exclusive; default now).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay recorded complaints under another policy; compare with the escalations that happened."""
    from casework.cli import console, fail, settings
    from services.escalation.clock import utc_now
    from services.escalation.history import IntakeHistory
    from services.escalation.rules import Rules
    from services.escalation.simulate import simulate
    from shared.policy import PolicyError, load_policy
    from shared.store import require_store

    try:
        what_if = load_policy(policy)
    except PolicyError as error:
        fail(str(error))
        raise
    config = settings()
    zone = what_if.organisation.hq_timezone
    begin, finish = _moment(start, zone, "--from"), _moment(end, zone, "--to") or utc_now()
    require_store(config.database_url)
    history = IntakeHistory.open(config.database_url)
    try:
        report = simulate(history.facts(), Rules(what_if), begin, finish)
    finally:
        history.close()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n")
        return
    render(report.as_dict(), console)


def render(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    window = f"{report['from'] or 'the beginning'} to {report['to']}"
    table = Table(title=f"policy {report['policy']}: {report['cases']} cases received {window}")
    for column in ("level", "department", "branch", "happened", "would happen", "change"):
        table.add_column(column, justify="right" if column in ("happened", "would happen", "change") else "left")
    for row in report["rows"]:
        delta = row["simulated"] - row["actual"]
        table.add_row(row["level"], row["department"], row["branch_id"], str(row["actual"]),
                      str(row["simulated"]), f"{delta:+d}")
    total = report["total"]
    table.add_row("all", "", "", str(total["actual"]), str(total["simulated"]),
                  f"{total['simulated'] - total['actual']:+d}", style="bold")
    console.print(table)


@escalation_app.command("rebuild")
def rebuild_command(
    check: Annotated[bool, typer.Option("--check", help="Only compare with the stored clocks.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rebuild every clock from the event history (stop the service first), or check that they agree."""
    from casework.cli import console, settings
    from services.escalation.clock import utc_now
    from services.escalation.offline import offline_application
    from shared.store import require_store

    config = settings()
    require_store(config.database_url)
    with offline_application(config, read_only=check) as (app, history):
        rebuilt = app.rebuild(history.facts(), utc_now())
        differing = app.differences(rebuilt)
        if not check:
            app.replace(rebuilt)
    result = {"clocks": len(rebuilt), "differing": differing, "written": not check}
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        verb = "rebuilt" if not check else "checked"
        console.print(f"{verb} {len(rebuilt)} clocks; {len(differing)} differed from the stored ones")
    if check and differing:
        raise typer.Exit(1)


@escalation_app.command("clock")
def clock_command(
    case_id: Annotated[str, typer.Argument(help="The case's stream id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One case's clock: stages, due times, the rung reached, and the time spent awaiting the customer."""
    from casework.cli import console, fail, settings
    from services.escalation import codec
    from services.escalation.offline import clock_store_url
    from services.escalation.store import open_store, require_clock_store

    location = clock_store_url(settings())
    require_clock_store(location)
    store = open_store(location)
    try:
        row = store.load([case_id]).get(case_id)
    finally:
        store.close()
    if row is None:
        fail(f"no clock for case {case_id}", code=1)
        raise typer.Exit(1)
    document = codec.to_document(codec.loads(row.state))
    if as_json:
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    else:
        console.print_json(data=document)
