"""Write deploy/rabbitmq/definitions.json: casework's vhost, topology, users and permissions.

Run `python deploy/rabbitmq/generate_definitions.py` after changing the organisation or the
permission scheme, and commit both files; tests/integration/test_definitions.py checks that
the JSON still matches this script and that the broker enforces what it says.

Stdlib only, so it runs without the project installed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

VHOST = "casework"

BRANCHES = {"GZ01": "south", "SZ02": "south", "SH01": "east", "HZ03": "east", "UR01": "west"}
REGIONS = ("south", "east", "west")
DEPARTMENTS = ("warehousing", "claims", "operations", "customer_service", "settlement")
SERVICES = ("intake", "escalation", "rewards")

COMMANDS = "casework.commands"
EVENTS = "casework.events"
ESCALATIONS = "casework.escalations"
DEAD = "casework.dead"
# Bound only by the services' own queues: how the relays reach them past a subscriber's
# queue that keeps refusing (shared.relay). Nobody else may read or write it.
SERVICES_EXCHANGE = "casework.services"

# Complaint commands that follow a case up the ladder; registering one (`complaint.receive`)
# is the branch's job.
FOLLOW_UP = "complaint\\.(verify|hand_over|escalate|remediate|close|reopen|await_customer|resume)"
# Extra commands per HQ department (the handbook: warehousing reviews surplus reports and
# decides the month; the settlement centre pays out).
DEPARTMENT_COMMANDS = {
    "warehousing": ("surplus\\.review", "rewards\\.decide_period"),
    "settlement": ("rewards\\.settle_period",),
}
# Events an HQ department may follow besides its own command outcomes: warehousing reviews
# surplus reports, the settlement centre pays out what a period's decision says.
DEPARTMENT_EVENTS = {
    "warehousing": ("(surplus|period)\\.(#|[a-z_*]+\\.[A-Za-z0-9*#]+)",),
    "settlement": ("(ledger|period)\\.(#|[a-z_*]+\\.[A-Za-z0-9*#]+)",),
}
OUTCOMES = "command\\.(\\*|accepted|rejected|duplicate)"
NOTHING = "^$"  # a regex that only matches the empty name: no access

QUORUM_WITH_DEAD_LETTERS = {
    "x-queue-type": "quorum",
    "x-delivery-limit": 20,
    "x-dead-letter-exchange": DEAD,
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


def esc(name: str) -> str:
    """Escape a resource or user name for a regex (names use only [A-Za-z0-9_.-])."""
    return name.replace(".", "\\.")


def anchored(*alternatives: str) -> str:
    return "^(" + "|".join(alternatives) + ")$"


def password_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def dev_user(name: str, tags: tuple[str, ...] = ()) -> dict[str, object]:
    """A user whose development password is its own name (production replaces every hash)."""
    salt = hashlib.sha256(b"casework-dev-salt:" + name.encode()).digest()[:4]
    return {
        "name": name,
        "password_hash": password_hash(name, salt),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": list(tags),
        "limits": {},
    }


def permission(user: str, configure: str, write: str, read: str) -> dict[str, str]:
    return {"user": user, "vhost": VHOST, "configure": configure, "write": write, "read": read}


def topic(user: str, exchange: str, write: str = NOTHING, read: str = NOTHING) -> dict[str, str]:
    return {"user": user, "vhost": VHOST, "exchange": exchange, "write": write, "read": read}


def subscriber(
    user: str, own_queues: str, commands: str, events: str, escalations: str
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A person-facing user: publishes commands, reads through queues it declares itself.

    Server-named queues (amq.gen-*) are allowed too; their random names are the only thing
    keeping them private, so subscribers declare them exclusive.
    """
    mine = f"amq\\.gen-.*|{own_queues}"
    perm = permission(
        user,
        configure=anchored(mine),
        write=anchored(esc(COMMANDS), mine),
        read=anchored(esc(EVENTS), esc(ESCALATIONS), mine),
    )
    topics = [
        topic(user, COMMANDS, write=commands),
        topic(user, EVENTS, read=events),
        topic(user, ESCALATIONS, read=escalations),
    ]
    return perm, topics


