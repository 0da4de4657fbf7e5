"""Shared fixtures: real S3 servers, the mock API, a bucket per test, and the CLI as a process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.local_servers import (
    ACCESS_KEY,
    SECRET_KEY,
    MockApiProcess,
    MotoS3,
    NatsServer,
    RcloneS3,
)
from sync_service.store.database_manager import DatabaseManager
from tests.helpers.harness import TEST_DATABASE_URL, Api, Bucket, Cli, Databases, new_bucket, serving, unavailable


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
    from tests.helpers.postgres_server import DEFAULT_SERVER_URL, PostgresServer

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


@pytest.fixture
def bucket(moto_s3: MotoS3) -> Bucket:
    return new_bucket(moto_s3.endpoint)


@pytest.fixture
def rclone_bucket(rclone_s3: RcloneS3) -> Bucket:
    return new_bucket(rclone_s3.endpoint)


@pytest.fixture(scope="session")
def mock_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockApiProcess]:
    yield from serving(lambda: MockApiProcess(tmp_path_factory.mktemp("mock-storage")).start(), "the mock API")


@pytest.fixture
def api(mock_api: MockApiProcess) -> Api:
    requests.post(f"{mock_api.url}/admin/reset", timeout=10).raise_for_status()
    return Api(mock_api.url)


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
