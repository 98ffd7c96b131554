"""Rewards periods: months ("2026-11") or ISO weeks ("2026-W48") in HQ's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.intake.domain import DomainError
from shared.policy import Policy


def period_of(moment: datetime, policy: Policy) -> str:
    local = moment.astimezone(ZoneInfo(policy.organisation.hq_timezone)).date()
    if policy.rewards.period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


def period_start(period: str) -> date:
    year, _, rest = period.partition("-")
    if rest.startswith("W"):
        return date.fromisocalendar(int(year), int(rest[1:]), 1)
    return date(int(year), int(rest), 1)


def period_after(period: str) -> str:
    start = period_start(period)
    if "W" in period:
        year, week, _ = (start + timedelta(days=7)).isocalendar()
        return f"{year}-W{week:02d}"
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return f"{following.year}-{following.month:02d}"


def validate_period(period: str, policy: Policy, now: datetime) -> None:
    """A period can be decided once it has begun, and only in the policy's period length."""
    weekly = "W" in period
    if weekly != (policy.rewards.period == "week"):
        raise DomainError(f"period {period} does not match the policy's {policy.rewards.period}ly periods",
                          code="period_invalid")
    try:
        start = period_start(period)
    except ValueError:
        raise DomainError(f"{period} is not a period", code="period_invalid") from None
    today = now.astimezone(ZoneInfo(policy.organisation.hq_timezone)).date()
    if start > today:
        raise DomainError(f"period {period} has not begun yet", code="period_invalid")
