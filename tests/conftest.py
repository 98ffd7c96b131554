"""Fixtures: a throwaway RabbitMQ vhost and PostgreSQL database per test, from the environment.

CASEWORK_TEST_AMQP_URL and CASEWORK_TEST_DATABASE_URL name the servers (defaults: the
local ones). Where neither is reachable and Docker is, testcontainers starts them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def amqp_server() -> Iterator[str]:
    url = os.environ.get("CASEWORK_TEST_AMQP_URL")
    if url:
        yield url
        return
    if _reachable("127.0.0.1", 5672):
        yield DEFAULT_AMQP
        return
    if shutil.which("docker"):
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            params = container.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/"
        return
    pytest.skip("no RabbitMQ: set CASEWORK_TEST_AMQP_URL")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    url = os.environ.get("CASEWORK_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _reachable("127.0.0.1", 5432):
        yield DEFAULT_PG
        return
    if shutil.which("docker"):
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15") as container:
            yield container.get_connection_url(driver=None)
        return
    pytest.skip("no PostgreSQL: set CASEWORK_TEST_DATABASE_URL")


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.fixture
def amqp_url(amqp_server: str) -> Iterator[str]:
    """A fresh vhost for one test, so queues start empty and nothing leaks between tests."""
    if not shutil.which("rabbitmqctl"):
        yield amqp_server
        return
    vhost = f"casework-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    user = urlsplit(amqp_server).username or "guest"
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    parts = urlsplit(amqp_server)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + vhost, "", ""))
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def database_url(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test."""
    name = f"casework_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(pg_server)
    yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/store.sqlite3"
