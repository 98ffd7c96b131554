"""Rebuild the ledgers from intake's recorded history, in any store, to compare registries byte for byte."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from services.rewards import upstream as up
from services.rewards.application import RewardsApplication
from shared.events import EventMessage
from shared.policy import Policy

REWARDS_KEYS = ("surplus.", "complaint.", "period.")  # what casework.rewards is bound to


def history(intake: Any, page: int = 1000) -> Iterator[tuple[str, bytes]]:
    """Every message intake's relay publishes to casework.events that the rewards queue receives."""
    from services.intake.translate import outgoing

    start = 1
    while notifications := intake.recorder.select_notifications(start, page):
        for notification in notifications:
            event = intake.mapper.to_domain_event(notification)
            for message in outgoing(event, notification.id):
                if message.exchange == "casework.events" and message.routing_key.startswith(REWARDS_KEYS):
                    yield message.routing_key, message.body
        start = notifications[-1].id + 1


def feed(app: RewardsApplication, messages: Iterable[tuple[str, bytes]], batch: int = 500) -> int:
    """Apply messages in the order given, as the consumer would; returns how many rewards acted on."""
    pending: list[EventMessage] = []
    count = 0
    for routing_key, body in messages:
        event = up.read(routing_key, body)
        if event is None:
            continue
        pending.append(event)
        count += 1
        if len(pending) >= batch:
            app.process(pending)
            pending = []
    if pending:
        app.process(pending)
    return count


def rebuild(policy: Policy, database_url: str, into: str = "memory:") -> RewardsApplication:
    """A fresh rewards application fed with intake's whole history from `database_url`."""
    from casework.audit import StoreReader

    reader = StoreReader(database_url)
    try:
        app = RewardsApplication(policy, into)
        feed(app, history(reader))
        return app
    finally:
        reader.close()
