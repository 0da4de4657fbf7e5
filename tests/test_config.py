"""Configuration: defaults, .env, validation with exit code 2, secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync_service.errors import ConfigError
from sync_service.models.config import SyncConfig


def test_defaults() -> None:
    config = SyncConfig.from_env({}, env_file=None)
    assert config.customer_s3_region == "us-east-1"
    assert config.customer_s3_prefix == ""
    assert config.sync_interval == 300
    assert config.sync_workers == 16
    assert config.metrics_port == 9090
    assert config.event_source == "file"
    assert config.database_path == Path("data/sync.db")
    assert config.export_dir == Path("data/exports")
    assert config.events_dir == Path("data/events")
    assert config.log_dir == Path("logs")
    assert config.default_permissions == {"visibility": "private"}
    assert config.api_base_url == "http://localhost:8001"
    assert config.report_urls == ("http://localhost:8001/syncResults",)


def test_data_dir_moves_its_parts_unless_overridden() -> None:
    config = SyncConfig.from_env({"DATA_DIR": "/srv/sync", "EXPORT_DIR": "/exports"}, env_file=None)
    assert config.database_path == Path("/srv/sync/sync.db")
    assert config.events_dir == Path("/srv/sync/events")
    assert config.export_dir == Path("/exports")
    assert config.reports_dir == Path("/srv/sync/reports")


def test_file_manager_url_wins_over_mock_url() -> None:
    config = SyncConfig.from_env({"MOCK_API_URL": "http://mock:8001",
                                  "FILE_MANAGER_API_URL": "https://fm.example.com/"}, env_file=None)
    assert config.api_base_url == "https://fm.example.com"
    assert config.report_urls == ("https://fm.example.com/syncResults",)


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CUSTOMER_S3_BUCKET=from-file\nSYNC_WORKERS=4\n")
    config = SyncConfig.from_env({"SYNC_WORKERS": "9"}, env_file=env_file)
    assert config.customer_s3_bucket == "from-file"
    assert config.sync_workers == 9


def test_prefix_is_treated_as_a_folder() -> None:
    assert SyncConfig.from_env({"CUSTOMER_S3_PREFIX": "/team"}, env_file=None).customer_s3_prefix == "team/"


@pytest.mark.parametrize(("name", "value"), [
    ("SYNC_WORKERS", "0"), ("SYNC_WORKERS", "many"), ("SYNC_INTERVAL", "-5"),
    ("MAX_RETRIES", "x"), ("API_TIMEOUT", "0"), ("S3_READ_TIMEOUT", "0"), ("S3_READ_TIMEOUT", "soon"),
    ("METRICS_PORT", "70000"),
    ("LOG_FORMAT", "xml"), ("LOG_LEVEL", "LOUD"), ("EVENT_SOURCE", "kafka"),
    ("LIVE_RELOAD", "maybe"), ("MOCK_API_URL", "ftp://host"), ("CUSTOMER_S3_ENDPOINT", "minio:9000"),
    ("REPORT_URLS", "http://ok.example.com not-a-url"), ("PERMISSIONS_METADATA_KEY", "bad key!"),
    ("API_MAX_RPS", "fast"), ("API_MAX_RPS", "-3"), ("BWLIMIT", "10 megabytes"), ("BWLIMIT", "100"),
    ("S3_ADDRESSING", "sideways"), ("AWS_ENDPOINT_URL", "s3.local"),
])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SyncConfig.from_env({name: value}, env_file=None)


def test_invalid_default_permissions_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    config = SyncConfig.from_env({"DEFAULT_PERMISSIONS": "{oops"}, env_file=None)
    assert config.default_permissions == {"visibility": "private"}
    assert "DEFAULT_PERMISSIONS" in caplog.text


def test_secrets_are_masked() -> None:
    config = SyncConfig.from_env({
        "CUSTOMER_S3_ACCESS_KEY": "AKIAEXAMPLEKEY", "CUSTOMER_S3_SECRET_KEY": "s3cr3t-value",
        "API_TOKEN": "tok-123456", "NATS_URL": "nats://user:natspass@nats:4222",
    }, env_file=None)
    shown = str(config.masked())
    for secret in ("s3cr3t-value", "tok-123456", "natspass", "AKIAEXAMPLEKEY"):
        assert secret not in shown
    assert set(config.secrets()) >= {"s3cr3t-value", "tok-123456", "natspass"}


def test_bucket_required_for_syncing() -> None:
    with pytest.raises(ConfigError, match="CUSTOMER_S3_BUCKET"):
        SyncConfig.from_env({}, env_file=None).require_bucket()


def test_a_url_password_beside_api_token_is_refused_as_two_credentials() -> None:
    with pytest.raises(ConfigError, match=r"FILE_MANAGER_API_URL carries a user:password.*u:\*\*\*@h"):
        SyncConfig.from_env({"API_TOKEN": "t0ken", "FILE_MANAGER_API_URL": "http://u:pw@h"}, env_file=None)
    with pytest.raises(ConfigError, match="REPORT_URLS"):
        SyncConfig.from_env({"API_TOKEN": "t0ken", "REPORT_URLS": "http://u:pw@h/r"}, env_file=None)
    assert SyncConfig.from_env({"FILE_MANAGER_API_URL": "http://u:pw@h"}, env_file=None).api_token == ""


def test_database_url_chooses_postgresql_and_its_password_is_a_secret() -> None:
    # given no DATABASE_URL: SQLite at DATABASE_PATH
    sqlite = SyncConfig.from_env({"DATA_DIR": "/srv/sync"}, env_file=None)
    assert sqlite.database == Path("/srv/sync/sync.db") and sqlite.database_shown == "/srv/sync/sync.db"
    # given a PostgreSQL URL: the state is there, shown and masked without its password
    url = "postgresql://sync:pa55-word@db.internal:5432/state"
    config = SyncConfig.from_env({"DATABASE_URL": url}, env_file=None)
    assert config.database == url
    assert config.database_shown == "postgresql://sync:***@db.internal:5432/state"
    assert "pa55-word" in config.secrets()
    assert "pa55-word" not in json.dumps(config.masked())
    with pytest.raises(ConfigError, match="DATABASE_URL must be a PostgreSQL URL"):
        SyncConfig.from_env({"DATABASE_URL": "sqlite:///data/sync.db"}, env_file=None)


def test_region_unset_is_told_apart_from_us_east_1_set() -> None:
    unset = SyncConfig.from_env({}, env_file=None)
    assert (unset.customer_s3_region, unset.customer_s3_region_set) == ("us-east-1", False)
    given = SyncConfig.from_env({"CUSTOMER_S3_REGION": "us-east-1"}, env_file=None)
    assert (given.customer_s3_region, given.customer_s3_region_set) == ("us-east-1", True)


def test_addressing_and_the_aws_endpoint_variables() -> None:
    assert SyncConfig.from_env({}, env_file=None).s3_addressing == "auto"
    assert SyncConfig.from_env({"S3_ADDRESSING": "Path"}, env_file=None).s3_addressing == "path"
    assert SyncConfig.from_env({"AWS_ENDPOINT_URL": "http://localstack:4566"},
                               env_file=None).customer_s3_endpoint == "http://localstack:4566"
    both = {"AWS_ENDPOINT_URL": "http://all:1", "AWS_ENDPOINT_URL_S3": "http://s3-only:2"}
    assert SyncConfig.from_env(both, env_file=None).customer_s3_endpoint == "http://s3-only:2"
    ours = {**both, "CUSTOMER_S3_ENDPOINT": "http://minio:9000"}
    assert SyncConfig.from_env(ours, env_file=None).customer_s3_endpoint == "http://minio:9000"


@pytest.mark.parametrize("given", ["CUSTOMER_S3_ACCESS_KEY", "CUSTOMER_S3_SECRET_KEY"])
def test_one_key_without_the_other_is_refused(given: str) -> None:
    with pytest.raises(ConfigError, match="give both keys, or neither"):
        SyncConfig.from_env({given: "x"}, env_file=None)
