"""`make bench-freshness`: how soon a change reaches the file manager, with the daemon as shipped.

Servers: `rclone serve s3` over a local folder (objects are written straight into it), the
mock API (disk storage), `nats-server -js`. The daemon runs as a process with no interval or
debounce setting (SYNC_INTERVAL 300, EVENT_DEBOUNCE 0.5, REPORT_INTERVAL 60).

1. Freshness, once through NATS and once through the spool folder: `--objects` (100) new
   objects, each written into the bucket and then reported by an event at `--freshness-rate`
   (20/s); the latency of each is from its event's publication to its file appearing in the
   mock's storage. Prints p50, p99 and max. Target: p99 ≤ 1 s.
2. Load, through NATS: `--rate` (500) permission-change events a second for `--seconds` (60)
   over `--records` (1000) synced objects. Every event must be applied (the daemon's
   `sync_events_total`) and the file manager must end with each file's last permissions. Prints
   the p99 lag of each report window (from each event's own `occurred_at` to its operation's
   success, as the daemon measures it), the time from the last publication until everything
   was applied, and the daemon's peak RSS (sampled every 0.2 s). Targets: p99 ≤ 5 s, RSS ≤ 150 MB.

Other load on the machine moves these figures: say so with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from devtools.local_servers import (  # noqa: E402
    ACCESS_KEY,
    SECRET_KEY,
    MockApiProcess,
    NatsServer,
    RcloneS3,
    free_port,
)
from sync_service.clients.file_spool import FileSpoolSource  # noqa: E402
from sync_service.clients.s3_manager import make_client  # noqa: E402
from sync_service.runs.report_window import quantile  # noqa: E402

BUCKET = "fresh"
FRESHNESS_TARGET_S = 1.0
LAG_TARGET_S = 5.0
RSS_TARGET_MB = 150.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metric(base: str, name: str, **labels: str) -> float:
    """A counter of the daemon's /metrics (0 while it does not answer)."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    try:
        text = requests.get(f"{base}/metrics", timeout=5).text
    except requests.RequestException:
        return 0.0
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == wanted:
            return float(value)
    return 0.0


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


class Daemon:
    """The daemon as a process in its own folder, with its metrics port and RSS sampler."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        log = (workdir / "daemon.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sync_service.main", "daemon"], cwd=workdir,
            env={**env, "METRICS_PORT": str(self.port)}, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.peak_rss_mb = 0.0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        wait_for(lambda: metric(self.base, "sync_cycles_total", mode="initial-sync", result="ok") >= 1,
                 300, "the initial sync")

    def _sample(self) -> None:
        watched = psutil.Process(self.process.pid)
        while self._sampling:
            try:
                self.peak_rss_mb = max(self.peak_rss_mb, watched.memory_info().rss / 2**20)
            except psutil.Error:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        self._sampling = False
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)

    def reports(self) -> list[dict[str, Any]]:
        folder = self.workdir / "data" / "reports"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("incremental-sync-*.json"))]


def base_env(rclone: RcloneS3, api: MockApiProcess, nats_server: NatsServer, source: str,
             stream: str) -> dict[str, str]:
    """The daemon as shipped: only where things are, no interval, debounce or window setting."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("CUSTOMER_S3_", "API_", "DATABASE_", "SYNC_", "EVENT", "REPORT_",
                                 "NATS_", "DATA_DIR", "EXPORT_DIR"))}
    return {**keep, "PYTHONPATH": str(REPO), "CUSTOMER_S3_ENDPOINT": rclone.endpoint,
            "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY,
            "CUSTOMER_S3_BUCKET": BUCKET, "MOCK_API_URL": api.url, "EVENT_SOURCE": source,
            "NATS_URL": nats_server.url, "NATS_STREAM": stream, "NATS_SUBJECT": f"{stream}.events",
            "NATS_DURABLE": f"{stream}-sync", "LOG_LEVEL": "INFO", "RECONCILE_INTERVAL": "0"}


class NatsPublisher:
    """Publishes to JetStream from a loop of its own (one connection for the whole run)."""

    def __init__(self, url: str, subject: str) -> None:
        import nats

        self.subject = subject
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(nats.connect(url))
        self.stream = self.connection.jetstream()

    def publish(self, body: str) -> None:
        self.loop.run_until_complete(self.stream.publish(self.subject, body.encode()))

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def freshness(source: str, count: int, rate: float, s3: Any, storage: Path, workdir: Path,
              env: dict[str, str], nats_url: str) -> dict[str, float]:
    """Latencies from each event's publication to its file in the mock's storage."""
    daemon = Daemon(workdir, env)
    publisher = NatsPublisher(nats_url, env["NATS_SUBJECT"]) if source == "nats" else None
    spool = FileSpoolSource(workdir / "data" / "events")
    published: dict[str, float] = {}
    arrived: dict[str, float] = {}
    watching = True

    def watch() -> None:  # the file manager's side: the file in its storage
        while watching or len(arrived) < len(published):
            for path in list(published):
                if path not in arrived and (storage / path).exists():
                    arrived[path] = time.monotonic()
            if not watching and time.monotonic() > last + 60:
                return
            time.sleep(0.005)

    last = time.monotonic()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        started = time.monotonic()
        for n in range(count):
            path = f"{source}/{n:04d}.txt"
            s3.put_object(Bucket=BUCKET, Key=path, Body=f"fresh {source} {n}\n".encode())
            body = json.dumps({"event_id": f"{source}-{n}", "type": "create", "path": path,
                               "occurred_at": now_iso()})
            published[path] = time.monotonic()
            if publisher is not None:
                publisher.publish(body)
            else:
                spool.publish(body)
            time.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        last = time.monotonic()
        watching = False
        watcher.join(timeout=90)
    finally:
        watching = False
        if publisher is not None:
            publisher.close()
        daemon.stop()
    latencies = sorted(arrived[p] - published[p] for p in arrived) or [float("nan")]
    missing = len(published) - len(arrived)
    return {"count": len(latencies), "missing": missing, "p50": quantile(latencies, 0.5),
            "p99": quantile(latencies, 0.99), "max": latencies[-1], "rss": daemon.peak_rss_mb}


