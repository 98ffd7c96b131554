"""The surplus/shortage investigation registry (多货少货协查登记表): built from ledgers, rendered byte-stable."""

from __future__ import annotations

import contextlib
import csv
import gc
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from services.rewards.money import text

TITLE = "多货少货协查登记表"
ROW_COLUMNS = (
    ("no", "序号"), ("report_ref", "上报编号"), ("branch_id", "上报分公司"), ("reported_by", "上报人"),
    ("goods_name", "货名"), ("window", "窗口"), ("clearance_date", "清仓日期"), ("category", "货物类别"),
    ("reviewer", "审核人"), ("reviewed_at", "审核时间"), ("outcome", "审核结果"),
    ("matched_case_id", "匹配少货案件"), ("responsible", "责任分公司及比例"), ("reward", "奖励金额"),
    ("penalty_detail", "罚款明细"), ("penalty", "罚款合计"), ("report_id", "多货登记ID"),
)
TOTAL_COLUMNS = (
    ("branch_id", "分公司"), ("rewards", "奖励件数"), ("reward_total", "奖励合计"),
    ("penalties", "罚款件数"), ("penalty_total", "罚款合计"), ("net", "净额"),
)
OUTCOME = {"approved": "通过"}
# Typed by people at the branches or HQ; the other columns are ids, dates, amounts and codes.
FREE_TEXT = frozenset({"reported_by", "goods_name", "window", "category", "reviewer"})


@dataclass(frozen=True)
class Registry:
    """The annex of HQ's decision on a period: one row per approved report, totals per branch."""

    period: str
    currency: str
    decided_by: str
    decided_at: str
    review_count: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: list[dict[str, Any]] = field(default_factory=list)
    reward_total: Decimal = Decimal("0.00")
    penalty_total: Decimal = Decimal("0.00")

    def document(self) -> dict[str, Any]:
        return {
            "registry": TITLE, "period": self.period, "currency": self.currency,
            "decided_by": self.decided_by, "decided_at": self.decided_at, "review_count": self.review_count,
            "reward_total": text(self.reward_total), "penalty_total": text(self.penalty_total),
            "rows": self.rows, "totals": self.totals,
        }

    def to_json(self) -> bytes:
        """One JSON document, a row per line: readable in a diff, and quick to write for 100,000 rows."""
        head = compact({k: v for k, v in self.document().items() if k not in ("rows", "totals")})[:-1]
        rows = ",\n".join(compact(row) for row in self.rows)
        totals = ",\n".join(compact(total) for total in self.totals)
        return f'{head},"rows":[\n{rows}\n],"totals":[\n{totals}\n]}}\n'.encode()

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the JSON rendering; the decision records it so a rebuild can be compared."""
        return hashlib.sha256(self.to_json()).hexdigest()

    def to_csv(self, timezone: str = "Asia/Shanghai") -> bytes:
        """UTF-8 with a byte-order mark and CRLF, so Excel shows the Chinese text as it is."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([TITLE, self.period])
        writer.writerow(["决定人", cell(self.decided_by)])
        writer.writerow(["决定时间", local(self.decided_at, timezone)])
        writer.writerow(["审核通过件数", self.review_count])
        writer.writerow(["币种", self.currency])
        writer.writerow([])
        writer.writerow([label for _, label in ROW_COLUMNS])
        for row in self.rows:
            writer.writerow(csv_row(row, timezone))
        writer.writerow([])
        writer.writerow([label for _, label in TOTAL_COLUMNS])
        for total in self.totals:
            writer.writerow([total[key] for key, _ in TOTAL_COLUMNS])
        writer.writerow(["合计", sum(t["rewards"] for t in self.totals), text(self.reward_total),
                         sum(t["penalties"] for t in self.totals), text(self.penalty_total),
                         text(self.reward_total - self.penalty_total)])
        return ("\ufeff" + out.getvalue()).encode("utf-8")


