"""`make demo`: the whole initial sync on this machine, with nothing to configure.

Starts moto's S3 server and the mock file-manager API on free local ports, uploads
`test-data/` into a customer bucket, runs `initial-sync` and `status` through the real CLI,
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

from sync_service.clients.s3_manager import make_client  # noqa: E402
from sync_service.utils.local_servers import (  # noqa: E402
    ACCESS_KEY,
    SECRET_KEY,
    MockApiProcess,
    MotoS3,
    seed_folder,
)

BUCKET = "customer-bucket"


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_cli(workdir: Path, env: dict[str, str], *args: str) -> int:
    print(f"$ python -m sync_service.main {' '.join(args)}", flush=True)
    return subprocess.call([sys.executable, "-m", "sync_service.main", *args], cwd=workdir, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the initial sync against embedded servers.")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="s3-sync-demo-"))
    s3 = api = None
    try:
        banner("starting moto S3 and the mock file-manager API")
        s3 = MotoS3().start()
        api = MockApiProcess(workdir / "file-manager").start()
        print(f"S3 {s3.endpoint}   file manager {api.url}   working folder {workdir}")

        banner(f"uploading test-data/ to s3://{BUCKET}")
        client = make_client(endpoint_url=s3.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        permissions = json.loads((REPO / "scripts" / "test-data-permissions.json").read_text())
        print(f"{seed_folder(client, BUCKET, REPO / 'test-data', permissions)} files uploaded")

        env = {**os.environ, "PYTHONPATH": str(REPO), "CUSTOMER_S3_ENDPOINT": s3.endpoint,
               "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY,
               "CUSTOMER_S3_BUCKET": BUCKET, "MOCK_API_URL": api.url}
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
