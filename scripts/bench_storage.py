"""The data path's GET, client against client: the project's aiohttp + SigV4 path
(``S3DataPath``) and obstore's S3 client, against ``rclone serve s3`` over a local folder;
with ``--clouds``, obstore against fake-gcs-server and Azurite too (emulators: their own
speed dominates, so those rows say only that the path works at size).

Each client runs in a child process of its own that GETs every object, 64 in flight, reading
each body to the end in 1 MiB chunks; the parent takes the child's wall time, its CPU (user +
system) and its peak RSS from ``wait4``. Sets: 5000 × 1 KiB and 40 × 8 MiB (``--big`` adds one
1 GiB object, ``--big-only`` that one alone). Medians of ``--runs`` runs, the clients alternating within each run.

    .venv/bin/python scripts/bench_storage.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

IN_FLIGHT = 64
CHUNK = 1024 * 1024


async def get_all_aiohttp(endpoint: str, bucket: str, keys: list[str]) -> int:
    from botocore.credentials import Credentials

    from devtools.local_servers import ACCESS_KEY, SECRET_KEY
    from sync_service.clients.s3_data import S3DataPath
    from sync_service.clients.s3_location import BucketLocation, BucketRegion

    path = S3DataPath(BucketLocation(bucket, endpoint=endpoint, path_style=True, region=BucketRegion("us-east-1")),
                      credentials=Credentials(ACCESS_KEY, SECRET_KEY), pool_size=IN_FLIGHT)
    slots = asyncio.Semaphore(IN_FLIGHT)
    total = 0
    async with path.connect() as session:
        async def one(key: str) -> None:
            nonlocal total
            async with slots:
                obj = await session.open(key)
                try:
                    async for chunk in obj.chunks(CHUNK):
                        total += len(chunk)
                finally:
                    obj.close()
        await asyncio.gather(*(one(k) for k in keys))
    return total


async def get_all_obstore(store: object, keys: list[str]) -> int:
    import obstore

    slots = asyncio.Semaphore(IN_FLIGHT)
    total = 0

    async def one(key: str) -> None:
        nonlocal total
        async with slots:
            result = await obstore.get_async(store, key)  # type: ignore[arg-type]
            async for chunk in result.stream(min_chunk_size=CHUNK):
                total += len(chunk)
    await asyncio.gather(*(one(k) for k in keys))
    return total


def child(client: str, endpoint: str, bucket: str, keys_file: str) -> None:
    """One client GETs every key; prints the bytes read and the seconds taken."""
    keys = json.loads(Path(keys_file).read_text())
    started = time.perf_counter()
    if client == "aiohttp-s3":
        total = asyncio.run(get_all_aiohttp(endpoint, bucket, keys))
    else:
        from obstore.store import AzureStore, GCSStore, S3Store

        from devtools.cloud_emulators import AZURITE_ACCOUNT, AZURITE_KEY
        from devtools.local_servers import ACCESS_KEY, SECRET_KEY

        options = {"allow_http": True, "pool_max_idle_per_host": str(IN_FLIGHT)}
        store: object
        if client == "obstore-s3":
            store = S3Store(bucket, endpoint=endpoint, access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
                            region="us-east-1", virtual_hosted_style_request=False, client_options=options)
        elif client == "obstore-gcs":
            store = GCSStore(bucket, base_url=endpoint, skip_signature=True, client_options=options)
        else:
            store = AzureStore(bucket, account_name=AZURITE_ACCOUNT, account_key=AZURITE_KEY, endpoint=endpoint,
                               client_options=options)
        total = asyncio.run(get_all_obstore(store, keys))
        del store  # before the interpreter's finalization: see obstore_store.release_clients
        gc.collect()
    print(json.dumps({"bytes": total, "seconds": time.perf_counter() - started}))


def run_child(client: str, endpoint: str, bucket: str, keys_file: Path) -> dict[str, float]:
    """Start the child and reap it with wait4, for its own rusage."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.dup2(write, 1)
        os.execv(sys.executable, [sys.executable, __file__, "--child", client, endpoint, bucket, str(keys_file)])
    os.close(write)
    with os.fdopen(read) as pipe:
        out = pipe.read()
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        # Said, not raised: the other clients' rows still count.
        print(f"{client}: the child ended with wait status {status}; output {out[-200:]!r}", flush=True)
        return {"seconds": float("nan"), "cpu": float("nan"), "rss_mb": float("nan"), "bytes": -1}
    result = json.loads(out)
    return {"seconds": result["seconds"], "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024, "bytes": result["bytes"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("CLIENT", "ENDPOINT", "BUCKET", "KEYS"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="also one 1 GiB object")
    parser.add_argument("--big-only", action="store_true", help="only the 1 GiB object")
    parser.add_argument("--clouds", action="store_true", help="obstore against fake-gcs-server and Azurite too")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    from devtools.cloud_emulators import Azurite, FakeGcs
    from devtools.local_servers import RcloneS3

    sets = [] if args.big_only else [("5000 x 1 KiB", 5000, 1024), ("40 x 8 MiB", 40, 8 * 1024 * 1024)]
    if args.big or args.big_only:
        sets.append(("1 x 1 GiB", 1, 1024 * 1024 * 1024))
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        root = Path(tmp) / "s3"
        servers: list[object] = []
        rclone = RcloneS3(root)
        rows = []
        for name, count, size in sets:
            bucket = f"set-{count}-{size}"
            keys = [f"f/{n:05d}.bin" for n in range(count)]
            for key in keys:
                target = root / bucket / key
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    for _ in range(0, size, CHUNK):
                        out.write(os.urandom(min(CHUNK, size)))
            keys_file = Path(tmp) / f"{bucket}.json"
            keys_file.write_text(json.dumps(keys))
            targets = [("aiohttp-s3", "s3"), ("obstore-s3", "s3")]
            if args.clouds and size <= 8 * 1024 * 1024:
                targets += [("obstore-gcs", "gcs"), ("obstore-azure", "azure")]
            rows.append((name, keys, keys_file, bucket, targets, size))
        rclone.start()
        servers.append(rclone)
        gcs = azure = None
        if args.clouds:
            gcs, azure = FakeGcs().start(), Azurite().start()
            servers += [gcs, azure]
        try:
            for name, keys, keys_file, bucket, targets, size in rows:
                if gcs is not None and azure is not None and any(t[1] != "s3" for t in targets):
                    gcs.new_bucket(bucket)
                    azure.new_bucket(bucket)
                    for key in keys:
                        body = (root / bucket / key).read_bytes()
                        gcs.put(bucket, key, body)
                        azure.put(bucket, key, body)
                results: dict[str, list[dict[str, float]]] = {t[0]: [] for t in targets}
                for _ in range(args.runs):
                    for client, store in targets:
                        endpoint = {"s3": rclone.endpoint, "gcs": gcs.endpoint if gcs else "",
                                    "azure": azure.endpoint if azure else ""}[store]
                        results[client].append(run_child(client, endpoint, bucket, keys_file))
                for client, runs in results.items():
                    runs = [r for r in runs if r["bytes"] == len(keys) * size]
                    if not runs:
                        print(f"{name:14} {client:14} no complete run", flush=True)
                        continue
                    print(f"{name:14} {client:14} time {statistics.median(r['seconds'] for r in runs):7.2f} s  "
                          f"cpu {statistics.median(r['cpu'] for r in runs):7.2f} s  "
                          f"rss {statistics.median(r['rss_mb'] for r in runs):6.0f} MB  "
                          f"(runs: {', '.join(format(r['seconds'], '.2f') for r in runs)})", flush=True)
        finally:
            for server in servers:
                server.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
