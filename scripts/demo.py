"""`make demo`: the whole initial sync on this machine, with nothing to configure.

Starts moto's S3 server (`--source gcs`: fake-gcs-server; `--source azure`: Azurite, from
`npm ci`) and the mock file-manager API on free local ports, uploads `test-data/` into a
customer bucket (container), runs `initial-sync` and `status` through the real CLI,
prints what the file manager now holds, and stops everything. Pass --keep to keep the
working folder (database, exports, reports, logs) for a look afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from devtools.cloud_emulators import Azurite, FakeGcs  # noqa: E402
from devtools.local_servers import (  # noqa: E402
    ACCESS_KEY,
    SECRET_KEY,
    MockApiProcess,
    MotoS3,
    seed_folder,
)
from sync_service.clients.s3_manager import make_client  # noqa: E402

BUCKET = "customer-bucket"


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_cli(workdir: Path, env: dict[str, str], *args: str) -> int:
    print(f"$ python -m sync_service.main {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "sync_service.main", *args], cwd=workdir, env=env)


def seed_emulator(emulator: FakeGcs | Azurite, permissions: dict[str, object]) -> int:
    """Upload test-data/ into the emulator's bucket, permissions as user metadata."""
    emulator.new_bucket(BUCKET)
    count = 0
    for path in sorted(p for p in (REPO / "test-data").rglob("*") if p.is_file()):
        relative = path.relative_to(REPO / "test-data").as_posix()
        metadata = {"permissions": json.dumps(permissions[relative])} if relative in permissions else None
        emulator.put(BUCKET, relative, path.read_bytes(), metadata)
        count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the initial sync against embedded servers.")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--source", choices=("s3", "gcs", "azure"), default="s3",
                        help="the store the bucket is in (an emulator of it)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="s3-sync-demo-"))
    s3: MotoS3 | FakeGcs | Azurite | None = None
    api = None
    try:
        name = {"s3": "moto S3", "gcs": "fake-gcs-server", "azure": "Azurite"}[args.source]
        banner(f"starting {name} and the mock file-manager API")
        s3 = {"s3": MotoS3, "gcs": FakeGcs, "azure": Azurite}[args.source]().start()
        api = MockApiProcess(workdir / "file-manager").start()
        print(f"{name} {s3.endpoint}   file manager {api.url}   working folder {workdir}")

        scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[args.source]
        banner(f"uploading test-data/ to {scheme}://{BUCKET}")
        permissions = json.loads((REPO / "scripts" / "test-data-permissions.json").read_text())
        env = {**os.environ, "PYTHONPATH": str(REPO), "MOCK_API_URL": api.url}
        if isinstance(s3, MotoS3):
            client = make_client(endpoint_url=s3.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
            print(f"{seed_folder(client, BUCKET, REPO / 'test-data', permissions)} files uploaded")
            env.update({"CUSTOMER_S3_ENDPOINT": s3.endpoint, "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY,
                        "CUSTOMER_S3_SECRET_KEY": SECRET_KEY, "CUSTOMER_S3_BUCKET": BUCKET})
        else:
            print(f"{seed_emulator(s3, permissions)} files uploaded")
            env.update({"SOURCE_URL": f"{scheme}://{BUCKET}", **s3.env()})
        env.pop("FILE_MANAGER_API_URL", None)
        banner("initial sync")
        sync_code = run_cli(workdir, env, "initial-sync")
        banner("status")
        run_cli(workdir, env, "status")

        banner("what the file manager holds")
        files = requests.get(f"{api.url}/files", timeout=10).json()
        for entry in files:
            perms = json.dumps(entry["permissions"], separators=(",", ":"))
            print(f"{entry['size']:>9}  {entry['sha256'][:12]}  {entry['path']}  {perms}")
        print(f"{len(files)} files")
        return sync_code
    finally:
        if api is not None:
            api.stop()
        if s3 is not None:
            s3.stop()
        if args.keep:
            print(f"\nworking folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
