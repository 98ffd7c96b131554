"""Case clocks as canonical JSON: equal clocks give equal text, so a rebuild can be compared byte for byte."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from services.escalation.domain import CaseClock, StageClock, Timer


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _span(value: timedelta | None) -> int | None:
    return None if value is None else value // timedelta(microseconds=1)


def _timer(timer: Timer | None) -> dict[str, Any] | None:
    return None if timer is None else {"at": _time(timer.at), "left_us": _span(timer.left)}


def _stage(stage: StageClock) -> dict[str, Any]:
    return {
        "cycle": stage.cycle, "phase": stage.phase, "policy": stage.policy, "started_at": _time(stage.started_at),
        "step_us": _span(stage.step), "due": _timer(stage.due), "warn": _timer(stage.warn),
        "warned": stage.warned, "lapsed_at": _time(stage.lapsed_at),
    }


def to_document(case: CaseClock) -> dict[str, Any]:
    return {
        "case_id": case.case_id, "branch_id": case.branch_id, "category": case.category,
        "case_ref": case.case_ref, "version": case.version, "closed": case.closed, "reached": case.reached,
        "sent": case.sent, "last_escalation": _time(case.last_escalation), "climb": _timer(case.climb),
        "paused_since": _time(case.paused_since), "paused_total_us": _span(case.paused_total),
        "pauses": case.pauses, "stages": {name: _stage(stage) for name, stage in case.stages.items()},
    }


def dumps(case: CaseClock) -> str:
    return json.dumps(to_document(case), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _read_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _read_span(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(microseconds=value)


def _read_timer(value: dict[str, Any] | None) -> Timer | None:
    if value is None:
        return None
    return Timer(at=_read_time(value["at"]), left=_read_span(value["left_us"]))


def _read_stage(value: dict[str, Any]) -> StageClock:
    return StageClock(
        cycle=value["cycle"], phase=value["phase"], policy=value["policy"],
        started_at=_read_time(value["started_at"]), step=_read_span(value["step_us"]) or timedelta(0),
        due=_read_timer(value["due"]), warn=_read_timer(value["warn"]), warned=value["warned"],
        lapsed_at=_read_time(value["lapsed_at"]),
    )


def loads(text: str) -> CaseClock:
    value = json.loads(text)
    return CaseClock(
        case_id=value["case_id"], branch_id=value["branch_id"], category=value["category"],
        case_ref=value["case_ref"], version=value["version"], closed=value["closed"],
        reached=value["reached"], sent=value["sent"], last_escalation=_read_time(value["last_escalation"]),
        climb=_read_timer(value["climb"]), paused_since=_read_time(value["paused_since"]),
        paused_total=_read_span(value["paused_total_us"]) or timedelta(0), pauses=value["pauses"],
        stages={name: _read_stage(stage) for name, stage in value["stages"].items()},
    )
