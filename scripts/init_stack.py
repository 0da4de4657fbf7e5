"""The Compose init job: prepare NATS, seed the customer bucket, wire its notifications.

    python scripts/init_stack.py [--bucket customer-bucket] [--notify-arn ARN]

1. creates the JetStream stream and durable consumer the service reads (``NATS_*``), so MinIO
   can publish into JetStream from the first upload on (when ``EVENT_SOURCE=nats``);
2. uploads ``test-data/`` into the bucket (``CUSTOMER_S3_*``), as ``seed_bucket.py`` does;
3. asks the bucket to notify ``--notify-arn`` (default ``arn:minio:sqs::PRIMARY:nats``, the
   MinIO NATS target configured by ``MINIO_NOTIFY_NATS_*_PRIMARY``) of every object created or
   removed. An empty ARN skips this step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.local_servers import seed_folder
from sync_service.clients.s3_manager import make_client
from sync_service.models.config import SyncConfig
from sync_service.runs.sync_service import SyncService, close_source

HERE = Path(__file__).resolve().parent
DEFAULT_ARN = "arn:minio:sqs::PRIMARY:nats"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bucket", default=None, help="default: CUSTOMER_S3_BUCKET")
    parser.add_argument("--notify-arn", default=DEFAULT_ARN)
    parser.add_argument("--folder", type=Path, default=HERE.parent / "test-data")
    args = parser.parse_args()
    config = SyncConfig.from_env()
    bucket = args.bucket or config.customer_s3_bucket or "customer-bucket"

    if config.event_source == "nats":
        source = SyncService(config).event_source()
        try:
            source.ensure()  # type: ignore[attr-defined]
        finally:
            close_source(source)
        print(f"NATS stream {config.nats_stream} on {config.nats_subject}, consumer {config.nats_durable}: ready")

    client = make_client(endpoint_url=config.customer_s3_endpoint, access_key=config.customer_s3_access_key,
                         secret_key=config.customer_s3_secret_key, region=config.customer_s3_region)
    permissions = json.loads((HERE / "test-data-permissions.json").read_text())
    count = seed_folder(client, bucket, args.folder, permissions)
    print(f"uploaded {count} files from {args.folder} to s3://{bucket}")

    if args.notify_arn:
        client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"Id": "s3-sync-service", "QueueArn": args.notify_arn,
                                     "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
        print(f"bucket {bucket} notifies {args.notify_arn} of created and removed objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
