"""The policy: organisation, identities, SLAs, calendars and rewards, from one TOML file."""

from shared.policy.loader import PolicyError, default_policy_path, load_policy
from shared.policy.model import Policy, Principal, parse_duration

__all__ = ["Policy", "PolicyError", "Principal", "default_policy_path", "load_policy", "parse_duration"]
