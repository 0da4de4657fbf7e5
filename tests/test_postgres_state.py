"""State in PostgreSQL through the CLI (``DATABASE_URL``): what an operator sees of it — the
URL with its password masked in ``status``, ``check`` on it, the lock across processes, and
one clear line when the URL or the server is wrong. Runs in ``make test`` on the local server."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from sync_service.store.run_lock import SyncLock
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import report_of
from tests.helpers.waiting import wait_for

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
    # every call slow: the first sync holds the lock for 20 s at least, however busy the machine
    api.faults(fail_rate=1.0, latency_ms=1000, seed=1)
    first = cli.start("initial-sync", DATABASE_URL=postgres_url, SYNC_WORKERS="1")
    cli.env["DATABASE_URL"] = postgres_url  # for cli.query
    try:
        wait_for(lambda: cli.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(1,)])
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


def test_an_sqlite_state_imported_into_postgresql_goes_on_without_delivering_again(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    # given a service on SQLite that delivered 30 objects, and one the file manager refused
    for n in range(30):
        bucket.put(f"docs/{n:02d}.txt", f"doc {n}".encode(), {"read": ["team"]} if n % 5 == 0 else None)
    bucket.put("late.txt", b"late")
    api.faults(fail_rate=1.0, status=400, match="late")
    first = cli.run("initial-sync")
    assert first.returncode == 1 and report_of(first)["failed"] == 1, first.stderr
    api.faults()
    tables = ("files", "baseline", "dirty", "runs", "operations", "settings")
    on_sqlite = {t: cli.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    assert on_sqlite["files"] == 31 and on_sqlite["baseline"] == 30 and on_sqlite["dirty"] == 1
    # when it is imported into an empty PostgreSQL database
    imported = cli.run("import-state", DATABASE_URL=postgres_url)
    # then every row arrived, and the SQLite file is as it was
    assert imported.returncode == 0, imported.stderr
    shown = json.loads(imported.stdout)
    assert shown["from"] == "data/sync.db" and shown["to"] == postgres_url
    assert {t: shown["copied"][t] for t in tables} == on_sqlite
    assert {t: cli.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables} == on_sqlite
    cli.env["DATABASE_URL"] = postgres_url
    assert {t: cli.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables} == on_sqlite
    # and the service goes on from there on PostgreSQL: the refused object is delivered, nothing
    # else again; a new object gets a record of its own
    delivered = len(api.operations())
    retried = cli.run("incremental-sync")
    assert retried.returncode == 0, retried.stderr
    bucket.put("docs/new.txt", b"new")
    repaired = cli.run("reconcile")
    assert repaired.returncode == 0, repaired.stderr
    sent = [(op["op"], op["path"]) for op in api.operations()[delivered:] if op["op"] != "syncResults"]
    assert [path for op, path in sent if op == "saveToDisk"] == ["late.txt", "docs/new.txt"]
    assert {path for _, path in sent} == {"late.txt", "docs/new.txt"}, sent  # with their permissions
    assert json.loads(cli.run("status", "--json").stdout)["records"] == 32
    assert cli.run("check").returncode == 0
    # a second import is refused before it changes anything
    again = cli.run("import-state")
    assert again.returncode == 1
    assert "already holds a state (files 32" in again.stderr and "nothing was imported" in again.stderr
    assert cli.query("SELECT count(*) FROM files")[0][0] == 32


def test_import_state_needs_postgresql_a_state_to_copy_and_both_locks(
        cli: Cli, bucket: Bucket, api: Api, postgres_url: str) -> None:
    no_url = cli.run("import-state")
    assert no_url.returncode == 2 and "set DATABASE_URL=postgresql://" in no_url.stderr
    missing = cli.run("import-state", "--from", "nowhere.db", DATABASE_URL=postgres_url)
    assert missing.returncode == 2 and "no SQLite state at nowhere.db" in missing.stderr
    bucket.put("a.txt", b"a")
    assert cli.run("initial-sync").returncode == 0
    with SyncLock(cli.workdir / "data" / "sync.db"):  # a sync on SQLite is running
        locked = cli.run("import-state", DATABASE_URL=postgres_url)
    assert locked.returncode == 3 and "holds the lock" in locked.stderr
    cli.env["DATABASE_URL"] = postgres_url
    assert cli.query("SELECT count(*) FROM files") == [(0,)]
