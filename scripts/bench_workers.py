#!/usr/bin/env python3
"""Scale-out benchmark: objects/s with 1, 2, 4, 8 and 16 workers sharing one PostgreSQL state.

One bucket (``--objects``, default 4000 × 1 KiB, spread over 10 folders) is served by
``rclone serve s3``; the mock API answers every call after ``--latency-ms`` (default 200 ms, its
latency fault), as a remote file manager would, so that the API's latency, not two cores, is
the limit. For each worker count, in a fresh PostgreSQL
database and a fresh mock: ``initial-sync --plan-only`` stores the first key range of the
listing, then that many ``worker --until-idle`` processes start together, list the ranges
(the 10 folders become ranges of their own) and apply what they list; objects/s is the objects
over the time from their start until the last one exits. Beside
them, the embedded default: one ``initial-sync`` with the state in SQLite under the same
latency. Every worker process runs ``--per-worker`` (SYNC_WORKERS, default 4) operations'
worth of concurrency (twice that many calls in flight), low enough that the API's latency,
not these two cores, is what one process waits on. While the workers run, the sessions of the
database waiting for a lock are counted every 20 ms: "lock wait s" is the time they spent
waiting, summed over sessions.

Then ``import-state`` (moving an SQLite state to PostgreSQL) of ``--import-records`` records
(default 10^6, in step with the file manager) into an empty database: seconds and records/s.

Needs a PostgreSQL server (``--server``, default ``postgresql://postgres@127.0.0.1:5432/postgres``,
a role that may create databases); the databases it makes are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.local_servers import MockApiProcess, RcloneS3  # noqa: E402
from scripts.bench import seed, seed_records, sync_env  # noqa: E402

BUCKET = "bench-workers"


def post_json(url: str, body: dict[str, object]) -> None:
    """POST a JSON body and check the answer is a 2xx."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def files_held(api: MockApiProcess) -> int:
    """How many files the mock API holds."""
    with urllib.request.urlopen(f"{api.url}/files", timeout=30) as answer:
        return len(json.load(answer))


class LockWaits:
    """Samples, every ``SAMPLE_S``, the sessions of one database waiting for a lock."""

    SAMPLE_S = 0.02

    def __init__(self, server: str, database: str) -> None:
        self.server = server
        self.database = database
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as conn:
            while not self._stop.wait(self.SAMPLE_S):
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                   "AND wait_event_type = 'Lock'", (self.database,)).fetchone()
                self.seconds += (row[0] if row else 0) * self.SAMPLE_S


