"""What `casework replay rebuild` can rebuild: each read model from the event store, with a state digest.

A digest is SHA-256 over the read model's state in a canonical form; the rebuilt one equals
the live one when the live read model is exactly what history implies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from casework.settings import Settings

Progress = Callable[[int, int | None], None]
T = TypeVar("T")


def counted(items: Iterable[T], progress: Progress, total: int | None) -> Iterator[T]:
    for done, item in enumerate(items, 1):
        if done % 1000 == 0:
            progress(done, total)
        yield item


def digest(parts: Iterable[str]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode())
        sha.update(b"\n")
    return sha.hexdigest()


def escalation(config: Settings, progress: Progress) -> dict[str, Any]:
    """Every SLA clock from the complaint history, against the clocks the service holds."""
    from services.escalation import codec
    from services.escalation.clock import utc_now
    from services.escalation.offline import offline_application

    with offline_application(config, read_only=True) as (app, history):
        rebuilt = app.rebuild(counted(history.facts(), progress, None), utc_now())
        live = {row.case_id: codec.dumps(codec.loads(row.state)) for row in app.store.rows()}
    return {
        "items": len(rebuilt),
        "digest": digest(f"{case}:{codec.dumps(rebuilt[case])}" for case in sorted(rebuilt)),
        "live_digest": digest(f"{case}:{live[case]}" for case in sorted(live)),
    }


def rewards(config: Settings, progress: Progress) -> dict[str, Any]:
    """The ledgers from intake's history, into memory; digest over every decided period's registry."""
    from casework.audit import StoreReader
    from services.rewards.application import RewardsApplication
    from services.rewards.rebuild import feed, history
    from shared.store import StoreNotFound, require_store

    policy = config.load_policy()
    reader = StoreReader(config.database_url)
    periods = sorted({e.period for e in all_period_events(reader)})
    try:
        rebuilt = RewardsApplication(policy, "memory:")
        feed(rebuilt, counted(history(reader), progress, None))
    finally:
        reader.close()
    try:
        require_store(config.database_url, "rewards")
        live = RewardsApplication(policy, config.database_url)
    except StoreNotFound:  # the rewards service never ran: no ledgers, and none created here
        live = RewardsApplication(policy, "memory:")
    try:
        return {
            "items": len(periods),
            "digest": registry_digest(rebuilt, periods),
            "live_digest": registry_digest(live, periods),
        }
    finally:
        live.close()
        rebuilt.close()


def all_period_events(reader: Any) -> Iterator[Any]:
    start = 1
    while notifications := reader.recorder.select_notifications(start, 1000, topics=()):
        for notification in notifications:
            if notification.topic.endswith(":Period.Opened"):
                yield reader.mapper.to_domain_event(notification)
        start = notifications[-1].id + 1


def registry_digest(app: Any, periods: list[str]) -> str:
    parts = []
    for period in periods:
        registry = app.registry(period)
        parts.append(f"{period}:{registry.digest if registry else 'open'}")
    return digest(parts)


REBUILDERS: dict[str, Callable[[Settings, Progress], dict[str, Any]]] = {
    "escalation": escalation,
    "rewards": rewards,
}