def people() -> tuple[list, list, list]:
    users, perms, topics = [], [], []

    def add(user: str, perm: dict, user_topics: list) -> None:
        users.append(dev_user(user))
        perms.append(perm)
        topics.extend(user_topics)

    for branch in BRANCHES:
        user = f"branch-{branch}"
        add(
            user,
            *subscriber(
                user,
                own_queues=f"casework\\.client\\.{esc(user)}\\..+",
                commands=anchored("complaint\\.[a-z_]+", "surplus\\.report"),
                events=anchored(
                    f"{OUTCOMES}\\.{esc(user)}",
                    f"(complaint|surplus|ledger)\\.(\\*|[a-z_]+)\\.{branch}",
                ),
                escalations=f"^(branch|warning)\\.{branch}$",
            ),
        )
    for department in DEPARTMENTS:
        user = f"hq-{department}"
        add(
            user,
            *subscriber(
                user,
                own_queues=f"casework\\.sub\\.{esc(user)}\\..+",
                commands=anchored(FOLLOW_UP, *DEPARTMENT_COMMANDS.get(department, ())),
                events=anchored(f"{OUTCOMES}\\.{esc(user)}", *DEPARTMENT_EVENTS.get(department, ())),
                escalations=f"^hq\\.{department}$",
            ),
        )
    for region in REGIONS:
        user = f"regional-{region}"
        add(
            user,
            *subscriber(
                user,
                own_queues=f"casework\\.sub\\.{esc(user)}\\..+",
                commands=anchored(FOLLOW_UP),
                events=anchored(f"{OUTCOMES}\\.{esc(user)}"),
                escalations=f"^regional\\.{region}$",
            ),
        )
    return users, perms, topics


def services() -> tuple[list, list, list]:
    """The three services: each declares, binds, consumes and publishes only its own part."""
    users = [dev_user(f"svc-{name}") for name in SERVICES]
    any_binding = "[a-z_*#]+(\\.[A-Za-z0-9*#]+)?"  # a binding key under one stream prefix
    branch_key = "[A-Za-z0-9_-]+"
    perms = [
        # Intake: consumes commands, dead-letters, publishes events, notices and replies
        # (replies go through the default exchange, which permissions call amq.default).
        # It also re-declares the contract's whole topology at start-up (shared.topology):
        # configure on its names, write on the queues and read on the exchanges it binds.
        # Its relay writes to casework.services what a subscriber's queue keeps refusing.
        # Re-declaring an existing queue is all it can do to the other services' queues:
        # it has no read on them, so it can neither consume them nor create them anew with
        # dead-lettering.
        permission(
            "svc-intake",
            configure="^casework\\.(commands|events|escalations|dead|services|intake|escalation|rewards)$",
            write="^(amq\\.default|casework\\.(events|escalations|dead|services|intake|escalation|rewards))$",
            read="^casework\\.(commands|events|dead|services|intake)$",
        ),
        # Escalation: consumes complaint events (bound on casework.events and casework.services);
        # sends complaint.escalate and warnings.
        permission(
            "svc-escalation",
            configure="^casework\\.(escalation|events|services|commands|escalations)$",
            write="^casework\\.(escalation|commands|escalations|dead)$",
            read="^casework\\.(escalation|events|services)$",
        ),
        # Rewards: consumes surplus, complaint and period events (bound on casework.events and
        # casework.services); publishes its ledger events, which no service's queue takes.
        permission(
            "svc-rewards",
            configure="^casework\\.(rewards|events|services)$",
            write="^casework\\.(rewards|events|dead)$",
            read="^casework\\.(rewards|events|services)$",
        ),
    ]
    topics = [
        topic("svc-intake", COMMANDS, read="^#$"),
        topic(
            "svc-intake",
            EVENTS,
            read="^(complaint|surplus|period)\\.#$",  # the service queues' bindings
            write=anchored(
                f"(complaint|surplus|period)\\.[a-z_]+\\.{branch_key}",
                f"command\\.(accepted|rejected|duplicate)\\.{branch_key}",
            ),
        ),
        topic(
            "svc-intake",
            SERVICES_EXCHANGE,
            read="^(complaint|surplus|period)\\.#$",
            write=f"^(complaint|surplus|period)\\.[a-z_]+\\.{branch_key}$",
        ),
        topic("svc-intake", ESCALATIONS, write=f"^(branch|regional|hq)\\.{branch_key}$"),
        topic("svc-escalation", COMMANDS, write="^complaint\\.escalate$"),
        topic("svc-escalation", EVENTS, read=f"^complaint\\.{any_binding}$"),
        topic("svc-escalation", SERVICES_EXCHANGE, read=f"^complaint\\.{any_binding}$"),
        topic("svc-escalation", ESCALATIONS, write=f"^warning\\.{branch_key}$"),
        topic(
            "svc-rewards",
            EVENTS,
            write=f"^(ledger|rewards)\\.[a-z_]+\\.{branch_key}$",
            read=f"^(surplus|complaint|period)\\.{any_binding}$",
        ),
        topic("svc-rewards", SERVICES_EXCHANGE, read=f"^(surplus|complaint|period)\\.{any_binding}$"),
    ]
    return users, perms, topics


