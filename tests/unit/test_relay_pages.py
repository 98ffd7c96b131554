"""The relay's own logic: events from memory, pages in flight, and rewinding after a refusal.

A publisher in memory stands in for the broker here; the broker's own refusals, restarts and
a kill -9 between publishing and saving are attacked in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import pytest

from services.intake.application import IntakeApplication
from services.intake.translate import outgoing
from shared.policy import load_policy
from shared.publishing import Outgoing
from shared.relay import Relay
from tests.unit.commands import act, receive, send

POLICY = load_policy()


class Pages:
    """Takes pages in order; each page's confirmation is settled by the test, or at once."""

    def __init__(self, confirm_at_once: bool = True) -> None:
        self.sent: list[list[Outgoing]] = []
        self.confirmations: list[asyncio.Future[None]] = []
        self.confirm_at_once = confirm_at_once

    async def send_page(self, messages: Sequence[Outgoing]) -> Awaitable[None]:
        confirmation: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.confirm_at_once:
            confirmation.set_result(None)
        self.sent.append(list(messages))
        self.confirmations.append(confirmation)
        return confirmation

    async def close(self) -> None:
        return None

    def message_ids(self) -> list[str]:
        return [m.message_id for page in self.sent for m in page]


@pytest.fixture
def app(tmp_path: Path) -> IntakeApplication:
    return IntakeApplication(POLICY, f"sqlite:///{tmp_path}/casework.sqlite3")


def relay_for(app: IntakeApplication, pages: Pages, name: str = "test.relay", page_size: int = 500) -> Relay:
    relay = Relay(app, pages, outgoing, name, page_size=page_size)
    assert relay._try_lock()
    return relay


async def settle() -> None:
    """A few turns of the loop: a page's confirmation reaches the relay through a task or two."""
    for _ in range(5):
        await asyncio.sleep(0)


async def drain(relay: Relay) -> None:
    while await relay.publish_pending():
        pass
    await settle()


def every_kind_of_event(app: IntakeApplication) -> None:
    """Streams of every aggregate, with escalations (two messages each) and a rejected command."""
    case = receive(app, "M1").stream_id
    assert case is not None
    for command in ("verify", "hand_over", "escalate", "remediate", "close", "reopen"):
        outcome = act(app, command, case)
        assert outcome.status == "accepted", (command, outcome.error)
    assert receive(app, "M2", branch="SZ02", user="branch-GZ01").status == "rejected"  # not its branch
    send(app, "surplus.report", {
        "branch_id": "GZ01", "report_ref": "S1", "reported_by": "陈", "goods_name": "电饭煲", "window": "W3",
        "clearance_date": "2026-11-20", "inspected_with": ["site manager", "porter"], "photos": ["photo://1"],
        "resealed": True})


async def test_events_from_memory_are_published_exactly_as_read_back_from_the_store(
        app: IntakeApplication) -> None:
    remembered = Pages()
    relay = relay_for(app, remembered)
    app.on_recorded = relay.remember
    every_kind_of_event(app)
    assert relay.recent, "the commits were remembered"
    await drain(relay)

    from_store = Pages()
    await drain(relay_for(app, from_store, name="test.relay.store"))

    assert from_store.sent
    assert [m for page in remembered.sent for m in page] == [m for page in from_store.sent for m in page]
    assert relay.position == app.recorder.max_notification_id()
    assert not relay.recent


async def test_events_another_process_recorded_are_read_from_the_store_in_order(
        app: IntakeApplication, tmp_path: Path) -> None:
    pages = Pages()
    relay = relay_for(app, pages)
    app.on_recorded = relay.remember
    other = IntakeApplication(POLICY, f"sqlite:///{tmp_path}/casework.sqlite3")  # another intake process
    receive(app, "A1")
    receive(other, "B1")
    receive(app, "A2")
    receive(app, "A3")
    await drain(relay)

    positions = _positions(pages)
    assert positions == sorted(positions)
    assert sorted(set(positions)) == list(range(1, app.recorder.max_notification_id() + 1))
    assert len(pages.message_ids()) == len(set(pages.message_ids())), "nothing twice without a failure"


