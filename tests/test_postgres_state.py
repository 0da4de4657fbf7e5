"""State in PostgreSQL through the CLI (``DATABASE_URL``): what an operator sees of it — the
URL with its password masked in ``status``, ``check`` on it, the lock across processes, and
one clear line when the URL or the server is wrong. Runs in ``make test`` on the local server."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from tests.conftest import Api, Bucket, Cli
from tests.test_initial_sync import report_of, wait_until

PASSWORD = "pg-pass-7f3a9c"  # trust auth ignores it; it must never show


def with_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{PASSWORD}@{parts.hostname}:{parts.port}"))


def test_a_sync_status_and_check_on_postgresql_show_the_url_without_its_password(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given the state in PostgreSQL, reached through a URL with a password
    url = with_password(postgres_url)
    bucket.put("a.txt", b"a")
    bucket.put("docs/b.txt", b"b", {"read": ["x"]})
    # when an initial sync, status and check run
    synced = cli.run("initial-sync", DATABASE_URL=url)
    status = cli.run("status", "--json", DATABASE_URL=url)
    text = cli.run("status", DATABASE_URL=url)
    check = cli.run("check", DATABASE_URL=url)
    # then the sync lands, nothing is written to DATA_DIR's database, and the URL is masked
    assert synced.returncode == 0, synced.stderr
    assert report_of(synced)["succeeded"] == 2
    assert set(api.files()) == {"a.txt", "docs/b.txt"}
    assert not (cli.workdir / "data" / "sync.db").exists()
    shown = json.loads(status.stdout)
    assert shown["records"] == 2 and shown["checks"]["database"]["ok"]
    assert shown["database"] == url.replace(PASSWORD, "***")
    assert "postgres:***@" in text.stdout
    assert check.returncode == 0, check.stdout + check.stderr
    for result in (synced, status, text, check):
        assert PASSWORD not in result.stdout + result.stderr
    assert PASSWORD not in "".join(p.read_text() for p in (cli.workdir / "logs").glob("*.log"))


def test_a_second_sync_on_the_same_postgresql_database_exits_3(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    for n in range(20):
        bucket.put(f"slow/{n}.txt", b"x")
    api.faults(fail_rate=1.0, latency_ms=200, seed=1)
    first = cli.start("initial-sync", DATABASE_URL=postgres_url, SYNC_WORKERS="2")
    cli.env["DATABASE_URL"] = postgres_url  # for cli.query
    try:
        wait_until(lambda: cli.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(1,)])
        second = cli.run("incremental-sync", DATABASE_URL=postgres_url)
        assert second.returncode == 3
        assert f"(pid {first.pid}@" in second.stderr and "holds the lock on postgresql://" in second.stderr
        assert json.loads(cli.run("status", "--json", DATABASE_URL=postgres_url).stdout)["sync_running"]
    finally:
        first.kill()
        first.wait()
    api.faults()
    # the kill -9 freed the lock: the next run goes ahead and completes
    again = cli.run("initial-sync", DATABASE_URL=postgres_url)
    assert again.returncode == 0, again.stderr
    assert len(api.files()) == 20


def test_a_wrong_database_url_is_one_line_naming_it(cli: Cli) -> None:
    wrong = cli.run("status", DATABASE_URL=f"mysql://root:{PASSWORD}@db/state")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "configuration error: DATABASE_URL must be a PostgreSQL URL such as "
        "postgresql://user@host:5432/database (or empty for SQLite at DATABASE_PATH), "
        "got 'mysql://root:***@db/state'"]
    down = cli.run("initial-sync", DATABASE_URL=f"postgresql://sync:{PASSWORD}@127.0.0.1:9/state")
    assert down.returncode == 1
    assert "cannot connect to postgresql://sync:***@127.0.0.1:9/state" in down.stderr
    assert PASSWORD not in down.stdout + down.stderr
