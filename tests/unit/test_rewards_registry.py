"""The registry (多货少货协查登记表): exact bytes for Excel and JSON, the same again after any rebuild."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.rewards.cli import rewards_app
from services.rewards.rebuild import rebuild
from shared.policy import load_policy
from tests.unit.test_rewards_helpers import THIRDS, World, decided_world, fed, rewards

R1, R2, R3 = ("cce97b33-137e-5d37-9271-2474bff1af87", "754b434f-0d9d-56de-bb72-bc7891c49169",
              "7fd4328e-ede2-55ad-a640-0b8b137d4d83")
CASE = "5d2938b9-6b96-54c7-b8dc-c5efcd86a08f"
EXPECTED_CSV = (
    "\ufeff多货少货协查登记表,2026-11\r\n"
    "决定人,钱主任\r\n"
    "决定时间,2026-11-10 10:00:00\r\n"
    "审核通过件数,3\r\n"
    "币种,CNY\r\n"
    "\r\n"
    "序号,上报编号,上报分公司,上报人,货名,窗口,清仓日期,货物类别,审核人,审核时间,审核结果,匹配少货案件,"
    "责任分公司及比例,奖励金额,罚款明细,罚款合计,多货登记ID\r\n"
    f"1,R-1,GZ01,王五,电饭煲,3号窗口,2026-11-09,,赵专员,2026-11-10 10:00:00,通过,{CASE},"
    "SZ02 0.3333333333; SH01 0.3333333333; HZ03 0.3333333334,200.00,"
    f"SZ02 66.66; SH01 66.67; HZ03 66.67,200.00,{R1}\r\n"
    f"2,R-2,GZ01,王五,电饭煲,3号窗口,2026-11-09,,赵专员,2026-11-10 10:00:00,通过,,"
    f"SZ02 1,200.00,SZ02 200.00,200.00,{R2}\r\n"
    f"3,R-3,SH01,周六,羽绒服,3号窗口,2026-11-09,,赵专员,2026-11-10 10:00:00,通过,,,200.00,,0.00,{R3}\r\n"
    "\r\n"
    "分公司,奖励件数,奖励合计,罚款件数,罚款合计,净额\r\n"
    "GZ01,2,400.00,0,0.00,400.00\r\n"
    "HZ03,0,0.00,1,66.67,-66.67\r\n"
    "SH01,1,200.00,1,66.67,133.33\r\n"
    "SZ02,0,0.00,2,266.66,-266.66\r\n"
    "合计,3,600.00,4,400.00,200.00\r\n"
)


def test_the_csv_is_utf8_with_a_bom_crlf_and_the_exact_rows() -> None:
    registry = fed(decided_world().messages()).registry("2026-11")

    assert registry is not None
    assert registry.to_csv("Asia/Shanghai") == EXPECTED_CSV.encode("utf-8")


def test_the_json_lists_rows_totals_and_the_decision() -> None:
    registry = fed(decided_world().messages()).registry("2026-11")
    assert registry is not None

    data = registry.to_json()
    document = json.loads(data)

    assert data.endswith(b"}\n") and "钱主任".encode() in data  # Chinese as it is, not \u escapes
    assert {k: document[k] for k in ("registry", "period", "currency", "decided_by", "decided_at", "review_count",
                                     "reward_total", "penalty_total")} == {
        "registry": "多货少货协查登记表", "period": "2026-11", "currency": "CNY", "decided_by": "钱主任",
        "decided_at": "2026-11-10T02:00:00+00:00", "review_count": 3,
        "reward_total": "600.00", "penalty_total": "400.00"}
    assert document["rows"][0] == {
        "no": 1, "report_ref": "R-1", "branch_id": "GZ01", "reported_by": "王五", "goods_name": "电饭煲",
        "window": "3号窗口", "clearance_date": "2026-11-09", "category": None, "reviewer": "赵专员",
        "reviewed_at": "2026-11-10T02:00:00+00:00", "outcome": "approved", "matched_case_id": CASE,
        "responsible": [{"branch_id": b, "share": s} for b, s in THIRDS.items()], "reward": "200.00",
        "penalty_detail": [{"branch_id": "SZ02", "amount": "66.66"}, {"branch_id": "SH01", "amount": "66.67"},
                           {"branch_id": "HZ03", "amount": "66.67"}],
        "penalty": "200.00", "report_id": R1}
    assert [t["net"] for t in document["totals"]] == ["400.00", "-66.67", "133.33", "-266.66"]


def test_text_that_excel_would_run_as_a_formula_is_quoted() -> None:
    world = World()
    world.review(world.report(goods="=HYPERLINK(\"http://x\")", reported_by="@王五"))
    world.decide()

    csv = fed(world.messages()).registry("2026-11").to_csv().decode("utf-8-sig")

    assert ",'@王五,\"'=HYPERLINK(\"\"http://x\"\")\",3号窗口," in csv


def test_an_empty_period_has_a_registry_with_no_rows() -> None:
    world = World()
    world.decide()

    registry = fed(world.messages()).registry("2026-11")

    assert registry is not None and registry.rows == [] and registry.totals == []


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, World]:
    """Intake and rewards on SQLite files, rewards fed with intake's whole history."""
    url = f"sqlite:///{tmp_path}/casework.sqlite3"
    world = decided_world(url)
    world.settle()
    fed(world.messages(), url=url).close()
    return url, world


def test_replaying_the_rewards_store_gives_the_same_registry_bytes(stores: tuple[str, World]) -> None:
    url, world = stores
    live = fed(world.messages()).registry("2026-11")

    replayed = rewards(url=url).registry("2026-11")  # a new process: nothing cached, all from the store

    assert live is not None and replayed is not None
    assert (replayed.to_csv(), replayed.to_json()) == (live.to_csv(), live.to_json())


def test_rebuilding_from_intakes_history_gives_the_recorded_registry(stores: tuple[str, World]) -> None:
    url, _ = stores
    recorded = rewards(url=url)

    rebuilt = rebuild(load_policy(), url)

    assert rebuilt.registry("2026-11").to_csv() == recorded.registry("2026-11").to_csv()
    assert rebuilt.book("2026-11").digest == recorded.book("2026-11").digest != ""


def test_the_cli_writes_the_registry_and_checks_a_rebuild(stores: tuple[str, World], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = stores
    monkeypatch.setenv("CASEWORK_DATABASE_URL", url)
    runner = CliRunner()

    written = runner.invoke(rewards_app, ["registry", "2026-11", "--format", "csv", "-o", str(tmp_path / "r.csv")])
    printed = runner.invoke(rewards_app, ["registry", "2026-11", "--format", "json"])
    checked = runner.invoke(rewards_app, ["rebuild", "2026-11", "--digest"])
    missing = runner.invoke(rewards_app, ["registry", "2026-10"])

    assert written.exit_code == 0, written.output
    assert (tmp_path / "r.csv").read_bytes() == EXPECTED_CSV.encode("utf-8")
    assert json.loads(printed.stdout_bytes)["period"] == "2026-11"
    assert checked.exit_code == 0, checked.output
    assert missing.exit_code == 1
