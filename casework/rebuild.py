"""What `casework replay rebuild` can rebuild: each read model's rebuild returns its state digest."""

from __future__ import annotations

from collections.abc import Callable

from casework.settings import Settings

Progress = Callable[[int, int | None], None]
REBUILDERS: dict[str, Callable[[Settings, Progress], str]] = {}
