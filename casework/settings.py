"""Configuration from the environment (CASEWORK_*), as the contract lists it."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.policy import Policy, load_policy


class Settings(BaseSettings):
    """Every knob of a casework process; each service may connect as its own RabbitMQ user."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    database_url: str = "sqlite:///var/casework.sqlite3"
    policy: Path | None = None
    intake_amqp_url: str | None = None
    escalation_amqp_url: str | None = None
    rewards_amqp_url: str | None = None
    intake_batch_size: int = Field(default=200, ge=1, le=1000)
    prefetch: int = Field(default=400, ge=1, le=5000)
    relay_page_size: int = Field(default=500, ge=1, le=5000)
    relay_poll_seconds: float = Field(default=0.5, gt=0)
    # How long a queue that refuses events (full, reject-publish) may hold the relay before it
    # is passed over; casework's own services' queues are never passed over.
    relay_refusal_seconds: float = Field(default=10.0, ge=0)
    # Run intake's relay inside the intake process; false when `casework run --only relay` runs it apart.
    intake_relay: bool = True
    # On SIGINT/SIGTERM, how long the work in hand may take to commit, be acked and be published.
    stop_grace_seconds: float = Field(default=10.0, ge=0)
    cipher_key: str | None = None

    def amqp_url_for(self, service: str) -> str:
        own: str | None = getattr(self, f"{service}_amqp_url", None)
        return own or self.amqp_url

    def load_policy(self) -> Policy:
        return load_policy(self.policy)


class ConfigurationError(ValueError):
    """Raised when a CASEWORK_* variable holds a value casework cannot use; the message names the variable."""


S = TypeVar("S", bound=BaseSettings)


def load(kind: type[S]) -> S:
    """Settings read from the environment, or a ConfigurationError naming each variable that is wrong."""
    try:
        return kind()
    except ValidationError as error:
        prefix = str(kind.model_config.get("env_prefix", ""))
        problems = "; ".join(
            f"{prefix}{'_'.join(str(part) for part in problem['loc']).upper()}={problem['input']!r}: {problem['msg']}"
            for problem in error.errors())
        raise ConfigurationError(problems) from None
