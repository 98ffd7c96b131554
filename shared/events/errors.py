"""Stable error codes that outcomes and dead letters carry; senders may switch on them."""

from enum import StrEnum


class ErrorCode(StrEnum):
    """Codes a sender can act on. Never renamed; new ones may be added."""

    # The message itself is unusable: it goes to casework.dead.
    NOT_JSON = "not_json"
    SCHEMA_INVALID = "schema_invalid"
    TOO_LARGE = "too_large"
    UNKNOWN_COMMAND = "unknown_command"
    MISSING_MESSAGE_ID = "missing_message_id"
    REROUTED = "rerouted"
    # Intake's own fault, not the sender's: the command is set aside in casework.dead.
    INTERNAL_ERROR = "internal_error"
    # Who is speaking.
    MISSING_USER_ID = "missing_user_id"
    UNKNOWN_USER = "unknown_user"
    NOT_YOUR_BRANCH = "not_your_branch"
    FORBIDDEN = "forbidden"
    # Domain rules.
    UNKNOWN_BRANCH = "unknown_branch"
    CASE_NOT_FOUND = "case_not_found"
    CASE_EXISTS = "case_exists"
    INVALID_TRANSITION = "invalid_transition"
    LEVEL_NOT_HIGHER = "level_not_higher"
    REPORT_NOT_FOUND = "report_not_found"
    REPORT_EXISTS = "report_exists"
    EVIDENCE_INCOMPLETE = "evidence_incomplete"
    ALREADY_REVIEWED = "already_reviewed"
    SHARES_INVALID = "shares_invalid"
    MATCH_INVALID = "match_invalid"
    ALREADY_MATCHED = "already_matched"
    PERIOD_INVALID = "period_invalid"
    PERIOD_DECIDED = "period_decided"
    PERIOD_NOT_DECIDED = "period_not_decided"
    PERIOD_SETTLED = "period_settled"
