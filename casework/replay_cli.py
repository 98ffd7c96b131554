"""`casework replay`: rebuild read models from the event store; re-publish history to one subscriber."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from casework.cli import console, err, fail, settings
from casework.groups import command_group

replay_app = command_group("Rebuild read models; re-publish history.")


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err)


@replay_app.command("publish")
def replay_publish(
    binding: Annotated[str, typer.Option(help="Routing-key pattern, e.g. complaint.# or hq.warehousing.")],
    queue: Annotated[str, typer.Option(help="The subscriber's queue (it must exist).")],
    start: Annotated[int, typer.Option("--from", help="First notification position.")] = 1,
    stop: Annotated[int | None, typer.Option("--to", help="Last position (default: the end).")] = None,
    escalations: Annotated[bool, typer.Option(help="Match casework.escalations keys instead of events.")] = False,
) -> None:
    """Re-publish recorded history, with the original message ids, into one queue only."""
    from casework.replay import ReplayRange, last_position, publish_range
    from shared.store import require_store

    config = settings()
    if start < 1 or (stop is not None and stop < start):
        fail("--from must be ≥ 1 and --to ≥ --from")
    require_store(config.database_url)
    end = stop or last_position(config.database_url)
    with progress_bar() as bar:
        task = bar.add_task(f"replaying into {queue}", total=max(0, end - start + 1))
        sent = asyncio.run(publish_range(
            config.database_url, config.amqp_url, ReplayRange(start, stop), binding, queue,
            exchange="casework.escalations" if escalations else "casework.events",
            progress=lambda position: bar.update(task, completed=position - start + 1)))
    console.print(f"published {sent} messages matching {binding} from positions {start}–{end} into {queue}")


@replay_app.command("rebuild")
def replay_rebuild(
    only: Annotated[str | None, typer.Option(help="escalation or rewards (default: both).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rebuild read models and ledgers from the event store and print their state digests."""
    from casework.rebuild import REBUILDERS
    from shared.store import require_store

    names = [only] if only else list(REBUILDERS)
    unknown = [n for n in names if n not in REBUILDERS]
    if unknown:
        fail(f"cannot rebuild {', '.join(unknown)}; choose from {', '.join(REBUILDERS)}")
    config = settings()
    config.load_policy()
    require_store(config.database_url)
    digests = {}
    with progress_bar() as bar:
        for name in names:
            task = bar.add_task(f"rebuilding {name}", total=None)

            def advance(done: int, total: int | None, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total)

            digests[name] = REBUILDERS[name](config, advance)
    for result in digests.values():
        result["equal"] = result["digest"] == result["live_digest"]
    if as_json:
        sys.stdout.write(json.dumps(digests, indent=2) + "\n")
    else:
        for name, result in digests.items():
            verdict = ("[green]equals the live state[/green]" if result["equal"]
                       else "[red]differs from the live state[/red]")
            console.print(f"{name}: {result['items']} rebuilt; digest {result['digest'][:16]}… {verdict}")
    if not all(result["equal"] for result in digests.values()):
        raise typer.Exit(1)
