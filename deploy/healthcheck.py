#!/usr/bin/env python3
"""Healthy while this container holds an established TCP connection to each given port.

casework services keep one AMQP connection open (and the store's connection pool), so a
service that lost its broker or database shows as unhealthy. Reads /proc/net/tcp{,6}: no
extra packages, no request to the broker. Usage: casework-healthcheck [PORT ...] (5672).
"""

from __future__ import annotations

import sys

ESTABLISHED = "01"


def established_remote_ports() -> set[int]:
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if len(fields) > 3 and fields[3] == ESTABLISHED:
                        ports.add(int(fields[2].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def main(argv: list[str]) -> int:
    wanted = {int(port) for port in argv} or {5672}
    missing = wanted - established_remote_ports()
    if missing:
        print(f"no established connection to port(s) {sorted(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
