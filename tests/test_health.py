"""Health with three answers (SPEC §6): a real daemon with one object S3 denies is degraded, not
failing, and stays live and ready; with S3 stopped it is not ready, and still live. The verdict
itself, and the daemon's liveness, as pure units."""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from devtools.local_servers import free_port
from sync_service.runs.health import DEGRADED, FAILING, OK, CycleState, cycle_state_of, judge
from sync_service.runs.metrics import LIVENESS_GRACE_S, SyncMetrics
from tests.helpers.fault_proxy import DenyingProxy
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import metric, stop
from tests.helpers.waiting import wait_for

NOW = 1_800_000_000.0


def answer(base: str, route: str) -> tuple[int, dict[str, Any]]:
    try:
        response = requests.get(f"{base}{route}", timeout=10)
    except requests.RequestException:
        return 0, {}
    return response.status_code, response.json()


def test_one_denied_object_degrades_the_daemon_and_a_stopped_s3_makes_it_unready(
        cli: Cli, bucket: Bucket, api: Api) -> None:
    # given a bucket whose one object the service may not read, behind a proxy we can stop
    for key in ("a.txt", "secret.txt", "z.txt"):
        bucket.put(key, key.encode())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with DenyingProxy(bucket.endpoint, {"secret.txt"}) as proxy:
        daemon = cli.start("daemon", SYNC_INTERVAL="1", METRICS_PORT=str(port), MAX_RETRIES="1",
                           CUSTOMER_S3_ENDPOINT=proxy.endpoint)
        try:
            # when the initial sync and a few cycles have run (each retries the denied object)
            wait_for(lambda: answer(base, "/health")[1].get("status") == DEGRADED, timeout=60)
            wait_for(lambda: metric(base, "sync_cycles_total", mode="incremental-sync", result="failed") >= 2,
                       timeout=60)
            wait_for(lambda: metric(base, "sync_oldest_failure_age_seconds") >= 2.0, timeout=30)

            # then: degraded (200), live, ready; the failure counted with its age; the rest synced
            code, health = answer(base, "/health")
            assert code == 200 and health["status"] == DEGRADED, health
            assert health["failed_operations"] == 1 and health["oldest_failure_age_s"] >= 2.0, health
            assert "1 failed operation" in health["reason"]
            assert health["last_success"] is not None and health["initial_sync_completed"] is True
            assert answer(base, "/readyz")[0] == 200
            live_code, live = answer(base, "/livez")
            assert live_code == 200 and live["status"] == "ok"
            assert metric(base, "sync_failed_operations") == 1
            assert metric(base, "sync_last_success_timestamp_seconds") > time.time() - 60
            assert set(api.files()) == {"a.txt", "z.txt"}
            assert proxy.denials >= 3  # retried, cycle after cycle
            # status (another process, from the database) and the page say the same
            status = json.loads(cli.run("status", "--json", CUSTOMER_S3_ENDPOINT=proxy.endpoint).stdout)
            assert status["health"]["status"] == DEGRADED and status["health"]["failed_operations"] == 1
            page = requests.get(f"{base}/", timeout=10).text
            assert 'class="verdict degraded"' in page and "S3 sync: Degraded" in page

            # when S3 stops answering
            proxy.down = True

            # then: not ready, with the reason; still live
            wait_for(lambda: answer(base, "/readyz")[0] == 503, timeout=60)
            code, ready = answer(base, "/readyz")
            assert code == 503 and ready["status"] == FAILING and "s3 unreachable" in ready["reason"], ready
            health_code, health = answer(base, "/health")
            assert health_code == 503 and health["status"] == FAILING
            assert answer(base, "/livez")[0] == 200
        finally:
            code, _ = stop(daemon)
    assert code == 0


def status_of(*, failed: int = 0, oldest: str | None = None, completed: bool = True,
              checks: dict[str, Any] | None = None, held: int = 0) -> dict[str, Any]:
    return {"operations": {"pending": 0, "failed": failed}, "oldest_failure_at": oldest,
            "initial_sync": {"completed": completed, "key_ranges": {"listed": 0, "left": 0}},
            "reconcile": {"held_deletes": {"count": held} if held else None},
            "checks": checks if checks is not None else {"s3": {"ok": True}, "api": {"ok": True},
                                                         "database": {"ok": True}}}


RAN = CycleState(last_result="ok", last_finished=NOW - 5, last_success=NOW - 5)


def test_a_cycle_that_ran_its_plan_with_failures_is_degraded_not_failing() -> None:
    failed_run = CycleState(last_result="failed", last_finished=NOW - 5, last_success=NOW - 5)
    verdict = judge(status_of(failed=3, oldest="2027-01-15T07:50:00Z"), failed_run, NOW)
    assert verdict.status == DEGRADED and verdict.ready
    assert verdict.details["failed_operations"] == 3 and verdict.details["oldest_failure_age_s"] == 600.0
    assert verdict.reason.startswith("3 failed operations") and "10 min" in verdict.reason
    assert judge(status_of(), RAN, NOW).status == OK
    assert judge(status_of(held=4), RAN, NOW).status == DEGRADED


def test_what_makes_the_daemon_not_ready() -> None:
    down = status_of(checks={"s3": {"ok": False, "error": "connection refused"}, "api": {"ok": True}})
    cases = {
        "s3 unreachable: connection refused": (down, RAN),
        "the initial sync has not completed yet": (status_of(completed=False), RAN),
        "no cycle has finished in time": (status_of(), CycleState("ok", None, NOW - 900, NOW - 900, True)),
        "ended in an error before it ran its plan: StorageError: gone": (
            status_of(), CycleState("error", "StorageError: gone", NOW, NOW - 60)),
        "no cycle has run its plan yet": (status_of(), CycleState()),
    }
    for reason, (status, cycles) in cases.items():
        verdict = judge(status, cycles, NOW)
        assert verdict.status == FAILING and not verdict.ready and reason in verdict.reason, (reason, verdict)


def test_the_cycles_recorded_in_the_database_give_the_last_success() -> None:
    runs = [{"status": "running", "finished_at": None},
            {"status": "error", "finished_at": "2027-01-15T08:00:00Z"},
            {"status": "failed", "finished_at": "2027-01-15T07:59:00Z"},
            {"status": "ok", "finished_at": "2027-01-15T07:58:00Z"}]
    cycles = cycle_state_of(runs)
    assert cycles.last_result == "error" and cycles.last_success == cycles.last_finished - 60  # type: ignore[operator]
    assert cycle_state_of([]) == CycleState()


def test_the_loop_is_live_while_it_cycles_or_waits_in_time() -> None:
    metrics = SyncMetrics(interval_s=1)
    assert metrics.liveness()[0]  # starting
    metrics.cycle_started()
    assert metrics.liveness() == (True, "a cycle is running")
    metrics.cycle_scheduled(time.time() + 1)
    assert metrics.liveness() == (True, "waiting for the next cycle")
    metrics.cycle_scheduled(time.time() - LIVENESS_GRACE_S - 5)
    alive, reason = metrics.liveness()
    assert not alive and "missed its next cycle" in reason