async def test_pages_go_out_before_earlier_ones_are_confirmed_and_confirm_in_order(
        app: IntakeApplication) -> None:
    pages = Pages(confirm_at_once=False)
    relay = relay_for(app, pages, page_size=2)  # a command makes two events: one command a page
    for ref in ("P1", "P2", "P3"):
        receive(app, ref)
    assert await relay.publish_pending() == 2
    assert await relay.publish_pending() == 2
    assert await relay.publish_pending() == 2
    assert len(pages.sent) == 3 and relay.position == 0

    pages.confirmations[1].set_result(None)  # the second page first: the first still holds
    await settle()
    assert relay.position == 0
    pages.confirmations[0].set_result(None)
    await settle()
    assert relay.position == 4
    pages.confirmations[2].set_result(None)
    await settle()
    assert relay.position == 6
    for _ in range(100):
        if relay.saved == 6:
            break
        await asyncio.sleep(0.01)
    assert app.factory.tracking_recorder().max_tracking_id("test.relay") == 6


async def test_a_refused_page_sends_the_relay_back_to_its_confirmed_position(app: IntakeApplication) -> None:
    pages = Pages(confirm_at_once=False)
    relay = relay_for(app, pages, page_size=2)
    app.on_recorded = relay.remember
    for ref in ("R1", "R2", "R3"):
        receive(app, ref)
    for _ in range(3):
        await relay.publish_pending()
    pages.confirmations[0].set_result(None)
    pages.confirmations[1].set_exception(RuntimeError("broker refused"))
    pages.confirmations[2].set_result(None)  # confirmed, but after the refused one: it must not count
    await settle()
    assert relay.position == 2

    with pytest.raises(RuntimeError, match="not confirmed"):
        await relay.publish_pending()
    relay._rewind()
    pages.confirm_at_once = True
    await drain(relay)

    assert relay.position == 6
    again = [m.headers["x-casework-position"] for page in pages.sent[3:] for m in page]
    assert sorted(set(again)) == [3, 4, 5, 6], "everything after the confirmed position goes out again"


async def test_memory_is_bounded_when_the_relay_falls_behind(app: IntakeApplication,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.relay.RECENT_LIMIT", 5)
    pages = Pages()
    relay = relay_for(app, pages)
    app.on_recorded = relay.remember
    for i in range(5):
        receive(app, f"F{i}")
    assert len(relay.recent) <= 5
    await drain(relay)
    assert sorted(set(_positions(pages))) == list(range(1, 11))


def test_a_relay_that_does_not_lead_remembers_nothing(app: IntakeApplication) -> None:
    relay = Relay(app, Pages(), outgoing, "test.relay")
    app.on_recorded = relay.remember
    receive(app, "N1")
    assert not relay.recent


def test_processes_opening_a_fresh_sqlite_store_together_all_open_their_relay(tmp_path: Path) -> None:
    """Intake replicas on one SQLite file, started together: each opens the store and its relay's
    position, which the library creates with a record that only one of them can insert."""
    import threading

    errors: list[str] = []

    def start(url: str, together: threading.Barrier) -> None:
        try:
            app = IntakeApplication(POLICY, url)
            together.wait(timeout=30)
            Relay(app, Pages(), outgoing, "casework.relay")
            app.close()
        except Exception as error:
            errors.append(repr(error))

    for attempt in range(5):  # the race is lost now and then, not every time
        together = threading.Barrier(6)
        threads = [threading.Thread(target=start, args=(f"sqlite:///{tmp_path}/store-{attempt}.sqlite3", together))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == [], sorted(set(errors))


def _positions(pages: Pages) -> list[Any]:
    return [m.headers["x-casework-position"] for page in pages.sent for m in page]


class RefusingPages(Pages):
    """Refuses every message routed to `key`; `casework.services` fails as a broker that went away."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    async def send_page(self, messages: Sequence[Outgoing]) -> Awaitable[None]:
        from shared.publishing import Refused

        if any(m.exchange == "casework.services" for m in messages):
            raise ConnectionError("the broker went away")
        confirmation = await super().send_page(messages)
        refused = [m for m in messages if m.routing_key == self.key]
        if not refused:
            return confirmation
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failed.set_exception(Refused(refused))
        return failed


async def test_a_broker_gone_while_the_services_get_their_copies_holds_the_relay_and_does_not_end_it(
        app: IntakeApplication, caplog: pytest.LogCaptureFixture) -> None:
    """Past its patience the relay sends the refused messages to the services; a failure there
    is one more reason to hold and try again, not the end of the relay."""
    receive(app, "R1")
    pages = RefusingPages("complaint.received.GZ01")
    relay = Relay(app, pages, outgoing, "test.relay", refusal_seconds=0.0)
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if "cannot give the services their copies" in caplog.text:
                break
        assert "cannot give the services their copies" in caplog.text
        assert not task.done(), task
        assert relay.position == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
