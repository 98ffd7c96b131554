"""`casework rewards` sub-commands."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from casework.groups import command_group

if TYPE_CHECKING:
    from services.rewards.application import RewardsApplication
    from services.rewards.registry import Registry

rewards_app = command_group("Surplus-goods rewards, shortage penalties, decisions and settlement.")


class Format(StrEnum):
    csv = "csv"
    json = "json"


def _open() -> tuple[RewardsApplication, Any]:
    """The rewards store as the service left it; one that does not exist is refused, never created."""
    from casework.cli import settings
    from services.rewards.application import RewardsApplication
    from shared.store import require_store

    config = settings()
    policy = config.load_policy()
    require_store(config.database_url, "rewards")
    return RewardsApplication(policy, config.database_url), policy


def _period(period: str) -> str:
    """A month (2026-11) or an ISO week (2026-W48); anything else is refused before the store is read."""
    from casework.cli import fail
    from services.intake.periods import period_start

    try:
        period_start(period)
    except ValueError:
        fail(f"{period!r} is not a valid period: expected a month (2026-11) or an ISO week (2026-W48)")
    return period


def _plain(value: Any) -> str:
    """A status value as a person reads it: no Python reprs."""
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_plain(item)}" for key, item in value.items())
    return str(value)


def _render(registry: Registry, fmt: Format, timezone: str) -> bytes:
    from services.rewards.registry import paused_gc

    with paused_gc():
        return registry.to_csv(timezone) if fmt is Format.csv else registry.to_json()


def _write(data: bytes, output: Path | None) -> None:
    from casework.cli import err

    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    output.write_bytes(data)
    err.print(f"wrote {output} ({len(data)} bytes)")


@rewards_app.command("registry")
def registry(
    period: Annotated[str, typer.Argument(help="The decided period, e.g. 2026-11 or 2026-W48.")],
    fmt: Annotated[Format, typer.Option("--format", help="csv (UTF-8 with BOM, for Excel) or json.")] = Format.csv,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file.")] = None,
) -> None:
    """The period's registry (多货少货协查登记表), as HQ decided it."""
    from casework.cli import fail

    period = _period(period)
    app, policy = _open()
    try:
        found = app.registry(period)
        if found is None:
            book = app.book(period)
            waiting = book is not None and book.decision is not None
            fail(f"period {period} is {'decided, its reviews still arriving' if waiting else 'not decided'}; "
                 "see `casework rewards status`", code=1)
            return
        book = app.book(period)
        if book is not None and book.digest != found.digest:
            fail(f"registry of {period} no longer matches the digest its decision recorded", code=1)
        _write(_render(found, fmt, policy.organisation.hq_timezone), output)
    finally:
        app.close()


@rewards_app.command("status")
def status(
    period: Annotated[str, typer.Argument(help="The period, e.g. 2026-11.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Where a period stands: reviews accrued, decision received and completed, settlement."""
    from casework.cli import console

    period = _period(period)
    app, _ = _open()
    try:
        book = app.book(period)
        ledgers = app.ledgers(book) if book is not None else []
        report = {
            "period": period,
            "branches": len(ledgers),
            "reviews_accrued": sum(len(ledger.credits) for ledger in ledgers),
            "decision": book.decision if book else None,
            "decided": bool(book and book.decided),
            "digest": book.digest if book else "",
            "settlement": book.settlement if book else None,
            "settled": bool(book and book.settled),
        }
    finally:
        app.close()
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        return
    for key, value in report.items():
        console.print(f"{key}: {_plain(value)}", markup=False, highlight=False)


@rewards_app.command("rebuild")
def rebuild(
    period: Annotated[str, typer.Argument(help="The decided period to rebuild.")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.json,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    digest: Annotated[bool, typer.Option("--digest", help="Print only the SHA-256 and compare it.")] = False,
) -> None:
    """Replay intake's history into fresh ledgers (in memory) and print the period's registry from them."""
    from casework.cli import console, fail, settings
    from services.rewards.rebuild import rebuild as replay
    from shared.store import require_store

    period = _period(period)
    config = settings()
    policy = config.load_policy()
    require_store(config.database_url)
    if digest:
        require_store(config.database_url, "rewards")
    app = replay(policy, config.database_url)
    try:
        found = app.registry(period)
    finally:
        app.close()
    if found is None:
        fail(f"intake's history holds no completed decision of {period}", code=1)
        return
    if not digest:
        _write(_render(found, fmt, policy.organisation.hq_timezone), output)
        return
    live, _ = _open()
    try:
        book = live.book(period)
    finally:
        live.close()
    recorded = book.digest if book else ""
    console.print(f"{found.digest} rebuilt\n{recorded or '(none)':64} recorded")
    if recorded != found.digest:
        fail("the rebuilt registry differs from the one recorded with the decision", code=1)
