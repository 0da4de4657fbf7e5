"""Shared fixtures: real S3 servers, the mock API, a bucket per test, and the CLI as a process."""

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

from sync_service.clients.s3_manager import make_client
from sync_service.store.database_manager import DatabaseManager
from sync_service.utils.local_servers import (
    ACCESS_KEY,
    REPO_ROOT,
    SECRET_KEY,
    MockApiProcess,
    MotoS3,
    NatsServer,
    RcloneS3,
)

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
#: Set (``make test-postgres``): the service under test keeps its state in PostgreSQL on this
#: server, a fresh database per test. Unset: SQLite in the test's folder.
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def unavailable(reason: str) -> None:
    """Skip the test for a missing server, or fail it when CI requires every server."""
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


Server = TypeVar("Server", MotoS3, RcloneS3, NatsServer, MockApiProcess)


def serving(start: Callable[[], Server], what: str) -> Iterator[Server]:
    """Start a server for a fixture, or skip (fail under REQUIRE_SERVICES=1); stop it after."""
    try:
        server = start()
    except Exception as exc:  # any failure to start means the server is unavailable
        unavailable(f"cannot start {what}: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    yield from serving(lambda: MotoS3().start(), "moto's S3 server")


@pytest.fixture(scope="session")
def rclone_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RcloneS3]:
    yield from serving(lambda: RcloneS3(tmp_path_factory.mktemp("rclone-root")).start(), "rclone serve s3")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    yield from serving(lambda: NatsServer(tmp_path_factory.mktemp("nats-store")).start(), "nats-server -js")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """The PostgreSQL server (``TEST_DATABASE_URL``, else the local one on 127.0.0.1:5432)."""
    from tests.postgres_server import DEFAULT_SERVER_URL, PostgresServer

    url = TEST_DATABASE_URL or DEFAULT_SERVER_URL
    try:
        server = PostgresServer(url)
    except Exception as exc:  # any failure to reach it means the server is unavailable
        unavailable(f"no PostgreSQL server at {url}: {exc}")
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh, migrated database of this test; dropped after it."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop(url)


@pytest.fixture
def service_database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where the service under test keeps its state: a PostgreSQL database of this test when
    ``TEST_DATABASE_URL`` is set, else an SQLite file in the test's folder."""
    if TEST_DATABASE_URL:
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "sync.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """The store contract runs against both engines: an SQLite file, a PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "sync.db"


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


@pytest.fixture
def databases(store_target: str | Path) -> Iterator[Databases]:
    """Database managers on the contract's target (both engines)."""
    opened = Databases(store_target)
    yield opened
    opened.close()


@pytest.fixture
def state_db(service_database: str | Path) -> Iterator[DatabaseManager]:
    """The database of the service under test (see ``service_database``)."""
    opened = Databases(service_database)
    yield opened.open()
    opened.close()


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


def _new_bucket(endpoint: str) -> Bucket:
    client = make_client(endpoint_url=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    name = f"customer-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return Bucket(endpoint, name, client)


@pytest.fixture
def bucket(moto_s3: MotoS3) -> Bucket:
    return _new_bucket(moto_s3.endpoint)


@pytest.fixture
def rclone_bucket(rclone_s3: RcloneS3) -> Bucket:
    return _new_bucket(rclone_s3.endpoint)


@pytest.fixture(scope="session")
def mock_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockApiProcess]:
    yield from serving(lambda: MockApiProcess(tmp_path_factory.mktemp("mock-storage")).start(), "the mock API")


@dataclass
class Api:
    """The running mock API, reset for this test, with its test endpoints."""

    url: str

    def files(self) -> dict[str, dict[str, Any]]:
        return {f["path"]: f for f in requests.get(f"{self.url}/files", timeout=10).json()}

    def operations(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.url}/operations", timeout=10).json())

    def delete(self, path: str) -> None:
        requests.post(f"{self.url}/deleteFile", json={"path": path}, timeout=10).raise_for_status()

    def stats(self) -> dict[str, int]:
        return dict(requests.get(f"{self.url}/stats", timeout=10).json())

    def faults(self, **settings: Any) -> None:
        requests.post(f"{self.url}/admin/faults", json=settings, timeout=10).raise_for_status()


@pytest.fixture
def api(mock_api: MockApiProcess) -> Api:
    requests.post(f"{mock_api.url}/admin/reset", timeout=10).raise_for_status()
    return Api(mock_api.url)


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


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path, bucket: Bucket, api: Api) -> Iterator[Cli]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    database = {"DATABASE_URL": request.getfixturevalue("postgres_url")} if TEST_DATABASE_URL else {}
    cli = Cli(workdir, {
        **database,
        "CUSTOMER_S3_ENDPOINT": bucket.endpoint,
        "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY,
        "CUSTOMER_S3_SECRET_KEY": SECRET_KEY,
        "CUSTOMER_S3_BUCKET": bucket.name,
        "MOCK_API_URL": api.url,
        "SYNC_WORKERS": "8",
        "LOG_LEVEL": "INFO",
    })
    yield cli
    cli.kill_leftovers()
