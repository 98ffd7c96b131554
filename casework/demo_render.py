"""The demo told for a newcomer: each step at its virtual time, what subscribers saw, the registry, the audit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from casework.audit_render import render_verification
from casework.demo_story import Step
from casework.demo_world import POLICY, ZONE, Seen
from services.rewards.registry import Registry
from shared.policy import Policy


def local(moment: str | datetime) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(ZONE)


def hhmm(moment: str | datetime) -> str:
    return local(moment).strftime("%H:%M")


class Narrator:
    """Prints the story as it happens; remembers the day so each new one gets a heading."""

    def __init__(self, console: Console, policy: Policy, refs: dict[str, str]) -> None:
        self.console = console
        self.policy = policy
        self.refs = refs  # stream id -> case or report ref, for people
        self.day: date | None = None

    def _at(self, moment: str | datetime, text: str) -> None:
        when = local(moment)
        if when.date() != self.day:
            self.day = when.date()
            self.console.rule(f"[bold]{when:%A} {when.day} {when:%B %Y}[/bold]", align="left")
        self._row(f"[cyan]{when:%H:%M}[/cyan]", text)

    def _row(self, left: str, text: str, width: int = 5) -> None:
        """A line whose text wraps under itself, not under the time."""
        grid = Table.grid(padding=(0, 2))
        grid.add_column(width=width, no_wrap=True)
        grid.add_column()
        grid.add_row(left, text)
        self.console.print(grid)

    def header(self, lines: list[str]) -> None:
        self.console.rule("[bold]casework demo[/bold]: the customer-service handbook's story, in seconds")
        for line in lines:
            self._row("•", escape(line), width=1)

    def section(self, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{escape(title)}[/bold]", align="left")

    def say(self, text: str) -> None:
        self._row("", f"[italic]{escape(text)}[/italic]")

    def step(self, moment: datetime, step: Step, speaker: str) -> None:
        self._at(moment, f"[bold]{escape(step.actor.name)}[/bold] {escape(step.says)}")
        self._row("", f"[dim]sends {step.command} as RabbitMQ user {escape(speaker)}[/dim]")

    def outcome(self, outcome: dict[str, Any] | None) -> None:
        if outcome is None:
            self._row("", "[red]✗ no outcome came back[/red]")
        elif outcome["status"] == "accepted":
            ref = self.refs.get(str(outcome.get("stream_id")), "")
            where = f" → {ref} v{outcome['version']}" if ref and outcome.get("version") else ""
            self._row("", f"[green]✓ accepted[/green]{escape(where)}")
        else:
            error = outcome.get("error") or {}
            self._row("", f"[red]✗ {outcome['status']}: {error.get('code')}: "
                          f"{escape(str(error.get('message')))}[/red]")

    # -- what subscribers saw --------------------------------------------------------------------
    def heard(self, messages: list[Seen]) -> None:
        for seen in messages:
            if seen.exchange == "casework.escalations":
                self._notice(seen)
            elif seen.exchange == "casework.dead":
                self._row("", f"[red]✗ dead-lettered: {escape(seen.routing_key)}[/red]")
            elif seen.exchange == "casework.events":
                self._event(seen)

    def _notice(self, seen: Seen) -> None:
        body = seen.body
        key = escape(seen.routing_key)
        if seen.routing_key.startswith("warning."):
            self._at(body["warned_at"], f"[yellow]⚑ {key}[/yellow]  {escape(body['case_ref'])}: "
                                        f"{body['stage']} is due at {hhmm(body['due_at'])} (a reminder to the branch)")
            return
        reason = body.get("reason")
        why = (f"{reason['stage']} overdue since {hhmm(reason['due_at'])}" if isinstance(reason, dict)
               else escape(str(reason)))
        level = body["level"]
        to = {"branch": f"{body['branch_id']}'s branch head",
              "regional": self.policy.organisation.regions[body["region_id"]].name,
              "hq": self.policy.organisation.departments.get(body["department"], body["department"])}[level]
        self._at(body["escalated_at"], f"[magenta]▲ escalation notice {key}[/magenta]  "
                                       f"{escape(body['case_ref'])} ({body['category']}) climbs to {level}: {why}")
        self._row("", f"[dim]heard by {escape(to)}, subscribed to casework.escalations {key}[/dim]")

    def _event(self, seen: Seen) -> None:
        body, event = seen.body, str(seen.body.get("event", ""))
        branch = body.get("branch_id", "")
        lines = {
            "complaint.goods_located": f"{self.refs.get(str(body.get('stream_id')), 'the case')} learns its goods "
                                       f"were found by {body.get('reporting_branch')}",
            "ledger.credited": f"{branch}'s ledger: reward +{body.get('amount')} for {body.get('report_ref')}",
            "ledger.debited": f"{branch}'s ledger: penalty −{body.get('amount')} "
                              f"(share {body.get('share')} of {body.get('report_ref')})",
            "ledger.decided": f"{branch}'s ledger decided: rewards {body.get('reward_total')}, "
                              f"penalties {body.get('penalty_total')}, net {body.get('net')}",
            "ledger.settled": f"{branch}'s ledger settled: {body.get('kind')} {body.get('amount')}",
        }
        if event in lines:
            self._row("", f"[blue]{escape(seen.routing_key)}[/blue]  {escape(lines[event])}")

    # -- the month, the audit ----------------------------------------------------------------------
    def registry(self, registry: Registry, digest_ok: bool) -> None:
        self.section(f"多货少货协查登记表: the surplus/shortage registry of {registry.period}")
        table = Table(show_lines=False)
        for title in ("序号\nno", "上报编号\nreport", "上报分公司\nby", "货名\ngoods", "匹配少货案件\nmatches case",
                      "责任分公司\nresponsible", "奖励金额\nreward", "罚款合计\npenalty"):
            # References stay whole; the goods' description may wrap.
            table.add_column(title, no_wrap="货名" not in title)
        for row in registry.rows:
            table.add_row(str(row["no"]), row["report_ref"], row["branch_id"], row["goods_name"],
                          self.refs.get(str(row["matched_case_id"]), str(row["matched_case_id"] or "")),
                          "; ".join(f"{b['branch_id']} ×{b['share']}" for b in row["responsible"]),
                          row["reward"], row["penalty"])
        self.console.print(table)
        totals = Table()
        for title in ("分公司\nbranch", "奖励件数\nrewards", "奖励合计\nreward total", "罚款件数\npenalties",
                      "罚款合计\npenalty total", "净额\nnet"):
            totals.add_column(title, justify="right")
        for total in registry.totals:
            totals.add_row(total["branch_id"], str(total["rewards"]), total["reward_total"], str(total["penalties"]),
                           total["penalty_total"], total["net"])
        self.console.print(totals)
        check = "matches" if digest_ok else "[red]does NOT match[/red]"
        self.console.print(f"decided by {escape(registry.decided_by)} at {local(registry.decided_at):%Y-%m-%d %H:%M}; "
                           f"{registry.review_count} approved report(s); the registry {check} the digest its "
                           "decision recorded")

    def timeline(self, story: dict[str, Any], title: str) -> None:
        self.section(title)
        table = Table()
        for column in ("v", "happened", "event", "by", "what", "chain"):
            table.add_column(column, overflow="fold")
        for row in story["events"]:
            table.add_row(str(row["version"]), f"{local(row['occurred_at']):%a %d %b %H:%M}",
                          row["event"].removeprefix("complaint."), escape(str(row["principal"])),
                          escape(describe(row)), "ok" if row["chain_ok"] else "[red]BROKEN[/red]")
        self.console.print(table)
        head = story["head"]
        self.console.print(f"head: version {head['version']}, hash {head['hash'][:16]}…")

    def verification(self, result: dict[str, Any]) -> None:
        render_verification(self.console, result)

    def summary(self, checks: list[tuple[str, bool]], elapsed: float) -> None:
        self.section("What the story showed")
        for fact, held in checks:
            mark = "[green]✓[/green]" if held else "[red]✗[/red]"
            self.console.print(f"{mark} {escape(fact)}")
        verdict = "[green]every fact held[/green]" if all(h for _, h in checks) else "[red]a fact did NOT hold[/red]"
        self.console.print(f"\n{verdict}; played in {elapsed:.1f} s of real time")

    def look_around(self, database_url: str, case_id: str, period: str) -> None:
        self.section("Look around")
        self.console.print(f"export CASEWORK_DATABASE_URL={database_url}")
        self.console.print(f"export CASEWORK_POLICY={POLICY}")
        self.console.print(f"casework audit timeline {case_id}")
        self.console.print(f"casework rewards registry {period} --format csv")
        self.console.print("casework audit verify --all      [dim]# names the altered record[/dim]")


def describe(row: dict[str, Any]) -> str:
    """One line per event of a case, for people."""
    fields = row["fields"]
    kind = row["event"].removeprefix("complaint.")
    if kind == "received":
        return f"{fields['category']}, waybill {fields['waybill_no']}, claimed {fields.get('claimed_amount')}"
    if kind == "escalated":
        reason = fields.get("reason")
        why = f"{reason['stage']} overdue" if isinstance(reason, dict) else str(reason)
        whom = {"branch": row["branch_id"], "regional": fields.get("region_id"), "hq": fields.get("department")}
        return f"to {fields['level']} ({whom.get(fields['level'])}): {why}"
    if kind == "goods_located":
        return f"goods found by {fields['reporting_branch']} (surplus report)"
    if kind == "verified":
        return str(fields.get("summary"))
    if kind == "remediated":
        return str(fields.get("action"))
    if kind == "closed":
        return str(fields.get("resolution"))
    return ", ".join(f"{k}: {v}" for k, v in fields.items())
