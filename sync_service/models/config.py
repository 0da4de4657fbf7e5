"""Service configuration, read from the environment and a `.env` file (SPEC §8).

``SyncConfig.from_env`` is the only place in the service that reads the environment.
"""

from __future__ import annotations

import json
import logging
import os
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from sync_service.errors import ConfigError
from sync_service.models.source_url import parse_source_url
from sync_service.utils.globs import compile_glob, split_patterns
from sync_service.utils.redaction import MASK, connection_string_secrets, mask_url, url_passwords
from sync_service.utils.sizes import parse_size

logger = logging.getLogger(__name__)

DEFAULT_PERMISSIONS_JSON = '{"visibility":"private"}'
DEFAULT_MOCK_API_URL = "http://localhost:8001"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The region S3 requests are signed for while the bucket's own is not known.
DEFAULT_S3_REGION = "us-east-1"
#: ``S3_ADDRESSING``: ``auto`` is virtual-hosted on AWS, path-style on a custom endpoint.
S3_ADDRESSING_STYLES = ("auto", "path", "virtual")
SECRET_FIELDS = ("customer_s3_secret_key", "target_s3_secret_key", "api_token",
                 "azure_storage_connection_string", "azure_storage_key", "azure_storage_sas_token")
MASKED = MASK


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low < value <= high:
        raise ConfigError(f"{name} must be greater than {low} and at most {high}, got {value}")
    return value


UNLIMITED = ("", "0", "off", "unlimited")


def _limit(env: Mapping[str, str], name: str, high: float) -> float | None:
    """A rate limit (per second): None when empty, 0, off or unlimited."""
    raw = env.get(name, "").strip()
    if raw.lower() in UNLIMITED:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of requests per second (empty or 0: unlimited), "
                          f"got {raw!r}") from None
    if not 0 < value <= high:
        raise ConfigError(f"{name} must be greater than 0 and at most {high:g} (empty or 0: unlimited), got {raw!r}")
    return value


def _bandwidth(env: Mapping[str, str], name: str) -> float | None:
    """Bytes per second such as ``10M`` (binary multiples): None when empty, 0, off or unlimited."""
    raw = env.get(name, "").strip()
    if raw.lower() in UNLIMITED:
        return None
    try:
        value = parse_size(raw)
    except ValueError:
        raise ConfigError(f"{name} must be bytes per second such as 512K, 10M or 1G (empty or 0: "
                          f"unlimited), got {raw!r}") from None
    if value < 1024:
        raise ConfigError(f"{name} must be at least 1K (bytes per second), got {raw!r}")
    return float(value)


def _size(env: Mapping[str, str], name: str) -> int | None:
    """A size bound such as ``10M`` or ``1G`` (binary multiples): None when empty or off."""
    raw = env.get(name, "").strip()
    if raw.lower() in ("", "off"):
        return None
    try:
        return parse_size(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a size such as 100K, 10M or 1G (empty: no bound), "
                          f"got {raw!r}") from None


