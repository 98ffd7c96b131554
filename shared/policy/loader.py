"""Load and validate the policy TOML, with errors that name the file and the key."""

from __future__ import annotations

import hashlib
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from shared.policy.model import Policy


class PolicyError(ValueError):
    """Raised when a policy file is missing, not TOML, or breaks a rule of its schema."""


def default_policy_path() -> Path:
    return Path(str(resources.files("shared.policy").joinpath("default.toml")))


def load_policy(path: Path | str | None = None) -> Policy:
    """Read a policy file (the packaged default when none is given)."""
    file = Path(path) if path else default_policy_path()
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise PolicyError(f"policy {file}: cannot be read: {error.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PolicyError(f"policy {file}: not valid TOML: {error}") from None
    data.setdefault("version", hashlib.sha256(raw).hexdigest()[:12])
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"key {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors()
        )
        raise PolicyError(f"policy {file}: {problems}") from None