def load(rate: float, seconds: float, records: int, s3: Any, workdir: Path,
         env: dict[str, str], api: MockApiProcess, nats_url: str) -> dict[str, Any]:
    """``rate`` permission changes a second for ``seconds`` over ``records`` synced objects."""
    for n in range(records):
        s3.put_object(Bucket=BUCKET, Key=f"load/{n:05d}.txt", Body=b"x")
    daemon = Daemon(workdir, env)
    publisher = NatsPublisher(nats_url, env["NATS_SUBJECT"])
    total = int(rate * seconds)
    try:
        started = time.monotonic()
        behind = 0.0
        for n in range(total):
            publisher.publish(json.dumps({
                "event_id": f"load-{n}", "type": "change_permission",
                "path": f"load/{n % records:05d}.txt", "permissions": {"v": n},
                "occurred_at": now_iso()}))
            wait = started + (n + 1) / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                behind = max(behind, -wait)
        published = time.monotonic()
        wait_for(lambda: metric(daemon.base, "sync_events_total", result="applied") >= total,
                 600, f"{total} events applied")
        drained = time.monotonic() - published
        files = {f["path"]: f for f in requests.get(f"{api.url}/files", timeout=60).json()}
        last = {f"load/{r:05d}.txt": {"v": max(n for n in range(r, total, records))}
                for r in range(min(records, total))}
        wrong = sum(1 for path, perms in last.items() if files.get(path, {}).get("permissions") != perms)
    finally:
        publisher.close()
        daemon.stop()
    windows = [r for r in daemon.reports() if r.get("event_lag_s")]
    return {"events": total, "publish_s": published - started, "publisher_behind_s": behind,
            "drained_s": drained, "wrong_permissions": wrong,
            "windows": [(r["cycles"], r["events_applied"], r["event_lag_s"]) for r in windows],
            "p99": max((r["event_lag_s"]["p99"] for r in windows), default=float("nan")),
            "p50": statistics.median([r["event_lag_s"]["p50"] for r in windows]) if windows else float("nan"),
            "rss": daemon.peak_rss_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--freshness-rate", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    root = workdir / "s3"
    (root / BUCKET).mkdir(parents=True)
    (root / BUCKET / "seed.txt").write_bytes(b"seed")
    rclone = RcloneS3(root).start()
    s3 = make_client(endpoint_url=rclone.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    nats_server = NatsServer(workdir / "nats").start()
    servers: list[Any] = [rclone, nats_server]
    failed = False
    try:
        print(f"freshness: {args.objects} objects reported at {args.freshness_rate:g}/s, "
              "from the event's publication to the file in the file manager's storage")
        for source in ("nats", "file"):
            storage = workdir / f"fm-{source}"
            api = MockApiProcess(storage).start()
            servers.append(api)
            env = base_env(rclone, api, nats_server, source, f"F{source.upper()}")
            result = freshness(source, args.objects, args.freshness_rate, s3, storage,
                               workdir / f"daemon-{source}", env, nats_server.url)
            ok = result["p99"] <= FRESHNESS_TARGET_S and result["missing"] == 0
            failed |= not ok
            print(f"  {source:<5} p50 {result['p50']:.3f} s  p99 {result['p99']:.3f} s  "
                  f"max {result['max']:.3f} s  arrived {result['count']}/{args.objects}  "
                  f"peak RSS {result['rss']:.0f} MB  {'ok' if ok else 'MISSED'} (target p99 ≤ 1 s)")
        if not args.skip_load:
            storage = workdir / "fm-load"
            api = MockApiProcess(storage).start()
            servers.append(api)
            env = base_env(rclone, api, nats_server, "nats", "LOAD")
            print(f"load: {args.rate:g} permission changes/s for {args.seconds:g} s over "
                  f"{args.records} objects, through NATS")
            loaded = load(args.rate, args.seconds, args.records, s3, workdir / "daemon-load",
                          env, api, nats_server.url)
            ok = (loaded["p99"] <= LAG_TARGET_S and loaded["rss"] <= RSS_TARGET_MB
                  and loaded["wrong_permissions"] == 0)
            failed |= not ok
            print(f"  {loaded['events']} events published in {loaded['publish_s']:.1f} s "
                  f"(publisher at most {loaded['publisher_behind_s']:.2f} s behind), all applied "
                  f"{loaded['drained_s']:.1f} s after the last; files with other than their last "
                  f"permissions: {loaded['wrong_permissions']}")
            for cycles, applied, lag in loaded["windows"]:
                print(f"    window: {cycles} cycles, {applied} events, lag p50 {lag['p50']} s "
                      f"p99 {lag['p99']} s max {lag['max']} s")
            print(f"  lag p99 (worst window) {loaded['p99']:.2f} s, p50 (median window) "
                  f"{loaded['p50']:.2f} s, peak RSS {loaded['rss']:.0f} MB  "
                  f"{'ok' if ok else 'MISSED'} (targets p99 ≤ 5 s, RSS ≤ 150 MB)")
    finally:
        for server in reversed(servers):
            server.stop()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
