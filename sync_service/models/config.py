"""Service configuration, read from the environment and a `.env` file.

``SyncConfig.from_env`` is the only place in the service that reads the environment. Every
setting is written once, in ``SETTINGS``: its variable, default, parser and description drive
the parsing here, the configuration page of the docs and ``.env.example``
(``scripts/gen_config_docs.py`` writes both; a test fails when either is stale).
"""

from __future__ import annotations

import json
import logging
import os
from collections import ChainMap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from sync_service.errors import ConfigError
from sync_service.models.source_url import SourceUrl, parse_source_url
from sync_service.utils.globs import compile_glob, split_patterns
from sync_service.utils.permissions import parse_permissions
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
MASKED = MASK
UNLIMITED = ("", "0", "off", "unlimited")

#: A parser turns a variable's name and its text (stripped; the default when empty) into a value,
#: or raises ConfigError with one line naming the variable.
Parser = Callable[[str, str], object]


def _text(name: str, raw: str) -> str:
    return raw


def _integer(low: int, high: int) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        return value
    return parse


def _number(low: float, high: float) -> Parser:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not low < value <= high:
            raise ConfigError(f"{name} must be greater than {low} and at most {high}, got {value}")
        return value
    return parse


def _limit(high: float) -> Parser:
    """A rate limit (per second): None when empty, 0, off or unlimited."""
    def parse(name: str, raw: str) -> float | None:
        if raw.lower() in UNLIMITED:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of requests per second (empty or 0: unlimited), "
                              f"got {raw!r}") from None
        if not 0 < value <= high:
            raise ConfigError(f"{name} must be greater than 0 and at most {high:g} (empty or 0: unlimited), "
                              f"got {raw!r}")
        return value
    return parse


def _bandwidth(name: str, raw: str) -> float | None:
    """Bytes per second such as ``10M`` (binary multiples): None when empty, 0, off or unlimited."""
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


def _size(name: str, raw: str) -> int | None:
    """A size bound such as ``10M`` or ``1G`` (binary multiples): None when empty or off."""
    if raw.lower() in ("", "off"):
        return None
    try:
        return parse_size(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a size such as 100K, 10M or 1G (empty: no bound), "
                          f"got {raw!r}") from None


def _globs(name: str, raw: str) -> tuple[str, ...]:
    """Comma- or newline-separated globs (``*``, ``**``, ``?``, ``[…]``), each checked."""
    patterns = split_patterns(raw)
    for pattern in patterns:
        try:
            compile_glob(pattern)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return patterns


