"""What the command line says when it is configured wrong or pointed at nothing: one line, an exit code, no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.escalation.store import store_location
from shared.store import DatabaseUrlError, eventsourcing_env


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, to see what a command leaves in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("url", ["sqlite:var/x.db", "sqlite://var/x.db", "sqlite:/var/x.db", "sqlite:///"])
def test_a_sqlite_url_without_three_slashes_is_refused_not_shortened(url: str, elsewhere: Path) -> None:
    with pytest.raises(DatabaseUrlError, match=r"sqlite:///PATH \(relative to the current directory\)"):
        eventsourcing_env(url)
    with pytest.raises(DatabaseUrlError, match=r"sqlite:////PATH \(absolute\)"):
        store_location(url)
    assert list(elsewhere.iterdir()) == []


def test_three_slashes_are_relative_and_four_absolute(elsewhere: Path) -> None:
    assert eventsourcing_env("sqlite:///var/x.db")["SQLITE_DBNAME"] == "var/x.db"
    assert eventsourcing_env("sqlite:////srv/x.db", "rewards")["SQLITE_DBNAME"] == "/srv/x-rewards.db"
    assert store_location("sqlite:///var/x.db") == "sqlite:///var/x-escalation.db"
    assert store_location("sqlite:////srv/x.db") == "sqlite:////srv/x-escalation.db"
