"""Read-only access to intake's event store: the versions a case is missing, or every complaint event."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import get_topic

from services.escalation.domain import Fact
from services.escalation.translate import fact_from_event
from services.intake.domain import Complaint
from services.intake.translate import event_type
from shared.store import eventsourcing_env

# Only complaint events, chosen in the query: command records are half of the log.
COMPLAINT_TOPICS = [get_topic(cls) for cls in vars(Complaint).values()
                    if isinstance(cls, type) and issubclass(cls, Complaint.Event)]


class History(Protocol):
    """Where missing complaint events are read from."""

    def after(self, case_id: str, version: int, upto: int | None = None) -> list[Fact]: ...


class IntakeReader(Application[UUID]):
    """Intake's tables, read only (same name, so the same tables or file)."""

    name = "casework"


class IntakeHistory:
    """Complaint facts straight from intake's store, which always holds every version the relay published."""

    def __init__(self, app: Application[Any]) -> None:
        self.app = app

    @classmethod
    def open(cls, database_url: str) -> IntakeHistory:
        # Intake owns its tables: a reader never creates them (and never races intake doing so).
        return cls(IntakeReader(env={**eventsourcing_env(database_url, "casework"), "CREATE_TABLE": "false"}))

    def after(self, case_id: str, version: int, upto: int | None = None) -> list[Fact]:
        """The case's facts with versions in (version, upto], in order."""
        events = self.app.events.get(UUID(case_id), gt=version, lte=upto)
        return [fact_from_event(event, event_type(event)) for event in events]

    def facts(self, page: int = 1000) -> Iterator[Fact]:
        """Every complaint fact in the order it was recorded."""
        start = 1
        while True:
            notifications = self.app.recorder.select_notifications(start, page, topics=COMPLAINT_TOPICS)
            if not notifications:
                return
            for notification in notifications:
                event = self.app.mapper.to_domain_event(notification)
                yield fact_from_event(event, event_type(event))
            start = notifications[-1].id + 1

    def close(self) -> None:
        self.app.close()