def topology() -> dict[str, list]:
    def exchange(name: str, kind: str) -> dict:
        return {
            "name": name,
            "vhost": VHOST,
            "type": kind,
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }

    def queue(name: str, arguments: dict) -> dict:
        return {
            "name": name,
            "vhost": VHOST,
            "durable": True,
            "auto_delete": False,
            "arguments": dict(arguments),
        }

    def binding(source: str, destination: str, key: str) -> dict:
        return {
            "source": source,
            "vhost": VHOST,
            "destination": destination,
            "destination_type": "queue",
            "routing_key": key,
            "arguments": {},
        }

    return {
        "exchanges": [
            exchange(COMMANDS, "topic"),
            exchange(EVENTS, "topic"),
            exchange(ESCALATIONS, "topic"),
            exchange(DEAD, "fanout"),
            exchange(SERVICES_EXCHANGE, "topic"),
        ],
        "queues": [
            queue("casework.intake", QUORUM_WITH_DEAD_LETTERS),
            queue("casework.escalation", QUORUM_WITH_DEAD_LETTERS),
            queue("casework.rewards", QUORUM_WITH_DEAD_LETTERS),
            queue(DEAD, {"x-queue-type": "quorum"}),
        ],
        "bindings": [
            binding(COMMANDS, "casework.intake", "#"),
            binding(EVENTS, "casework.escalation", "complaint.#"),
            binding(EVENTS, "casework.rewards", "complaint.#"),
            binding(EVENTS, "casework.rewards", "surplus.#"),
            binding(EVENTS, "casework.rewards", "period.#"),
            binding(SERVICES_EXCHANGE, "casework.escalation", "complaint.#"),
            binding(SERVICES_EXCHANGE, "casework.rewards", "complaint.#"),
            binding(SERVICES_EXCHANGE, "casework.rewards", "surplus.#"),
            binding(SERVICES_EXCHANGE, "casework.rewards", "period.#"),
            binding(DEAD, DEAD, ""),
        ],
    }


def definitions() -> dict[str, object]:
    person_users, person_perms, person_topics = people()
    service_users, service_perms, service_topics = services()
    admin = dev_user("admin", tags=("administrator",))
    return {
        "rabbit_version": "3.10.8",
        "rabbitmq_version": "3.10.8",
        "vhosts": [{"name": VHOST, "limits": [], "metadata": {"description": "casework", "tags": []}}],
        "users": [*person_users, *service_users, admin],
        "permissions": [*person_perms, *service_perms, permission("admin", ".*", ".*", ".*")],
        "topic_permissions": [*person_topics, *service_topics],
        "parameters": [],
        "global_parameters": [],
        # Queues a branch system declares for itself go away after 30 days unused and never
        # hold more than 100,000 messages (oldest dropped first): what they carry is also in
        # the event store.
        "policies": [
            {
                "vhost": VHOST,
                "name": "casework-client-queues",
                "pattern": "^casework\\.client\\.",
                "apply-to": "queues",
                "priority": 0,
                "definition": {"expires": 30 * 24 * 3600 * 1000, "max-length": 100_000},
            }
        ],
        **topology(),
    }


def render() -> str:
    return json.dumps(definitions(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    target = Path(__file__).with_name("definitions.json")
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
