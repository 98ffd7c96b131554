"""What the consumer refuses before touching the store (the broker side is in the integration tests)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from services.intake.consumer import Malformed, read_submission
from tests.support.live import complaint_body


def raw(**overrides: Any) -> Any:
    fields = {"body": json.dumps(complaint_body()).encode(), "routing_key": "complaint.receive",
              "message_id": "m-1", "user_id": "branch-GZ01", "reply_to": None, "correlation_id": None,
              "timestamp": None, "headers": {}, **overrides}
    return SimpleNamespace(**fields)


def test_a_good_command_is_read() -> None:
    submission = read_submission(raw())
    assert (submission.message_id, submission.user_id, submission.command.routing_key) == (
        "m-1", "branch-GZ01", "complaint.receive")


@pytest.mark.parametrize(("overrides", "code"), [
    ({"message_id": None}, "missing_message_id"),  # aio-pika always sets one; other clients may not
    ({"message_id": ""}, "missing_message_id"),
    ({"routing_key": "complaint.explode"}, "unknown_command"),
    ({"body": b"\xff\xfe"}, "not_json"),
    ({"body": b"[1, 2]"}, "schema_invalid"),
    ({"body": b"x" * 70_000}, "too_large"),
    ({"headers": {"x-death": [{"queue": "casework.client.x", "reason": "rejected"}]}}, "rerouted"),
])
def test_unusable_messages_are_refused_with_a_code(overrides: dict[str, Any], code: str) -> None:
    with pytest.raises(Malformed) as caught:
        read_submission(raw(**overrides))
    assert caught.value.code == code


def test_a_missing_user_id_is_left_for_the_consumer_to_reject() -> None:
    assert read_submission(raw(user_id=None)).user_id == ""


def test_a_delivery_read_in_place_reads_as_aio_pikas_message_does() -> None:
    """`Delivery` (aiormq's delivery, read in place) and aio-pika's message agree on all the consumer reads."""
    from datetime import UTC, datetime

    import aio_pika
    from aiormq.abc import DeliveredMessage
    from pamqp.commands import Basic
    from pamqp.header import ContentHeader

    from services.intake.consumer import Delivery

    body = json.dumps(complaint_body()).encode()
    properties = Basic.Properties(
        message_id="m-7", user_id="branch-GZ01", reply_to="amq.rabbitmq.reply-to", correlation_id="c-7",
        timestamp=datetime(2026, 11, 27, 8, 30, tzinfo=UTC), headers={"x-death": [{"queue": "q"}], "n": 1},
        content_type="application/json", delivery_mode=2)
    delivered = DeliveredMessage(
        delivery=Basic.Deliver(consumer_tag="t", delivery_tag=42, routing_key="complaint.receive",
                               exchange="casework.commands"),
        header=ContentHeader(body_size=len(body), properties=properties), body=body, channel=None)  # type: ignore[arg-type]
    ours, theirs = Delivery(delivered), aio_pika.IncomingMessage(delivered)
    for name in ("body", "routing_key", "delivery_tag", "headers", "message_id", "user_id", "reply_to",
                 "correlation_id", "content_type", "timestamp"):
        assert getattr(ours, name) == getattr(theirs, name), name
