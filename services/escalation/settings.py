"""The escalation service's own knobs (CASEWORK_ESCALATION_*), beside the shared Settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EscalationSettings(BaseSettings):
    """Tuning and fault injection; the broker and the stores come from the shared Settings."""

    model_config = SettingsConfigDict(env_prefix="CASEWORK_ESCALATION_", extra="ignore")

    store_url: str | None = None  # default: beside intake's store (see store.store_location)
    batch_size: int = Field(default=200, ge=1, le=1000)
    prefetch: int = Field(default=400, ge=1, le=5000)
    fire_batch: int = Field(default=500, ge=1, le=10_000)
    max_sleep_seconds: float = Field(default=30.0, gt=0)
    coalesce_seconds: float = Field(default=0.02, ge=0, le=1)
    # Read intake's store before firing, so that progress still queued never gets a case escalated.
    catch_up: bool = True
    stats_file: Path | None = None
    # Fault injection for crash tests: exit right after the confirms, before recording.
    crash_after_publish: bool = False