def with_database(url: str, name: str) -> str:
    """``url`` pointing at the database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def run_config(label: str, workers: int, args: argparse.Namespace, workdir: Path, rclone: RcloneS3,
               admin: object | None) -> tuple[str, float, float, int, float]:
    """One configuration; returns (label, planning seconds, applying seconds, files held,
    seconds sessions waited for locks)."""
    import psycopg

    api = MockApiProcess(workdir / f"fm-{label}").start()
    database = ""
    try:
        post_json(f"{api.url}/admin/faults", {"fail_rate": 1.0, "latency_ms": args.latency_ms})
        env = {**sync_env(BUCKET, args.per_worker, workdir / f"data-{label}", workdir, rclone, api),
               "LOG_LEVEL": "WARNING"}
        command = [sys.executable, "-m", "sync_service.main"]
        if workers == 0:  # the SQLite single process: plans and applies in one run
            started = time.perf_counter()
            done = subprocess.run([*command, "initial-sync"], env=env, cwd=workdir,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{label}: initial-sync exit {done.returncode}: {done.stderr[-2000:]}")
            return label, 0.0, time.perf_counter() - started, files_held(api), 0.0
        assert isinstance(admin, psycopg.Connection)
        name = f"s3sync_bench_{os.getpid()}_{secrets.token_hex(3)}_{workers}"
        admin.execute(f'CREATE DATABASE "{name}"')
        database = name
        env["DATABASE_URL"] = with_database(args.server, name)
        started = time.perf_counter()
        planned = subprocess.run([*command, "initial-sync", "--plan-only"], env=env, cwd=workdir,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if planned.returncode != 0:
            raise RuntimeError(f"{label}: --plan-only exit {planned.returncode}: {planned.stderr[-2000:]}")
        planning = time.perf_counter() - started
        started = time.perf_counter()
        processes = [subprocess.Popen([*command, "worker", "--until-idle"], env=env, cwd=workdir,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for _ in range(workers)]
        with LockWaits(args.server, name) as waits:
            for process in processes:
                _, stderr = process.communicate()
                if process.returncode != 0:
                    raise RuntimeError(f"{label}: a worker exited {process.returncode}: {stderr[-2000:]}")
        return label, planning, time.perf_counter() - started, files_held(api), waits.seconds
    finally:
        api.stop()
        shutil.rmtree(workdir / f"fm-{label}", ignore_errors=True)
        if database and admin is not None:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')  # type: ignore[attr-defined]


def bench_import(records: int, server: str, workdir: Path, admin: object) -> None:
    """Time ``import-state`` of an SQLite state of ``records`` records into an empty database."""
    source = workdir / "import" / "sync.db"
    seed_records(source, records)
    name = f"s3sync_bench_{os.getpid()}_{secrets.token_hex(3)}_import"
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    try:
        env = {**os.environ, "DATABASE_URL": with_database(server, name), "LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "sync_service.main", "import-state", "--from", str(source)],
                              env=env, cwd=workdir, capture_output=True, text=True)
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"import-state exit {done.returncode}: {done.stderr[-2000:]}")
        copied = json.loads(done.stdout)["copied"]
        rows = sum(copied.values())
        print(f"import-state of {copied['files']} records ({rows} rows: files, baseline, ...): "
              f"{took:.2f} s, {copied['files'] / took:.0f} records/s")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=int(os.environ.get("BENCH_WORKER_OBJECTS", 4000)))
    parser.add_argument("--latency-ms", type=int, default=200, help="the mock API's delay on every call")
    parser.add_argument("--workers", default="1,2,4,8,16", help="comma-separated worker counts")
    parser.add_argument("--per-worker", type=int, default=4,
                        help="SYNC_WORKERS of each worker process (and of the SQLite run)")
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES_URL",
                                                           "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--import-records", type=int, default=1_000_000,
                        help="records of the SQLite state import-state copies (0 to skip)")
    args = parser.parse_args()
    import psycopg

    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="s3-sync-bench-workers-"))
    seed(workdir / "s3-root" / BUCKET, args.objects, 1024)
    rclone = RcloneS3(workdir / "s3-root").start()
    admin = psycopg.connect(args.server, autocommit=True, connect_timeout=5)
    try:
        print(f"{args.objects} objects x 1 KiB, mock API latency {args.latency_ms} ms a call, "
              f"SYNC_WORKERS={args.per_worker} per process, {os.cpu_count()} CPUs")
        results = [run_config("sqlite", 0, args, workdir, rclone, None)]
        results += [run_config(f"{n}-workers", n, args, workdir, rclone, admin) for n in counts]
        print(f"  {'':<18}{'plan s':>8}{'apply s':>9}{'objects/s':>11}{'delivered':>11}"
              f"{'lock wait s':>13}{'x 1 worker':>12}")
        one = next((r for r in results if r[0] == "1-workers"), None)
        for label, planning, applying, held, waited in results:
            rate = args.objects / applying
            ratio = f"{rate / (args.objects / one[2]):>11.2f}x" if one else ""
            shown = "SQLite, 1 process" if label == "sqlite" else label.replace("-", " ")
            print(f"  {shown:<18}{planning:>8.2f}{applying:>9.2f}{rate:>11.0f}{held:>11}{waited:>13.2f}{ratio}")
        if args.import_records:
            bench_import(args.import_records, args.server, workdir, admin)
    finally:
        admin.close()
        rclone.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