def _bytes(name: str, raw: str) -> int:
    """A size in bytes such as ``64M`` (binary multiples), at least 1K."""
    try:
        value = parse_size(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a size such as 512K, 16M or 1G, got {raw!r}") from None
    if value < 1024:
        raise ConfigError(f"{name} must be at least 1K, got {raw!r}")
    return value


def _bool(name: str, raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw.lower()!r}")


def _choice(*choices: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        for choice in choices:
            if choice.lower() == raw.lower():
                return choice
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return parse


def _url(name: str, raw: str) -> str:
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {mask_url(raw)!r}")
    return raw.rstrip("/")


def _urls(name: str, raw: str) -> tuple[str, ...]:
    """Space- or comma-separated http(s) URLs."""
    return tuple(_url(name, u) for u in raw.replace(",", " ").split())


def _nats_url(name: str, raw: str) -> str:
    for url in raw.split(","):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.netloc:
            raise ConfigError(f"{name} must be nats://host:port (comma-separated for a cluster), "
                              f"got {mask_url(url.strip())!r}")
    return raw


def _database_url(name: str, raw: str) -> str:
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("postgresql", "postgres") or not parts.netloc:
        raise ConfigError(f"{name} must be a PostgreSQL URL such as "
                          "postgresql://user@host:5432/database (or empty for SQLite at "
                          f"DATABASE_PATH), got {mask_url(raw)!r}")
    return raw


def _path(name: str, raw: str) -> Path | None:
    return Path(raw) if raw else None


def _prefix(name: str, raw: str) -> str:
    prefix = raw.lstrip("/")
    return prefix + "/" if prefix and not prefix.endswith("/") else prefix


def _source_url(name: str, raw: str) -> SourceUrl | None:
    return parse_source_url(raw) if raw else None


def _sas_token(name: str, raw: str) -> str:
    return raw.lstrip("?")


def _metadata_key(name: str, raw: str) -> str:
    if not raw.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{name} must be letters, digits, '-' or '_', got {raw!r}")
    return raw.lower()


def _permissions(name: str, raw: str) -> dict[str, object]:
    """A permissions JSON object; a bad one is logged and the default used (never fatal)."""
    parsed = parse_permissions(raw, source=name)
    return parsed if parsed is not None else dict(json.loads(DEFAULT_PERMISSIONS_JSON))


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default (as written in ``.env``), parser and meaning."""

    env: str
    default: str
    parse: Parser
    doc: str
    group: str
    #: The SyncConfig attribute it fills; empty for a variable read in another's place.
    attr: str = ""
    secret: bool = False
    #: Read in turn when this one is empty (the first set one is parsed, under its own name).
    fallbacks: tuple[str, ...] = ()
    #: The default as the docs show it, when it is not a plain value (it depends on another).
    shown_default: str = ""


def _s(env: str, default: str, parse: Parser, doc: str, group: str, attr: str | None = None,
       **extra: object) -> Setting:
    return Setting(env, default, parse, doc, group, env.lower() if attr is None else attr,
                   **extra)  # type: ignore[arg-type]


S3, GCS, AZ, API, TRANSFER, FILTER, STATE, LOGS, DAEMON, NATS, MOCK = (
    "S3 source", "Google Cloud Storage source", "Azure Blob Storage source", "File-manager API",
    "Transfers and limits", "What is synced", "State and files", "Logs", "Daemon", "NATS events",
    "Mock file-manager API")

#: Every setting of the service, in the order the docs and ``.env.example`` show them.
SETTINGS: tuple[Setting, ...] = (
    _s("SOURCE_URL", "", _source_url,
       "`s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`: the store, bucket "
       "and prefix; wins over `CUSTOMER_S3_BUCKET` and `CUSTOMER_S3_PREFIX`", S3, attr="",
       shown_default="`CUSTOMER_S3_BUCKET` and `CUSTOMER_S3_PREFIX`"),
    _s("CUSTOMER_S3_ENDPOINT", "", _url,
       "S3 endpoint URL (`http(s)://…`) of an S3-compatible server; leave it, "
       "`AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL` unset for AWS", S3,
       fallbacks=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
       shown_default="`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS"),
    _s("CUSTOMER_S3_ACCESS_KEY", "", _text,
       "S3 access key, with `CUSTOMER_S3_SECRET_KEY` (both or neither; one alone: exit 2). "
       "Neither: botocore's credential chain (environment `AWS_ACCESS_KEY_ID`…, profile "
       "`AWS_PROFILE`, web identity `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` as on EKS, "
       "container and instance credentials), refreshed before they expire", S3,
       shown_default="botocore's credential chain"),
    _s("CUSTOMER_S3_SECRET_KEY", "", _text, "S3 secret key, with `CUSTOMER_S3_ACCESS_KEY`", S3,
       secret=True, shown_default="botocore's credential chain"),
    _s("CUSTOMER_S3_BUCKET", "", _text, "the bucket (required to sync, unless `SOURCE_URL` names it)",
       S3),
    _s("CUSTOMER_S3_REGION", "", _text,
       "the region requests are signed for. Unset: learnt from the bucket's answers and kept for "
       "the process. Set: used as given; a bucket elsewhere makes `status` and `check` fail "
       "naming its region", S3,
       shown_default=f"learnt from the bucket (`{DEFAULT_S3_REGION}` until then)"),
    _s("CUSTOMER_S3_PREFIX", "", _prefix,
       "only keys below this folder; paths are relative to it (`team` and `team/` are the same)",
       S3),
    _s("S3_ADDRESSING", "auto", _choice(*S3_ADDRESSING_STYLES),
       "`auto`: virtual-hosted (`bucket.s3.region.amazonaws.com`) on AWS, path-style "
       "(`endpoint/bucket`) on another endpoint and, on AWS, for bucket names with dots; `path` "
       "or `virtual` to choose", S3),
    _s("S3_READ_TIMEOUT", "60", _number(0.0, 3600.0),
       "seconds an S3 answer or body may stay silent before that request fails (listing and "
       "objects)", S3),
    _s("GOOGLE_APPLICATION_CREDENTIALS", "", _text,
       "a `gs://` source's service-account credentials file (unset: the machine's metadata "
       "server)", GCS),
    _s("STORAGE_EMULATOR_HOST", "", _text,
       "fake-gcs-server's address (requests unsigned)", GCS),
    _s("GOOGLE_CLOUD_PROJECT", "", _text, "the project (read, not needed)", GCS),
    _s("AZURE_STORAGE_CONNECTION_STRING", "", _text,
       "an `az://` source's connection string (`BlobEndpoint` for Azurite); or give the account "
       "below", AZ, secret=True),
    _s("AZURE_STORAGE_ACCOUNT", "", _text,
       "the storage account: with its key or a SAS token, or alone for a managed identity", AZ),
    _s("AZURE_STORAGE_KEY", "", _text, "the account's key", AZ, secret=True),
    _s("AZURE_STORAGE_SAS_TOKEN", "", _sas_token, "a SAS token (a leading `?` is dropped)", AZ,
       secret=True),
    _s("FILE_MANAGER_API_URL", "", _url, "the file-manager API", API,
       shown_default="`MOCK_API_URL`"),
    _s("MOCK_API_URL", DEFAULT_MOCK_API_URL, _url,
       "the API when `FILE_MANAGER_API_URL` is empty", API),
    _s("API_TOKEN", "", _text,
       "sent as `Authorization: Bearer …`; with it set, a `user:password@` in "
       "`FILE_MANAGER_API_URL` or `REPORT_URLS` is refused (two credentials for one request)",
       API, secret=True),
    _s("API_TIMEOUT", "30", _number(0.0, 3600.0),
       "seconds to wait for an API answer (connect: at most 10)", API),
    _s("MAX_RETRIES", "5", _integer(0, 50),
       "retries per API call; S3 attempts are `MAX_RETRIES` + 1", API),
    _s("REPORT_URLS", "", _urls,
       "where run reports are posted (space- or comma-separated)", API,
       shown_default="`<api>/syncResults`"),
    _s("PERMISSIONS_METADATA_KEY", "permissions", _metadata_key,
       "user-metadata key holding an object's permissions JSON (letters, digits, `-`, `_`)", API),
    _s("DEFAULT_PERMISSIONS", DEFAULT_PERMISSIONS_JSON, _permissions,
       "permissions of objects without that metadata (not a JSON object: a warning, and the "
       "default)", API),
    _s("SYNC_WORKERS", "16", _integer(1, 256), "concurrent transfers (1–256)", TRANSFER),
    _s("LISTERS", "8", _integer(1, 64),
       "listers of the initial listing's key ranges in one process (a run's or a `worker`'s; "
       "1–64): ranges are listed this many at once, as rclone's checkers list folders", TRANSFER),
    _s("RANGED_GET_THRESHOLD", "64M", _bytes,
       "objects larger than this are read as ranged GETs of `RANGED_GET_WINDOW` each, "
       "`RANGED_GETS` at once, and handed to `saveToDisk` in order as one stream", TRANSFER),
    _s("RANGED_GET_WINDOW", "16M", _bytes, "the size of one ranged GET", TRANSFER),
    _s("RANGED_GETS", "4", _integer(1, 64),
       "ranged GETs of one object at once (memory: at most this many windows an object); `1`: "
       "one GET an object", TRANSFER),
    _s("API_MAX_RPS", "", _limit(1_000_000.0),
       "requests a second to the file manager, all calls of the process; empty or `0`: "
       "unlimited", TRANSFER, shown_default="unlimited"),
    _s("BWLIMIT", "", _bandwidth,
       "upload bytes a second to the file manager, such as `512K`, `10M`, `1G` (binary "
       "multiples: `1M` is 1 MiB); empty or `0`: unlimited", TRANSFER, shown_default="unlimited"),
    _s("WORKER_BATCH", "64", _integer(1, 10_000),
       "a claim's size (a run's or a `worker`'s, on either database): operations at once",
       TRANSFER),
    _s("WORKER_LEASE_S", "30", _number(0.0, 7 * 24 * 3600.0),
       "seconds a claim's lease lasts unless its holder's heartbeat (every third of it) renews it",
       TRANSFER, attr="worker_lease"),
    _s("INCLUDE", "", _globs,
       "globs selecting what is synced, comma- or newline-separated; empty: everything not "
       "excluded", FILTER),
    _s("EXCLUDE", "", _globs, "globs of what is not synced (wins over `INCLUDE`)", FILTER),
    _s("MIN_SIZE", "", _size,
       "only objects of at least this size are synced, such as `1`, `10M`, `1G` (binary "
       "multiples; inclusive)", FILTER, shown_default="no bound"),
    _s("MAX_SIZE", "", _size, "only objects of at most this size are synced (inclusive)", FILTER,
       shown_default="no bound"),
    _s("DATA_DIR", "data", _text,
       "home of `sync.db`, `exports/`, `reports/`, `dead-letters/`, `events/`", STATE),
    _s("DATABASE_PATH", "", _path, "the SQLite file", STATE,
       shown_default="`$DATA_DIR/sync.db`"),
    _s("DATABASE_URL", "", _database_url,
       "`postgresql://user:password@host:5432/database`: keep the state in PostgreSQL instead "
       "of SQLite at `DATABASE_PATH`; its password is masked like any URL's", STATE),
    _s("DATABASE_OUTAGE_TIMEOUT", "120", _number(0.0, 7 * 24 * 3600.0),
       "seconds a one-off command waits for a database that went away before it exits 1; a "
       "worker and a daemon wait as long as it takes", STATE),
    _s("EXPORT_DIR", "", _path, "where `export` writes", STATE,
       shown_default="`$DATA_DIR/exports`"),
    _s("EVENTS_DIR", "", _path, "the spool folder of `EVENT_SOURCE=file`", STATE,
       shown_default="`$DATA_DIR/events`"),
    _s("LOG_DIR", "logs", _text, "`sync.log` goes here; console only if it cannot be written",
       LOGS),
    _s("LOG_LEVEL", "INFO", _choice(*LOG_LEVELS), "`DEBUG`, `INFO`, `WARNING`, `ERROR`, "
       "`CRITICAL`", LOGS),
    _s("LOG_FORMAT", "text", _choice("text", "json"), "`text` or `json` (one object per line)",
       LOGS),
    _s("EVENT_SOURCE", "file", _choice("file", "nats"),
       "where events come from: `file` (the spool folder `EVENTS_DIR`) or `nats`", DAEMON),
    _s("SYNC_INTERVAL", "300", _integer(1, 7 * 24 * 3600),
       "the longest wait between the daemon's cycles (events start one sooner)", DAEMON),
    _s("EVENT_DEBOUNCE", "0.5", _number(0.0, 3600.0),
       "seconds from an event's arrival to the daemon's cycle that takes it and what came "
       "meanwhile (more than 0, at most 3600)", DAEMON),
    _s("REPORT_INTERVAL", "60", _number(0.0, 7 * 24 * 3600.0),
       "seconds of event-driven cycles that share one run and report (more than 0)", DAEMON),
    _s("RECONCILE_INTERVAL", "86400", _integer(0, 365 * 24 * 3600),
       "seconds between the daemon's reconciles (`0`: none)", DAEMON),
    _s("RETENTION_DAYS", "30", _integer(0, 36500),
       "the daemon removes exports, reports, dead letters and processed spool files older than "
       "this, and the database rows below (`0`: keeps everything)", DAEMON),
    _s("METRICS_PORT", "9090", _integer(0, 65535),
       "the daemon's status page `/`, `/api/status`, `/livez`, `/readyz`, `/health` and "
       "`/metrics`", DAEMON),
    _s("LIVE_RELOAD", "false", _bool,
       "restart the daemon when a `.py` file under `sync_service/` changes", DAEMON),
    _s("NATS_URL", "nats://localhost:4222", _nats_url,
       "the NATS server (comma-separated for a cluster; a password in it is masked)", NATS),
    _s("NATS_STREAM", "SYNC_EVENTS", _text, "the JetStream stream", NATS),
    _s("NATS_SUBJECT", "sync.events", _text, "its subject", NATS),
    _s("NATS_DURABLE", "sync-service", _text, "the durable consumer", NATS),
    _s("NATS_ACK_WAIT", "120", _number(0.0, 24 * 3600.0),
       "seconds before an unacknowledged message is delivered again", NATS),
    # The mock API's own setting; the service reads it only to mask it, as one environment
    # (a shell, a CI job) often holds both.
    _s("TARGET_S3_SECRET_KEY", "", _text,
       "the mock file-manager API's bucket key: read only so that it is masked should it show "
       "in the service's output", MOCK, secret=True),
)

SECRET_FIELDS = tuple(s.attr for s in SETTINGS if s.secret)


def _read(env: Mapping[str, str], setting: Setting) -> object:
    """Parse one setting: the first of its variable and fallbacks that is set, else the default."""
    for name in (setting.env, *setting.fallbacks):
        raw = env.get(name, "").strip()
        if raw:
            return setting.parse(name, raw)
    return setting.parse(setting.env, setting.default)


@dataclass(frozen=True)
class SyncConfig:
    """Every setting of the service, validated (defaults and meanings: ``SETTINGS``)."""

    customer_s3_endpoint: str
    customer_s3_access_key: str
    customer_s3_secret_key: str
    customer_s3_bucket: str
    #: The region to sign for until the bucket says otherwise (us-east-1 when unset).
    customer_s3_region: str
    #: Whether CUSTOMER_S3_REGION was set: if not, the region is learnt from the bucket.
    customer_s3_region_set: bool
    customer_s3_prefix: str
    s3_addressing: str
    #: The store ``SOURCE_URL`` names: ``s3`` (also without SOURCE_URL), ``gcs`` or ``azure``.
    source_store: str
    google_application_credentials: str
    storage_emulator_host: str
    google_cloud_project: str
    azure_storage_connection_string: str
    azure_storage_account: str
    azure_storage_key: str
    azure_storage_sas_token: str
    mock_api_url: str
    file_manager_api_url: str
    api_token: str
    api_timeout: float
    s3_read_timeout: float
    sync_interval: int
    reconcile_interval: int
    event_debounce: float
    report_interval: float
    retention_days: int
    sync_workers: int
    worker_batch: int
    worker_lease: float
    listers: int
    ranged_get_threshold: int
    ranged_get_window: int
    ranged_gets: int
    database_outage_timeout: float
    max_retries: int
    data_dir: Path
    database_path: Path
    database_url: str
    export_dir: Path
    events_dir: Path
    log_dir: Path
    log_level: str
    log_format: str
    live_reload: bool
    metrics_port: int
    event_source: str
    nats_url: str
    nats_stream: str
    nats_subject: str
    nats_durable: str
    nats_ack_wait: float
    target_s3_secret_key: str
    permissions_metadata_key: str
    default_permissions: dict[str, object]
    report_urls: tuple[str, ...]
    api_max_rps: float | None  # None: unlimited
    bwlimit: float | None  # upload bytes per second; None: unlimited
    include: tuple[str, ...]  # globs (planning/filters.py); empty: everything
    exclude: tuple[str, ...]
    min_size: int | None  # bytes, inclusive; None: no bound
    max_size: int | None

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
        read = {s.env: _read(env, s) for s in SETTINGS}
        values: dict[str, Any] = {s.attr: read[s.env] for s in SETTINGS if s.attr}

        # What one variable cannot check alone, or what depends on another.
        api_url = values["file_manager_api_url"] or values["mock_api_url"]
        values["file_manager_api_url"] = api_url
        values["report_urls"] = values["report_urls"] or (f"{api_url}/syncResults",)
        if values["api_token"]:
            # Two credentials for one request: the HTTP client refuses it, and no reading of
            # it would be safe to guess.
            named = [("FILE_MANAGER_API_URL", api_url)] + [("REPORT_URLS", u) for u in values["report_urls"]]
            for name, url in named:
                if urlsplit(url).password is not None:
                    raise ConfigError(f"{name} carries a user:password and API_TOKEN is set: "
                                      f"give one credential, got {mask_url(url)!r}")
        if bool(values["customer_s3_access_key"]) != bool(values["customer_s3_secret_key"]):
            missing = "CUSTOMER_S3_SECRET_KEY" if values["customer_s3_access_key"] else "CUSTOMER_S3_ACCESS_KEY"
            raise ConfigError(f"{missing} is not set: give both keys, or neither to use the AWS "
                              "credential chain (environment, profile, web identity, instance)")
        min_size, max_size = values["min_size"], values["max_size"]
        if min_size is not None and max_size is not None and min_size > max_size:
            raise ConfigError(f"MIN_SIZE ({min_size} bytes) is above MAX_SIZE ({max_size} bytes): "
                              "nothing would be synced")
        values["customer_s3_region_set"] = bool(values["customer_s3_region"])
        values["customer_s3_region"] = values["customer_s3_region"] or DEFAULT_S3_REGION
        values["source_store"] = "s3"
        source = read["SOURCE_URL"]
        if isinstance(source, SourceUrl):
            # SOURCE_URL names the store, the bucket and the prefix; CUSTOMER_S3_* the rest.
            values["source_store"] = source.store
            values["customer_s3_bucket"], values["customer_s3_prefix"] = source.bucket, source.prefix
        data_dir = values["data_dir"] = Path(str(values["data_dir"]))
        values["log_dir"] = Path(str(values["log_dir"]))
        for attr, below in (("database_path", "sync.db"), ("export_dir", "exports"),
                            ("events_dir", "events")):
            values[attr] = values[attr] or data_dir / below
        return cls(**values)

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
        """The secret values: the secret keys, the API token, every URL's password."""
        values = [getattr(self, name) for name in SECRET_FIELDS]
        values += connection_string_secrets(self.azure_storage_connection_string)
        values += url_passwords((self.nats_url, self.api_base_url, self.mock_api_url,
                                 self.customer_s3_endpoint,
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
