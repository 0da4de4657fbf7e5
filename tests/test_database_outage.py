"""The database going away (SPEC §7): a PostgreSQL server of the test's own, killed with -9
and started again, while a daemon and two workers sync; and a one-off command facing an outage
longer than DATABASE_OUTAGE_TIMEOUT."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools.local_servers import free_port
from tests.helpers.harness import Api, Bucket, Cli, unavailable
from tests.helpers.postgres_server import OwnPostgres
from tests.helpers.sync import assert_api_matches_bucket
from tests.helpers.waiting import holds_for, wait_for

OBJECTS = 240
PASSWORD = "outage-secret-9"

pytestmark = pytest.mark.outage


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    try:
        server = OwnPostgres(free_port()).start()
    except Exception as exc:  # no server binaries, no postgres user, no runuser
        unavailable(f"cannot start a PostgreSQL server of the test's own: {exc}")
    try:
        yield server
    finally:
        server.close()


def delivered(cli: Cli) -> int:
    return int(cli.query("SELECT count(*) FROM baseline")[0][0])


def test_a_daemon_and_two_workers_ride_out_a_database_restart(
        cli: Cli, bucket: Bucket, api: Api, own_postgres: OwnPostgres) -> None:
    # given a daemon and two workers syncing 240 objects through a file manager answering in
    # 100 ms, their state in a PostgreSQL server of this test's own
    for n in range(OBJECTS):
        bucket.put(f"o/{n:03d}.txt", f"object {n}".encode())
    api.faults(fail_rate=1.0, latency_ms=100, seed=2)
    cli.env.update(DATABASE_URL=own_postgres.url(PASSWORD), SYNC_INTERVAL="1", SYNC_WORKERS="2",
                   WORKER_BATCH="8")
    port = free_port()
    processes = [cli.start("daemon", METRICS_PORT=str(port)), cli.start("worker"), cli.start("worker")]
    try:
        wait_for(lambda: delivered(cli) >= 20, timeout=120)
        # when the server is killed with -9 and started again 5 s later
        own_postgres.kill()
        health: list[tuple[int, str]] = []

        def running_and_saying_why() -> bool:
            answer = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
            health.append((answer.status_code, answer.json().get("reason", "")))
            return [p.poll() for p in processes] == [None, None, None]

        # The outage lasts 5 s whatever the processes do; every process runs through it.
        holds_for(running_and_saying_why, 5, "every process running through the outage", interval=0.2)
        own_postgres.start()
        # the daemon's health said why while it lasted
        assert any(code == 503 and "database unreachable" in reason for code, reason in health), health
        # then every process kept running and every object arrived, each about once
        wait_for(lambda: delivered(cli) == OBJECTS, timeout=180)
        assert [p.poll() for p in processes] == [None, None, None]
        api.faults()
        wait_for(lambda: cli.query(
            "SELECT value FROM settings WHERE key = 'initial_sync_completed'") != [], timeout=60)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in processes]
    logs = [(cli.workdir / f"process-{n}.log").read_text() for n in range(3)]
    assert codes == [0, 0, 0], [log[-2000:] for log in logs]
    assert_api_matches_bucket(api, bucket, {})
    saves = Counter(op["path"] for op in api.operations() if op["op"] == "saveToDisk")
    assert len(saves) == OBJECTS and max(saves.values()) <= 2, saves.most_common(3)
    # the outage was logged once when it began and once when it ended, without the password
    for log in logs[1:]:
        assert log.count("the database is unavailable") == log.count("the database is back") >= 1, log[-3000:]
    assert all(PASSWORD not in log for log in logs)


def test_a_one_off_command_gives_up_after_database_outage_timeout(
        cli: Cli, bucket: Bucket, api: Api, own_postgres: OwnPostgres) -> None:
    # given an initial sync on PostgreSQL, the file manager answering in 200 ms
    for n in range(60):
        bucket.put(f"o/{n:02d}.txt", b"x")
    api.faults(fail_rate=1.0, latency_ms=200, seed=4)
    cli.env.update(DATABASE_URL=own_postgres.url(PASSWORD), SYNC_WORKERS="1")
    run = cli.start("initial-sync", DATABASE_OUTAGE_TIMEOUT="3")
    wait_for(lambda: delivered(cli) >= 4, timeout=120)
    # when the server goes away for good
    own_postgres.kill()
    killed_at = time.monotonic()
    code = run.wait(timeout=120)
    took = time.monotonic() - killed_at
    # then the command waited for it for DATABASE_OUTAGE_TIMEOUT, then exited 1 with a line
    # naming the database, its password masked
    log = (cli.workdir / "process-0.log").read_text()
    assert code == 1, log[-3000:]
    assert 3 <= took < 60, took
    last: Any = log.strip().splitlines()[-1]
    assert "initial-sync failed" in last and f"postgres:***@127.0.0.1:{own_postgres.port}" in last, last
    assert "unreachable for" in last and "DATABASE_OUTAGE_TIMEOUT" in last, last
    assert PASSWORD not in log
