"""`casework escalation` sub-commands."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from casework.groups import command_group

if TYPE_CHECKING:
    from services.escalation.domain import CaseClock, Timer

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

    def moment(value: str) -> str:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M %Z")

    since = f"from {moment(report['from'])} " if report["from"] else ""
    cases = f"{report['cases']} case{'s' if report['cases'] != 1 else ''}"
    table = Table(title=f"policy {report['policy']}: {cases} received {since}until {moment(report['to'])}")
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
    clock = codec.loads(row.state)
    if as_json:
        sys.stdout.write(json.dumps(codec.to_document(clock), ensure_ascii=False, indent=2) + "\n")
    else:
        render_clock(console, clock, _branch_zone(settings(), clock.branch_id))


def _branch_zone(config: Any, branch_id: str) -> ZoneInfo:
    """The zone of the calendar the branch works by; UTC where the policy no longer names the branch."""
    try:
        return ZoneInfo(config.load_policy().calendar_for_branch(branch_id).timezone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _at(moment: datetime | None, zone: ZoneInfo) -> str:
    return "" if moment is None else moment.astimezone(zone).strftime("%a %d %b %H:%M")


def _span(span: timedelta) -> str:
    from casework.audit_render import hours_minutes

    return hours_minutes(span.total_seconds())


def _timer(timer: Timer | None, zone: ZoneInfo) -> str:
    """An instant while the case runs; the working time left while it waits on the customer."""
    if timer is None:
        return ""
    return _at(timer.at, zone) if timer.at is not None else f"{_span(timer.left or timedelta(0))} left"


def render_clock(console: Any, clock: CaseClock, zone: ZoneInfo) -> None:
    """One case's clock for people: the rung reached, the waits, and each stage's deadlines."""
    from rich.markup import escape
    from rich.table import Table

    from services.escalation.domain import LEVELS, NO_RUNG, STAGES

    console.print(f"[bold]clock of {escape(clock.branch_id)}'s {escape(clock.category)} case "
                  f"{escape(clock.case_ref)}[/bold], at version {clock.version}{', closed' if clock.closed else ''}")
    if clock.rung == NO_RUNG:
        climbed = "not escalated"
    else:
        climbed = f"escalated to {LEVELS[clock.rung]}"
        if clock.last_escalation is not None:
            climbed += f" on {_at(clock.last_escalation, zone)}"
        if clock.sent > clock.reached:
            climbed += " (sent, not yet recorded)"
    console.print(climbed)
    if clock.rung != NO_RUNG and clock.climb is not None and clock.climb.at is not None:
        console.print(f"next rung due {_at(clock.climb.at, zone)}, unless the case moves")
    elif clock.rung != NO_RUNG and clock.climb is not None and clock.climb.left is not None:
        console.print(f"next rung due after {_span(clock.climb.left)} more working time")
    waiting = (f"waiting on the customer since {_at(clock.paused_since, zone)}" if clock.paused_since
               else "not waiting on the customer")
    console.print(f"{waiting}; {clock.pauses} wait(s) so far, {_span(clock.paused_total)} in all")
    table = Table(box=None, pad_edge=False, caption=f"times in {zone.key}, the branch's calendar",
                  caption_justify="left")
    for column in ("stage", "cycle", "state", "started", "warns", "due"):
        table.add_column(column)
    for name in sorted(clock.stages, key=lambda n: STAGES.index(n) if n in STAGES else len(STAGES)):
        stage = clock.stages[name]
        # A lapsed stage's due column is when it lapsed; a running one that warned says so.
        lapsed = stage.phase == "lapsed"
        warned = stage.warned and stage.phase == "running"
        state = "[red]lapsed[/red]" if lapsed else "warned" if warned else stage.phase
        due = _at(stage.lapsed_at, zone) if lapsed and stage.lapsed_at else _timer(stage.due, zone)
        table.add_row(name, str(stage.cycle), state, _at(stage.started_at, zone), _timer(stage.warn, zone), due)
    console.print(table)
