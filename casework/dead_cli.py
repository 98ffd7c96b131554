"""`casework dead`: what waits in casework.dead, and sending set-aside events back."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text

from casework.cli import console, err, fail, settings
from casework.groups import command_group

if TYPE_CHECKING:
    from casework.dead import DeadLetter

dead_app = command_group("What waits in casework.dead; send set-aside events back.")


@dead_app.command("list")
def dead_list(
    limit: Annotated[int, typer.Option(help="Show at most this many, oldest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show what casework.dead holds and why, leaving every message where it is."""
    from casework.dead import peek

    if limit < 1:
        fail("--limit must be at least 1")
    total, letters = asyncio.run(peek(settings().amqp_url, limit))
    if as_json:
        sys.stdout.write(json.dumps({"total": total, "letters": [
            {**asdict(letter), "redrivable": letter.why_it_stays is None, "why_not": letter.why_it_stays}
            for letter in letters]}, ensure_ascii=False, indent=2) + "\n")
        return
    render_letters(console, total, letters)


def render_letters(out: Console, total: int, letters: list[DeadLetter]) -> None:
    """Each letter as a heading (its whole message id, key, when and by whom) over its reason.

    A block a letter, not a table: the message id is what `dead redrive` takes, and a table
    in 80 columns cut it short.
    """
    if total == 0:
        out.print("casework.dead is empty")
        return
    shown = f", the first {len(letters)} shown" if len(letters) < total else ""
    out.print(f"[bold]casework.dead: {total} message{'s' if total != 1 else ''}{shown}[/bold]")
    for letter in letters:
        by = f"{letter.set_aside_by} (from {letter.sender})" if letter.sender else letter.set_aside_by
        when = letter.at.replace("T", " ").removesuffix("+00:00") or "at a time not recorded"
        out.print(f"\n[bold]{escape(letter.message_id)}[/bold] · {escape(letter.routing_key)}")
        stays = letter.why_it_stays
        for line in (f"[dim]set aside {escape(when)} by {escape(by)}[/dim]",
                     f"{escape(letter.code)}: {escape(letter.reason)}",
                     "can be sent back (casework dead redrive)" if stays is None else f"stays: {escape(stays)}"):
            out.print(Padding(Text.from_markup(line), (0, 0, 0, 3), expand=False))


@dead_app.command("redrive")
def dead_redrive(
    message_ids: Annotated[list[str] | None, typer.Argument(help="Message ids, as `casework dead list` shows them.")]
    = None,
    every: Annotated[bool, typer.Option("--all", help="Every event that can be sent back.")] = False,
) -> None:
    """Send set-aside events back to escalation or rewards, once what failed is put right.

    They go through casework.services: events that escalation or rewards set aside, or that the
    broker dead-lettered from their queues. Each is removed from casework.dead only after the
    broker confirmed it; the services drop a message id they have already applied. Commands are
    not sent back: their sender was answered `rejected` and sends them again.
    """
    from casework.dead import redrive

    if bool(message_ids) == every:
        fail("name the message ids to send back, or --all")
    result = asyncio.run(redrive(settings().amqp_url, None if every else set(message_ids or ())))
    for letter in result.sent:
        console.print(f"sent back {escape(letter.message_id)} ({escape(letter.routing_key)}) "
                      f"to {letter.set_aside_by}")
    for letter, why in result.refused:
        err.print(f"[yellow]not sent back[/yellow] {escape(letter.message_id)}: {escape(why)}")
    for missing in result.missing:
        err.print(f"[yellow]not in casework.dead[/yellow] {escape(missing)}")
    if not result.sent and every:
        console.print("nothing in casework.dead can be sent back")
    if result.refused or result.missing:
        raise typer.Exit(1)
