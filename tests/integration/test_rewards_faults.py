"""An event rewards fails on by its own fault is set aside; the others take effect."""

from __future__ import annotations

import json
from typing import Any

import pytest

from casework.dead import redrive
from services.rewards.application import RewardsApplication
from tests.integration.test_rewards_crashes import publish, quiet
from tests.integration.test_rewards_flow import rewards_service
from tests.support.live import Client, running, until
from tests.unit.test_rewards_helpers import decided_world, entries, fed, rewards

pytestmark = pytest.mark.integration


async def test_an_event_rewards_fails_on_is_set_aside_and_the_rest_takes_effect(
        amqp_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """And once the fault is put right, `casework dead redrive` sends it back, and the ledgers
    come to what every event together makes."""
    messages = decided_world().messages()
    key, body = next((k, b) for k, b in messages if k.startswith("surplus.reported."))
    flawed_ref = json.loads(body)["report_ref"]
    expected = entries(fed([m for m in messages if m[1] is not body]))  # what the rest alone comes to
    assert expected != entries(fed(messages)), "the set-aside report must make a difference"

    on_reported = RewardsApplication._on_reported
    broken = [True]

    def flawed(self: RewardsApplication, work: Any, cause: Any, event: Any) -> Any:
        if broken[0] and event.report_ref == flawed_ref:
            raise KeyError("a bug")
        return on_reported(self, work, cause, event)

    def ledgers() -> Any:
        store = rewards(url=database_url)
        try:
            return entries(store)
        finally:
            store.close()

    monkeypatch.setattr(RewardsApplication, "_on_reported", flawed)
    async with Client(amqp_url) as client:
        await client.declare_topology()
        dead = await client.tap("casework.dead", "")
        async with running(rewards_service(amqp_url, database_url)) as service:
            await publish(client, messages)
            await quiet(service)
            await dead.settle(quiet=0.5)
            assert [m.routing_key for m in dead.messages] == [key]
            assert json.loads(dead.messages[0].headers["x-casework-error"])["code"] == "internal_error"
            assert dead.messages[0].headers["x-casework-consumer"] == "rewards"
            assert ledgers() == expected

            broken[0] = False
            sent = await redrive(amqp_url, None)
            assert [letter.routing_key for letter in sent.sent] == [key]
            await until(lambda: ledgers() == entries(fed(messages)), what="the ledgers with the report sent back")
