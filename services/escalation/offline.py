"""The clock store and intake's history opened as the service would, for commands run beside it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from casework.settings import Settings, load
from services.escalation.application import EscalationApplication
from services.escalation.clock import utc_now
from services.escalation.history import IntakeHistory
from services.escalation.rules import PolicyBook
from services.escalation.settings import EscalationSettings
from services.escalation.store import open_store, require_clock_store, store_location
from shared.store import StoreNotFound


def clock_store_url(config: Settings) -> str:
    """Where the service keeps its clocks: CASEWORK_ESCALATION_STORE_URL, or beside intake's store."""
    return load(EscalationSettings).store_url or store_location(config.database_url)


@contextmanager
def offline_application(config: Settings, read_only: bool = False) -> Iterator[
        tuple[EscalationApplication, IntakeHistory]]:
    """The application over the stored clocks and the policy versions the service recorded.

    Before the service ever ran, the configured policy stands for every moment, and a
    reader that writes nothing sees no clocks rather than create their store.
    """
    location = clock_store_url(config)
    if read_only:
        try:
            require_clock_store(location)
        except StoreNotFound:
            location = "sqlite://:memory:"
    store = open_store(location)
    history = IntakeHistory.open(config.database_url)
    try:
        book = (EscalationApplication.load_book(store, None, utc_now()) if store.policies()
                else PolicyBook.single(config.load_policy()))
        yield EscalationApplication(store, book, history), history
    finally:
        history.close()
        store.close()