@dataclass(frozen=True)
class LedgerView:
    """What the registry needs of a ledger: its credits (the rows) and its totals."""

    branch_id: str
    credits: list[dict[str, Any]]  # the fields of each Ledger.Credited
    rewards: int
    reward_total: Decimal
    penalties: int
    penalty_total: Decimal

    @classmethod
    def of(cls, ledger: Any) -> LedgerView:
        """From a ledger aggregate, as the decision sees it."""
        return cls(ledger.branch_id, [vars(credit) for credit in ledger.credits.values()], len(ledger.credits),
                   ledger.reward_total, len(ledger.debits), ledger.penalty_total)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection while a registry is built or written."""
    # Its rows are hundreds of thousands of young objects, none of them garbage: the
    # collector's passes over them would double the time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one encoder for 100,000 rows


def compact(value: Any) -> str:
    return _COMPACT.encode(value)


def build_registry(period: str, currency: str, decision: dict[str, Any], ledgers: Iterable[LedgerView]) -> Registry:
    """Rows from the credits (each carries its report's facts and penalty split), totals from the ledgers."""
    rows: list[dict[str, Any]] = []
    totals: list[dict[str, Any]] = []
    reward_total = penalty_total = Decimal("0.00")
    for ledger in sorted(ledgers, key=lambda item: item.branch_id):
        rows.extend(registry_row(ledger.branch_id, credit) for credit in ledger.credits)
        totals.append({
            "branch_id": ledger.branch_id, "rewards": ledger.rewards, "reward_total": text(ledger.reward_total),
            "penalties": ledger.penalties, "penalty_total": text(ledger.penalty_total),
            "net": text(ledger.reward_total - ledger.penalty_total),
        })
        reward_total += ledger.reward_total
        penalty_total += ledger.penalty_total
    rows.sort(key=lambda row: (row["branch_id"], row["report_ref"], row["report_id"]))
    for number, row in enumerate(rows, start=1):
        row["no"] = number
    return Registry(period=period, currency=currency, decided_by=decision["decided_by"],
                    decided_at=decision["decided_at"], review_count=decision["review_count"],
                    rows=rows, totals=totals, reward_total=reward_total, penalty_total=penalty_total)


def registry_row(branch_id: str, credit: dict[str, Any]) -> dict[str, Any]:
    """One row from a credit's fields, its keys in ROW_COLUMNS order (the JSON keeps that order)."""
    penalties = credit["penalties"]
    penalty = sum((Decimal(p["amount"]) for p in penalties), Decimal("0.00"))
    return {
        "no": 0, "report_ref": credit["report_ref"], "branch_id": branch_id, "reported_by": credit["reported_by"],
        "goods_name": credit["goods_name"], "window": credit["window"], "clearance_date": credit["clearance_date"],
        "category": credit["category"], "reviewer": credit["reviewer"], "reviewed_at": credit["reviewed_at"],
        "outcome": "approved", "matched_case_id": credit["matched_case_id"],
        "responsible": [{"branch_id": b["branch_id"], "share": b["share"]} for b in credit["responsible_branches"]],
        "reward": credit["amount"],
        "penalty_detail": [{"branch_id": p["branch_id"], "amount": p["amount"]} for p in penalties],
        "penalty": text(penalty), "report_id": credit["report_id"],
    }


def csv_row(row: dict[str, Any], timezone: str) -> list[Any]:
    flat = dict(row)
    flat["reviewed_at"] = local(row["reviewed_at"], timezone)
    flat["outcome"] = OUTCOME.get(row["outcome"], row["outcome"])
    flat["responsible"] = "; ".join(f"{b['branch_id']} {b['share']}" for b in row["responsible"])
    flat["penalty_detail"] = "; ".join(f"{p['branch_id']} {p['amount']}" for p in row["penalty_detail"])
    flat["matched_case_id"] = row["matched_case_id"] or ""
    return [cell(flat[key]) if key in FREE_TEXT else flat[key] for key, _ in ROW_COLUMNS]


def cell(value: Any) -> str:
    """Text as Excel should show it: never read as a formula (a leading =, +, - or @ is quoted)."""
    content = "" if value is None else str(value)
    return "'" + content if content[:1] in ("=", "+", "-", "@", "\t", "\r") else content


def local(moment: str, timezone: str) -> str:
    """An ISO time as HQ reads it, in a form Excel takes for a date and time."""
    return datetime.fromisoformat(moment).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")