def _globs(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma- or newline-separated globs (``*``, ``**``, ``?``, ``[…]``), each checked."""
    patterns = split_patterns(env.get(name, ""))
    for pattern in patterns:
        try:
            compile_glob(pattern)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return patterns


def _bytes(env: Mapping[str, str], name: str, default: int) -> int:
    """A size in bytes such as ``64M`` (binary multiples), at least 1K; ``default`` when empty."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse_size(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a size such as 512K, 16M or 1G, got {raw!r}") from None
    if value < 1024:
        raise ConfigError(f"{name} must be at least 1K, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() not in {c.lower() for c in choices}:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return next(c for c in choices if c.lower() == raw.lower())


def _url(env: Mapping[str, str], name: str, default: str = "") -> str:
    raw = env.get(name, "").strip() or default
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {mask_url(raw)!r}")
    return raw.rstrip("/")


def _nats_url(env: Mapping[str, str]) -> str:
    raw = env.get("NATS_URL", "").strip() or "nats://localhost:4222"
    for url in raw.split(","):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.netloc:
            raise ConfigError(f"NATS_URL must be nats://host:port (comma-separated for a cluster), "
                              f"got {mask_url(url.strip())!r}")
    return raw


def _database_url(env: Mapping[str, str]) -> str:
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("postgresql", "postgres") or not parts.netloc:
        raise ConfigError("DATABASE_URL must be a PostgreSQL URL such as "
                          "postgresql://user@host:5432/database (or empty for SQLite at "
                          f"DATABASE_PATH), got {mask_url(raw)!r}")
    return raw


def parse_permissions(raw: str, *, source: str) -> dict[str, object] | None:
    """Parse a permissions JSON object; log a warning and return None when it is not one."""
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        logger.warning("%s is not valid JSON; using the default permissions", source)
        return None
    if not isinstance(value, dict):
        logger.warning("%s is not a JSON object; using the default permissions", source)
        return None
    return value


@dataclass(frozen=True)
class SyncConfig:
    """Every setting of the service, validated."""

    customer_s3_endpoint: str = ""
    customer_s3_access_key: str = ""
    customer_s3_secret_key: str = ""
    customer_s3_bucket: str = ""
    #: The region to sign for until the bucket says otherwise (us-east-1 when unset).
    customer_s3_region: str = DEFAULT_S3_REGION
    #: Whether CUSTOMER_S3_REGION was set: if not, the region is learnt from the bucket.
    customer_s3_region_set: bool = False
    customer_s3_prefix: str = ""
    s3_addressing: str = "auto"
    #: The store ``SOURCE_URL`` names: ``s3`` (also without SOURCE_URL), ``gcs`` or ``azure``.
    source_store: str = "s3"
    google_application_credentials: str = ""
    storage_emulator_host: str = ""
    google_cloud_project: str = ""
    azure_storage_connection_string: str = ""
    azure_storage_account: str = ""
    azure_storage_key: str = ""
    azure_storage_sas_token: str = ""
    target_s3_endpoint: str = ""
    target_s3_access_key: str = ""
    target_s3_secret_key: str = ""
    target_s3_bucket: str = ""
    target_s3_region: str = "us-east-1"
    mock_api_url: str = DEFAULT_MOCK_API_URL
    file_manager_api_url: str = ""
    api_token: str = ""
    api_timeout: float = 30.0
    s3_read_timeout: float = 60.0
    sync_interval: int = 300
    reconcile_interval: int = 86400
    event_debounce: float = 0.5
    report_interval: float = 60.0
    retention_days: int = 30
    sync_workers: int = 16
    worker_batch: int = 64
    worker_lease: float = 30.0
    listers: int = 8
    ranged_get_threshold: int = 64 * 1024 * 1024
    ranged_get_window: int = 16 * 1024 * 1024
    ranged_gets: int = 4
    database_outage_timeout: float = 120.0
    max_retries: int = 5
    data_dir: Path = Path("data")
    database_path: Path = Path("data/sync.db")
    database_url: str = ""
    export_dir: Path = Path("data/exports")
    events_dir: Path = Path("data/events")
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    log_format: str = "text"
    live_reload: bool = False
    metrics_port: int = 9090
    event_source: str = "file"
    nats_url: str = "nats://localhost:4222"
    nats_stream: str = "SYNC_EVENTS"
    nats_subject: str = "sync.events"
    nats_durable: str = "sync-service"
    nats_ack_wait: float = 120.0
    permissions_metadata_key: str = "permissions"
    default_permissions: dict[str, object] = field(
        default_factory=lambda: {"visibility": "private"}
    )
    report_urls: tuple[str, ...] = ()
    api_max_rps: float | None = None  # None: unlimited
    bwlimit: float | None = None  # upload bytes per second; None: unlimited
    include: tuple[str, ...] = ()  # globs (services/filters.py); empty: everything
    exclude: tuple[str, ...] = ()
    min_size: int | None = None  # bytes, inclusive; None: no bound
    max_size: int | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | str | None = ".env"
    ) -> SyncConfig:
        """Build the configuration from ``environ`` (default ``os.environ``) over ``env_file``."""
        from_file: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        # The environment first, then the file; read through, so tests can see what is read.
        env: Mapping[str, str] = ChainMap(
            os.environ if environ is None else environ,  # type: ignore[arg-type]
            from_file)

        data_dir = Path(env.get("DATA_DIR", "").strip() or "data")
        mock_api_url = _url(env, "MOCK_API_URL", DEFAULT_MOCK_API_URL)
        api_url = _url(env, "FILE_MANAGER_API_URL") or mock_api_url
        report_urls = tuple(
            _url({"REPORT_URLS": u}, "REPORT_URLS")
            for u in env.get("REPORT_URLS", "").replace(",", " ").split()
        ) or (f"{api_url}/syncResults",)
        if env.get("API_TOKEN", "").strip():
            # Two credentials for one request: the HTTP client refuses it, and no reading of
            # it would be safe to guess.
            named = [("FILE_MANAGER_API_URL", api_url)] + [("REPORT_URLS", u) for u in report_urls]
            for name, url in named:
                if urlsplit(url).password is not None:
                    raise ConfigError(f"{name} carries a user:password and API_TOKEN is set: "
                                      f"give one credential, got {mask_url(url)!r}")

        default_permissions = parse_permissions(
            env.get("DEFAULT_PERMISSIONS", "").strip() or DEFAULT_PERMISSIONS_JSON,
            source="DEFAULT_PERMISSIONS",
        ) or json.loads(DEFAULT_PERMISSIONS_JSON)

        prefix = env.get("CUSTOMER_S3_PREFIX", "").strip().lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"

        metadata_key = env.get("PERMISSIONS_METADATA_KEY", "").strip() or "permissions"
        if not metadata_key.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"PERMISSIONS_METADATA_KEY must be letters, digits, '-' or '_', got {metadata_key!r}"
            )

        access_key = env.get("CUSTOMER_S3_ACCESS_KEY", "").strip()
        secret_key = env.get("CUSTOMER_S3_SECRET_KEY", "").strip()
        if bool(access_key) != bool(secret_key):
            missing = "CUSTOMER_S3_SECRET_KEY" if access_key else "CUSTOMER_S3_ACCESS_KEY"
            raise ConfigError(f"{missing} is not set: give both keys, or neither to use the AWS "
                              "credential chain (environment, profile, web identity, instance)")
        region = env.get("CUSTOMER_S3_REGION", "").strip()
        min_size, max_size = _size(env, "MIN_SIZE"), _size(env, "MAX_SIZE")
        if min_size is not None and max_size is not None and min_size > max_size:
            raise ConfigError(f"MIN_SIZE ({min_size} bytes) is above MAX_SIZE ({max_size} bytes): "
                              "nothing would be synced")
        bucket = env.get("CUSTOMER_S3_BUCKET", "").strip()
        store = "s3"
        if env.get("SOURCE_URL", "").strip():
            # SOURCE_URL names the store, the bucket and the prefix; CUSTOMER_S3_* the rest.
            source = parse_source_url(env["SOURCE_URL"])
            store, bucket, prefix = source.store, source.bucket, source.prefix

        return cls(
            # AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL: the variables AWS's own tools honour.
            customer_s3_endpoint=(_url(env, "CUSTOMER_S3_ENDPOINT") or _url(env, "AWS_ENDPOINT_URL_S3")
                                  or _url(env, "AWS_ENDPOINT_URL")),
            customer_s3_access_key=access_key,
            customer_s3_secret_key=secret_key,
            customer_s3_bucket=bucket,
            customer_s3_region=region or DEFAULT_S3_REGION,
            customer_s3_region_set=bool(region),
            customer_s3_prefix=prefix,
            s3_addressing=_choice(env, "S3_ADDRESSING", "auto", S3_ADDRESSING_STYLES),
            source_store=store,
            # The variables each cloud's own tools honour.
            google_application_credentials=env.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip(),
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST", "").strip(),
            google_cloud_project=env.get("GOOGLE_CLOUD_PROJECT", "").strip(),
            azure_storage_connection_string=env.get("AZURE_STORAGE_CONNECTION_STRING", "").strip(),
            azure_storage_account=env.get("AZURE_STORAGE_ACCOUNT", "").strip(),
            azure_storage_key=env.get("AZURE_STORAGE_KEY", "").strip(),
            azure_storage_sas_token=env.get("AZURE_STORAGE_SAS_TOKEN", "").strip().lstrip("?"),
            target_s3_endpoint=_url(env, "TARGET_S3_ENDPOINT"),
            target_s3_access_key=env.get("TARGET_S3_ACCESS_KEY", "").strip(),
            target_s3_secret_key=env.get("TARGET_S3_SECRET_KEY", "").strip(),
            target_s3_bucket=env.get("TARGET_S3_BUCKET", "").strip(),
            target_s3_region=env.get("TARGET_S3_REGION", "").strip() or "us-east-1",
            mock_api_url=mock_api_url,
            file_manager_api_url=api_url,
            api_token=env.get("API_TOKEN", "").strip(),
            api_timeout=_float(env, "API_TIMEOUT", 30.0, 0.0, 3600.0),
            s3_read_timeout=_float(env, "S3_READ_TIMEOUT", 60.0, 0.0, 3600.0),
            sync_interval=_int(env, "SYNC_INTERVAL", 300, 1, 7 * 24 * 3600),
            reconcile_interval=_int(env, "RECONCILE_INTERVAL", 86400, 0, 365 * 24 * 3600),
            event_debounce=_float(env, "EVENT_DEBOUNCE", 0.5, 0.0, 3600.0),
            report_interval=_float(env, "REPORT_INTERVAL", 60.0, 0.0, 7 * 24 * 3600.0),
            retention_days=_int(env, "RETENTION_DAYS", 30, 0, 36500),
            sync_workers=_int(env, "SYNC_WORKERS", 16, 1, 256),
            worker_batch=_int(env, "WORKER_BATCH", 64, 1, 10_000),
            worker_lease=_float(env, "WORKER_LEASE_S", 30.0, 0.0, 7 * 24 * 3600.0),
            listers=_int(env, "LISTERS", 8, 1, 64),
            ranged_get_threshold=_bytes(env, "RANGED_GET_THRESHOLD", 64 << 20),
            ranged_get_window=_bytes(env, "RANGED_GET_WINDOW", 16 << 20),
            ranged_gets=_int(env, "RANGED_GETS", 4, 1, 64),
            database_outage_timeout=_float(env, "DATABASE_OUTAGE_TIMEOUT", 120.0, 0.0, 7 * 24 * 3600.0),
            max_retries=_int(env, "MAX_RETRIES", 5, 0, 50),
            data_dir=data_dir,
            database_path=Path(env.get("DATABASE_PATH", "").strip() or data_dir / "sync.db"),
            database_url=_database_url(env),
            export_dir=Path(env.get("EXPORT_DIR", "").strip() or data_dir / "exports"),
            events_dir=Path(env.get("EVENTS_DIR", "").strip() or data_dir / "events"),
            log_dir=Path(env.get("LOG_DIR", "").strip() or "logs"),
            log_level=_choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
            log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
            live_reload=_bool(env, "LIVE_RELOAD", False),
            metrics_port=_int(env, "METRICS_PORT", 9090, 0, 65535),
            event_source=_choice(env, "EVENT_SOURCE", "file", ("file", "nats")),
            nats_url=_nats_url(env),
            nats_stream=env.get("NATS_STREAM", "").strip() or "SYNC_EVENTS",
            nats_subject=env.get("NATS_SUBJECT", "").strip() or "sync.events",
            nats_durable=env.get("NATS_DURABLE", "").strip() or "sync-service",
            nats_ack_wait=_float(env, "NATS_ACK_WAIT", 120.0, 0.0, 24 * 3600.0),
            permissions_metadata_key=metadata_key.lower(),
            default_permissions=default_permissions,
            report_urls=report_urls,
            api_max_rps=_limit(env, "API_MAX_RPS", 1_000_000.0),
            bwlimit=_bandwidth(env, "BWLIMIT"),
            include=_globs(env, "INCLUDE"),
            exclude=_globs(env, "EXCLUDE"),
            min_size=min_size,
            max_size=max_size,
        )

    @property
    def api_base_url(self) -> str:
        """The file-manager API in use: ``FILE_MANAGER_API_URL``, else ``MOCK_API_URL``."""
        return self.file_manager_api_url or self.mock_api_url

    @property
    def database(self) -> Path | str:
        """Where the state is: the PostgreSQL URL (``DATABASE_URL``), else the SQLite file."""
        return self.database_url or self.database_path

    @property
    def database_shown(self) -> str:
        """Where the state is, safe to show: the URL with its password masked, or the path."""
        return mask_url(self.database_url) if self.database_url else str(self.database_path)

    @property
    def reports_dir(self) -> Path:
        """Where run reports are written."""
        return self.data_dir / "reports"

    @property
    def dead_letters_dir(self) -> Path:
        """Where rejected events are kept."""
        return self.data_dir / "dead-letters"

    def require_bucket(self) -> None:
        """Raise ConfigError unless a customer bucket is configured."""
        if not self.customer_s3_bucket:
            raise ConfigError("CUSTOMER_S3_BUCKET is not set: name the bucket to sync from "
                              "(or SOURCE_URL: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix)")

    def secrets(self) -> list[str]:
        """The secret values (SPEC §6): the secret keys, the API token, every URL's password."""
        values = [getattr(self, name) for name in SECRET_FIELDS]
        values += connection_string_secrets(self.azure_storage_connection_string)
        values += url_passwords((self.nats_url, self.api_base_url, self.mock_api_url,
                                 self.customer_s3_endpoint, self.target_s3_endpoint,
                                 self.database_url, *self.report_urls))
        return [v for v in values if v]

    def masked(self) -> dict[str, object]:
        """The configuration as plain values with every secret replaced by ``****``."""
        shown: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = MASKED if value else ""
            elif f.name.endswith("access_key") and value:
                value = value[:4] + MASKED
            elif isinstance(value, str) and "://" in value:
                value = mask_url(value)
            elif isinstance(value, tuple):
                value = [mask_url(v) for v in value]
            elif isinstance(value, Path):
                value = str(value)
            shown[f.name] = value
        return shown
