"""The clock store and intake's history opened as the service would, for commands run beside it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from casework.settings import Settings
from services.escalation.application import EscalationApplication
from services.escalation.clock import utc_now
from services.escalation.history import IntakeHistory
from services.escalation.rules import PolicyBook
from services.escalation.settings import EscalationSettings
from services.escalation.store import open_store, store_location


@contextmanager
def offline_application(config: Settings) -> Iterator[tuple[EscalationApplication, IntakeHistory]]:
    """The application over the stored clocks and the policy versions the service recorded.

    Before the service ever ran, the configured policy stands for every moment.
    """
    store = open_store(EscalationSettings().store_url or store_location(config.database_url))
    history = IntakeHistory.open(config.database_url)
    try:
        book = (EscalationApplication.load_book(store, None, utc_now()) if store.policies()
                else PolicyBook.single(config.load_policy()))
        yield EscalationApplication(store, book, history), history
    finally:
        history.close()
        store.close()
