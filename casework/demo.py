"""`casework demo`: the handbook's whole story, played by the real services on a virtual clock."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any
from uuid import UUID

import aio_pika
from rich.console import Console
from rich.markup import escape

from casework.audit import timeline
from casework.audit_verify import verify
from casework.demo_facts import case_facts, checks, gather, registry_facts
from casework.demo_render import Narrator
from casework.demo_store import Store, StoreUnusable, alter_field, given_store, scratch_store
from casework.demo_story import (
    DAMAGE_CASE,
    DAMAGE_REF,
    INTERLUDES,
    PERIOD,
    SHORTAGE_CASE,
    SHORTAGE_REF,
    STEPS,
    SURPLUS_REF,
    SURPLUS_REPORT,
)
from casework.demo_transport import BrokerInUse, InProcess, Rabbit
from casework.demo_world import POLICY, START, Transport, World
from services.rewards.application import RewardsApplication
from services.rewards.registry import Registry
from shared.policy import Policy

REFS = {DAMAGE_CASE: DAMAGE_REF, SHORTAGE_CASE: SHORTAGE_REF, SURPLUS_REPORT: SURPLUS_REF}


def run_demo(amqp_url: str | None = None, database_url: str | None = None, as_json: bool = False) -> int:
    """Play the story; 0 when every key fact held, 1 when one did not, 2 when it could not be played here."""
    # With --json the facts are stdout's only content; the story goes to stderr.
    console = Console(stderr=as_json, highlight=False,
                      width=None if (sys.stderr if as_json else sys.stdout).isatty() else 110)
    try:
        facts = asyncio.run(play(console, amqp_url, database_url))
    except (BrokerInUse, StoreUnusable, aio_pika.exceptions.AMQPConnectionError, OSError) as error:
        console.print(f"[red]cannot play the demo here:[/red] {escape(str(error))}")
        return 2
    except (TimeoutError, RuntimeError) as error:  # a service stopped, or never settled
        console.print(f"[red]the story stopped:[/red] {escape(str(error))}")
        return 1
    if as_json:
        sys.stdout.write(json.dumps(facts, ensure_ascii=False, indent=2) + "\n")
    return 0 if facts["ok"] else 1


async def play(console: Console, amqp_url: str | None, database_url: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    store = given_store(database_url) if database_url else scratch_store()
    transport: Transport = Rabbit(amqp_url) if amqp_url else InProcess()
    world = World(transport, store.url)
    narrator = Narrator(console, world.policy, REFS)
    narrator.header(introduction(transport, store))
    try:
        await world.start()
        registry = await tell(world, narrator, transport)
    finally:
        await world.stop()
    cipher = os.environ.get("CASEWORK_CIPHER_KEY") or None
    shortage = await asyncio.to_thread(timeline, store.url, UUID(SHORTAGE_CASE), cipher)
    damage = await asyncio.to_thread(timeline, store.url, UUID(DAMAGE_CASE), cipher)
    narrator.timeline(shortage, f"casework audit timeline {SHORTAGE_CASE}  ({SHORTAGE_REF}, SZ02's shortage)")

    narrator.section("casework audit verify --all: recompute every hash chain from the stored records")
    before = (await asyncio.to_thread(verify, store.url, None, None, cipher)).as_json()
    narrator.verification(before)
    narrator.section("Someone with write access to the database alters one stored record")
    altered = await asyncio.to_thread(alter_field, store.url, SHORTAGE_CASE, 1, "claimed_amount")
    narrator.say(f"Version {altered.version} of {SHORTAGE_REF}: {altered.field} {altered.before} → {altered.after}, "
                 "one byte of the stored record, changed in place with SQL.")
    after = (await asyncio.to_thread(verify, store.url, None, None, cipher)).as_json()
    narrator.verification(after)

    facts = gather(world, {"damage": case_facts(damage, DAMAGE_REF), "shortage": case_facts(shortage, SHORTAGE_REF)},
                   registry, before, altered, after)
    held = checks(facts, len(STEPS))
    elapsed = time.perf_counter() - started
    narrator.summary(held, elapsed)
    narrator.look_around(store.url, SHORTAGE_CASE, PERIOD)
    return {"ok": all(ok for _, ok in held), "elapsed_seconds": round(elapsed, 2), "broker": transport.description,
            "store": store.url, "policy": str(POLICY),
            "virtual_time": {"start": START.isoformat(), "end": world.now().isoformat()},
            **facts, "checks": [{"fact": fact, "held": ok} for fact, ok in held]}


def introduction(transport: Transport, store: Store) -> list[str]:
    return [
        "Intake, escalation and rewards run here as `casework run` runs them, on one virtual clock.",
        f"Broker: {transport.description}.",
        f"Event store: {store.note}.",
        f"Identity: {transport.identity}.",
        f"Policy: {POLICY.name}: China office hours (08:30–12:00, 13:30–18:00); a shortage is verified within "
        "2 working hours, or climbs one rung, and one more every further 4 working hours.",
        f"The clock starts {START:%A} {START.day} {START:%B %Y}, {START:%H:%M} in Shanghai, runs three working "
        "days, then jumps to December.",
    ]


async def tell(world: World, narrator: Narrator, transport: Transport) -> dict[str, Any] | None:
    """Each step at its moment; between them the clock moves and whatever subscribers hear is told."""
    heard = 0
    registry: dict[str, Any] | None = None

    def catch_up() -> None:
        nonlocal heard
        narrator.heard(world.observer.seen[heard:])
        heard = len(world.observer.seen)

    world.cases.update({DAMAGE_CASE, SHORTAGE_CASE})
    for number, step in enumerate(STEPS):
        if number in INTERLUDES:
            narrator.say(INTERLUDES[number])
        await world.advance_to(step.at, catch_up)
        speaker = transport.speaker(step.actor.user)
        narrator.step(world.now(), step, speaker)
        message_id = await world.send(speaker, step.command, step.body)
        await world.quiet()
        narrator.outcome(world.observer.outcomes.get(message_id))
        catch_up()
        if step.command == "rewards.decide_period":
            found, digest_ok = await asyncio.to_thread(read_registry, world.policy, world.database_url, PERIOD)
            if found is not None:
                narrator.registry(found, digest_ok)
                narrator.section("Settlement (结算中心)")
            registry = registry_facts(found, digest_ok)
    return registry


def read_registry(policy: Policy, database_url: str, period: str) -> tuple[Registry | None, bool]:
    """The registry as `casework rewards registry` prints it, and whether it matches the decision's digest."""
    app = RewardsApplication(policy, database_url)
    try:
        found = app.registry(period)
        book = app.book(period)
        return found, bool(found and book and book.digest == found.digest)
    finally:
        app.close()

