"""The wire contract: every command, outcome, event and notice that crosses RabbitMQ."""

from shared.events.commands import COMMANDS, MAX_BODY_BYTES, Command, parse_command
from shared.events.errors import ErrorCode
from shared.events.messages import EscalationNotice, EventMessage, Outcome, OutcomeError, WarningNotice

SCHEMA_VERSION = 1

__all__ = [
    "COMMANDS",
    "MAX_BODY_BYTES",
    "SCHEMA_VERSION",
    "Command",
    "ErrorCode",
    "EscalationNotice",
    "EventMessage",
    "Outcome",
    "OutcomeError",
    "WarningNotice",
    "parse_command",
]
