"""Fault injection for the crash tests: CASEWORK_FAULT=<point> kills the process at that point."""

from __future__ import annotations

import os


def crash_point(name: str) -> None:
    """Die like `kill -9` would (no cleanup, no flush) when the environment asks for it here."""
    if os.environ.get("CASEWORK_FAULT") == name:
        os._exit(137)
