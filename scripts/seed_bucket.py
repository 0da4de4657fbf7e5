"""Upload a folder into a bucket, with permissions metadata from a JSON manifest.

    python scripts/seed_bucket.py --endpoint URL --bucket NAME [--folder test-data]
        [--permissions scripts/test-data-permissions.json]

Credentials come from CUSTOMER_S3_ACCESS_KEY / CUSTOMER_S3_SECRET_KEY. The bucket is created
when missing. Used by `make demo` and the Compose init job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.local_servers import seed_folder
from sync_service.clients.s3_manager import make_client

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", default=os.environ.get("CUSTOMER_S3_ENDPOINT", ""))
    parser.add_argument("--bucket", default=os.environ.get("CUSTOMER_S3_BUCKET", "customer-bucket"))
    parser.add_argument("--folder", type=Path, default=HERE.parent / "test-data")
    parser.add_argument("--permissions", type=Path, default=HERE / "test-data-permissions.json")
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    client = make_client(endpoint_url=args.endpoint,
                         access_key=os.environ.get("CUSTOMER_S3_ACCESS_KEY", ""),
                         secret_key=os.environ.get("CUSTOMER_S3_SECRET_KEY", ""),
                         region=os.environ.get("CUSTOMER_S3_REGION", "us-east-1"))
    permissions = json.loads(args.permissions.read_text()) if args.permissions.is_file() else {}
    count = seed_folder(client, args.bucket, args.folder, permissions, args.prefix)
    print(f"uploaded {count} files from {args.folder} to s3://{args.bucket}/{args.prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
