"""Run the mock file manager: ``python -m mock_api [--host H] [--port P]`` (settings from env)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from mock_api.app import create_app
from mock_api.storage import DiskStorage, S3Storage, Storage

#: Exit status for bad configuration, like argparse's usage errors.
EXIT_BAD_CONFIG = 2
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class ConfigError(Exception):
    """A setting has a bad value; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything ``python -m mock_api`` needs; secrets are kept out of repr."""

    host: str = "0.0.0.0"
    port: int = 8001
    token: str | None = field(default=None, repr=False)
    storage: str = "disk"
    storage_dir: Path = Path("data/mock-storage")
    s3_endpoint: str | None = None
    s3_access_key: str | None = field(default=None, repr=False)
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_bucket: str = "target-bucket"
    s3_region: str = "us-east-1"


def _port(value: str, name: str) -> int:
    """Parse a TCP port or raise ConfigError naming ``name``."""
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer 1-65535, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be an integer 1-65535, got {value!r}")
    return port


def parse_settings(env: Mapping[str, str], argv: Sequence[str] | None = None) -> Settings:
    """Build Settings from ``env`` and command-line flags (flags win); raise ConfigError on bad values."""
    parser = argparse.ArgumentParser(prog="python -m mock_api", description="Mock file-manager API.")
    parser.add_argument("--host", help="bind address (overrides MOCK_API_HOST)")
    parser.add_argument("--port", help="TCP port (overrides MOCK_API_PORT)")
    args = parser.parse_args(argv)

    host = args.host if args.host is not None else env.get("MOCK_API_HOST", "0.0.0.0")
    if not host.strip():
        raise ConfigError("MOCK_API_HOST / --host must not be empty")
    port = (
        _port(args.port, "--port")
        if args.port is not None
        else _port(env.get("MOCK_API_PORT", "8001"), "MOCK_API_PORT")
    )
    # An empty API_TOKEN means "no auth", as if it were unset.
    token = env.get("API_TOKEN") or None

    storage = env.get("MOCK_STORAGE", "disk").strip().lower()
    if storage not in ("disk", "s3"):
        raise ConfigError(f"MOCK_STORAGE must be 'disk' or 's3', got {storage!r}")
    storage_dir = env.get("MOCK_STORAGE_DIR", "data/mock-storage")
    if not storage_dir.strip():
        raise ConfigError("MOCK_STORAGE_DIR must not be empty")

    endpoint = env.get("TARGET_S3_ENDPOINT") or None
    access_key = env.get("TARGET_S3_ACCESS_KEY") or None
    secret_key = env.get("TARGET_S3_SECRET_KEY") or None
    bucket = env.get("TARGET_S3_BUCKET") or "target-bucket"
    region = env.get("TARGET_S3_REGION") or "us-east-1"
    if storage == "s3":
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"TARGET_S3_ENDPOINT must start with http:// or https://, got {endpoint!r}")
        if (access_key is None) != (secret_key is None):
            missing = "TARGET_S3_SECRET_KEY" if secret_key is None else "TARGET_S3_ACCESS_KEY"
            raise ConfigError(f"{missing} must be set together with the other TARGET_S3_* key")
        if not _BUCKET_RE.match(bucket):
            raise ConfigError(f"TARGET_S3_BUCKET is not a valid bucket name: {bucket!r}")
        if not re.match(r"^[a-z0-9-]+$", region):
            raise ConfigError(f"TARGET_S3_REGION is not a valid region name: {region!r}")

    return Settings(
        host=host,
        port=port,
        token=token,
        storage=storage,
        storage_dir=Path(storage_dir),
        s3_endpoint=endpoint,
        s3_access_key=access_key,
        s3_secret_key=secret_key,
        s3_bucket=bucket,
        s3_region=region,
    )


def build_storage(settings: Settings) -> Storage:
    """Create the storage backend chosen by ``settings``; raise ConfigError when it cannot be used."""
    if settings.storage == "disk":
        try:
            return DiskStorage(settings.storage_dir)
        except OSError as exc:
            raise ConfigError(f"MOCK_STORAGE_DIR {str(settings.storage_dir)!r} is not usable: {exc}") from None

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        # Uploads run in up to 40 worker threads; the default pool of 10 would thrash.
        config=Config(max_pool_connections=64, retries={"max_attempts": 3, "mode": "standard"}),
    )
    try:
        return S3Storage(client, settings.s3_bucket)
    except (BotoCoreError, ClientError) as exc:
        where = settings.s3_endpoint or "AWS"
        raise ConfigError(
            f"TARGET_S3_BUCKET {settings.s3_bucket!r} at TARGET_S3_ENDPOINT {where!r} is not usable: {exc}"
        ) from None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point: parse settings, build storage and app, serve until interrupted."""
    try:
        settings = parse_settings(os.environ if env is None else env, argv)
        storage = build_storage(settings)
    except ConfigError as exc:
        print(f"mock_api: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    app = create_app(storage, token=settings.token)
    where = settings.storage_dir if settings.storage == "disk" else f"s3://{settings.s3_bucket}"
    # Says whether auth is on, never what the token is.
    print(
        f"mock_api: serving on http://{settings.host}:{settings.port} "
        f"(storage {settings.storage}: {where}, auth {'on' if settings.token else 'off'})",
        file=sys.stderr,
    )
    # No proxy in front and no access log: both cost CPU on every request.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                proxy_headers=False, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
