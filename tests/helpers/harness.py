"""The test harness the fixtures hand out: a bucket on a real S3 server, the running mock API,
the CLI as a process, database managers; and skipping (or failing, in CI) for a missing server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from devtools.local_servers import (
    ACCESS_KEY,
    REPO_ROOT,
    SECRET_KEY,
    LightFileManagerProcess,
    MockApiProcess,
    MotoS3,
    NatsServer,
    RcloneS3,
)
from sync_service.clients.s3_manager import make_client
from sync_service.store.database_manager import DatabaseManager
from tests.helpers.waiting import wait_for

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


#: Set (``make test-postgres``): the service under test keeps its state in PostgreSQL on this
#: server, a fresh database per test. Unset: SQLite in the test's folder.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def unavailable(reason: str) -> None:
    """Skip the test for a missing server, or fail it when CI requires every server."""
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


Server = TypeVar("Server", MotoS3, RcloneS3, NatsServer, MockApiProcess, LightFileManagerProcess)


def serving(start: Callable[[], Server], what: str) -> Iterator[Server]:
    """Start a server for a fixture, or skip (fail under REQUIRE_SERVICES=1); stop it after."""
    try:
        server = start()
    except Exception as exc:  # any failure to start means the server is unavailable
        unavailable(f"cannot start {what}: {exc}")
    yield server
    server.stop()


class Databases:
    """Opens ``DatabaseManager``s on one target and closes them all after the test."""

    def __init__(self, target: str | Path) -> None:
        self.target = target
        self.opened: list[DatabaseManager] = []

    def open(self) -> DatabaseManager:
        db = DatabaseManager(self.target)
        self.opened.append(db)
        return db

    def close(self) -> None:
        for db in self.opened:
            db.close()


@dataclass
class Bucket:
    """A fresh bucket on an S3 server, with a client to fill it."""

    endpoint: str
    name: str
    client: Any

    def put(self, key: str, body: bytes, permissions: dict[str, Any] | None = None) -> None:
        extra = {"Metadata": {"permissions": json.dumps(permissions)}} if permissions else {}
        self.client.put_object(Bucket=self.name, Key=key, Body=body, **extra)

    def contents(self) -> dict[str, bytes]:
        """Every object's bytes, by key."""
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            for item in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.name, Key=item["Key"])["Body"].read()
                found[item["Key"]] = body
        return found


def new_bucket(endpoint: str) -> Bucket:
    """A bucket of a fresh name on the S3 server at ``endpoint``."""
    client = make_client(endpoint_url=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    name = f"customer-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return Bucket(endpoint, name, client)


@dataclass
class Api:
    """The running mock API, reset for this test, with its test endpoints."""

    url: str

    def files(self) -> dict[str, dict[str, Any]]:
        return {f["path"]: f for f in requests.get(f"{self.url}/files", timeout=10).json()}

    def operations(self) -> list[dict[str, Any]]:
        """Every mutating call the mock answered, in order: applied, or replayed from its
        idempotency cache (``"replay": True``)."""
        return list(requests.get(f"{self.url}/operations", timeout=10).json())

    def delete(self, path: str) -> None:
        requests.post(f"{self.url}/deleteFile", json={"path": path}, timeout=10).raise_for_status()

    def stats(self) -> dict[str, int]:
        return dict(requests.get(f"{self.url}/stats", timeout=10).json())

    def faults(self, **settings: Any) -> None:
        requests.post(f"{self.url}/admin/faults", json=settings, timeout=10).raise_for_status()

    def settled(self, timeout: float = 30) -> None:
        """Wait until no call is inside the mock any more (one a client gave up on still runs
        there, and would land after the next test's reset)."""
        wait_for(lambda: self.stats()["in_flight"] == 0, timeout, "the mock finishing the calls it holds")


@dataclass
class Cli:
    """Runs ``python -m sync_service.main`` in a working folder with a test environment."""

    workdir: Path
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)
    _state: DatabaseManager | None = None
    _state_of: str | Path | None = None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sync_service.main", *args]

    @property
    def database(self) -> str | Path:
        """Where the service keeps its state in this test."""
        return self.env.get("DATABASE_URL") or self.workdir / "data" / "sync.db"

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query on the service's state (``?`` placeholders, either engine); none
        while an SQLite file is not there yet."""
        if isinstance(self.database, Path) and not self.database.exists():
            return []
        if self._state is not None and self._state_of != self.database:  # DATABASE_URL changed
            self._state.close()
            self._state = None
        if self._state is None:
            self._state, self._state_of = DatabaseManager(self.database), self.database
        return self._state.database.query(sql, args)

    def full_env(self, **overrides: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("CUSTOMER_S3_", "API_", "DATABASE_"))}
        return {**base, "PYTHONPATH": str(REPO_ROOT), **self.env, **overrides}

    def run(self, *args: str, timeout: float = 180, **overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=self.workdir, env=self.full_env(**overrides),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str, **overrides: str) -> subprocess.Popen[str]:
        # Output to a file, not a pipe: a daemon logging for a minute would fill a pipe and block.
        log = (self.workdir / f"process-{len(self.started)}.log").open("w")
        process = subprocess.Popen(self.command(*args), cwd=self.workdir, env=self.full_env(**overrides),
                                   stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()
        self.started.append(process)
        return process

    def kill_leftovers(self) -> None:
        """A test that failed half-way must not leave a sync or daemon running into the next one."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()
        if self._state is not None:
            self._state.close()
            self._state = None

