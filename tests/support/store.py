"""Look straight into the intake event store, to count what was really recorded."""

from __future__ import annotations

from collections import Counter

import psycopg


def event_counts(database_url: str) -> Counter[str]:
    """Recorded events by type name (e.g. 'Complaint.Received'), from the database itself."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT topic, count(*) FROM casework_events GROUP BY topic").fetchall()
    return Counter({topic.split(":")[-1]: count for topic, count in rows})


def received_streams(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT originator_id) FROM casework_events WHERE topic LIKE %s",
            ("%Complaint.Received",)).fetchone()
    return int(row[0]) if row else 0


def inserts_waiting(database_url: str) -> int:
    """Sessions waiting for a lock on the events table: a batch's insert held mid-commit."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                           ("casework_events",)).fetchone()
    return int(row[0]) if row else 0
