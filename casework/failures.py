"""The failures a person can put right, each as one line and an exit code instead of a traceback.

Exit codes: 2 for configuration or input casework cannot use, 3 for a server (RabbitMQ,
PostgreSQL) that does not answer; 1 stays each command's own "no" (not intact, not found).
"""

from __future__ import annotations

from aio_pika.exceptions import AMQPConnectionError, ProbableAuthenticationError

from casework.replay import QueueNotFound
from casework.settings import ConfigurationError
from shared.policy import PolicyError
from shared.store import CipherKeyError, DatabaseUrlError, StoreNotFound, StoreUnreachable

USAGE = 2
UNREACHABLE = 3

MISCONFIGURED = (DatabaseUrlError, CipherKeyError, PolicyError, StoreNotFound, QueueNotFound)


def explain(error: Exception) -> tuple[str, int] | None:
    """(message, exit code) for a failure the person running the command can act on; None for a bug."""
    if isinstance(error, ConfigurationError):
        return f"configuration: {error}", USAGE
    if isinstance(error, MISCONFIGURED):
        return str(error), USAGE
    if isinstance(error, StoreUnreachable):
        return f"cannot reach {error}", UNREACHABLE
    if isinstance(error, ProbableAuthenticationError):
        return ("RabbitMQ refused the login: no such user, or a wrong password (the user and password in "
                "CASEWORK_AMQP_URL or the service's own CASEWORK_<SERVICE>_AMQP_URL; for publish and subscribe, "
                "--user and --password or CASEWORK_PASSWORD)"), USAGE
    if isinstance(error, AMQPConnectionError):
        return (f"cannot reach RabbitMQ: {error} (CASEWORK_AMQP_URL, or the service's own "
                "CASEWORK_<SERVICE>_AMQP_URL)"), UNREACHABLE
    return None
