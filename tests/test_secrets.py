"""Secrets never leave the service (SPEC §6): every secret gets a unique value, every path that
can fail is driven through the real CLI and daemon, and everything written or answered is
searched for those values."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from devtools.local_servers import SECRET_KEY, MockApiProcess, RcloneS3, free_port
from tests.helpers.harness import Api, Bucket, Cli, unavailable
from tests.helpers.sync import spool, stop
from tests.helpers.waiting import wait_for


def _unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


@pytest.fixture
def secrets() -> dict[str, str]:
    return {name: _unique(name.lower().replace("_", "-")) for name in (
        "CUSTOMER_S3_SECRET_KEY", "API_TOKEN", "TARGET_S3_SECRET_KEY",
        "NATS_PASSWORD", "API_PASSWORD", "ENDPOINT_PASSWORD", "REPORT_PASSWORD")}


def _closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


def leaks(secrets: dict[str, str], texts: dict[str, str], folder: Path) -> list[str]:
    """Where any secret value shows: in ``texts`` (answers, outputs) or any file below ``folder``
    but the spool files, which the producer wrote (the service only moves them)."""
    found = []
    for name, text in texts.items():
        found += [f"{secret_name} in {name}" for secret_name, value in secrets.items() if value in text]
    spool = folder / "data" / "events"
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_relative_to(spool)):
        content = path.read_bytes()
        found += [f"{secret_name} in {path.relative_to(folder)}" for secret_name, value in secrets.items()
                  if value.encode() in content]
    return found


def _outputs(texts: dict[str, str], label: str, result: subprocess.CompletedProcess[str]) -> None:
    texts[f"{label} stdout"] = result.stdout
    texts[f"{label} stderr"] = result.stderr


def test_no_secret_leaks_from_any_failure_path(cli: Cli, bucket: Bucket, api: Api, secrets: dict[str, str],
                                               tmp_path: Path) -> None:
    # given every secret set to a unique value, and URLs that carry passwords
    bucket.put("docs/a.txt", b"a")
    bucket.put("docs/b.txt", b"b")
    api_port, nats_port = _closed_port(), _closed_port()
    down_api = f"http://fm-user:{secrets['API_PASSWORD']}@127.0.0.1:{api_port}"
    live_api = api.url.replace("http://", f"http://fm-user:{secrets['API_PASSWORD']}@")
    base = {
        "CUSTOMER_S3_SECRET_KEY": secrets["CUSTOMER_S3_SECRET_KEY"],
        "API_TOKEN": secrets["API_TOKEN"],
        "TARGET_S3_SECRET_KEY": secrets["TARGET_S3_SECRET_KEY"],
        "NATS_URL": f"nats://sync:{secrets['NATS_PASSWORD']}@127.0.0.1:{nats_port}",
        "REPORT_URLS": f"{api.url}/syncResults",
        "MAX_RETRIES": "0", "API_TIMEOUT": "2", "LOG_FORMAT": "text",
    }
    texts: dict[str, str] = {}

    # when S3 is down (an endpoint URL with a password, nothing listening)
    s3_down = {**base, "CUSTOMER_S3_ENDPOINT":
               f"http://k:{secrets['ENDPOINT_PASSWORD']}@127.0.0.1:{_closed_port()}"}
    _outputs(texts, "initial-sync, S3 down", cli.run("initial-sync", **s3_down))
    _outputs(texts, "status, S3 down", cli.run("status", **s3_down))
    # an API URL with a password beside API_TOKEN: refused as two credentials (exit 2)
    refused = cli.run("status", **{**base, "FILE_MANAGER_API_URL": live_api})
    assert refused.returncode == 2, refused.stderr
    _outputs(texts, "two credentials", refused)
    # the API is down (its URL with a password, reports posted to another one with a password)
    base["REPORT_URLS"] = (f"{live_api}/syncResults "
                           f"http://r:{secrets['REPORT_PASSWORD']}@127.0.0.1:{api_port}/r")
    api_down = {**base, "FILE_MANAGER_API_URL": down_api, "API_TOKEN": ""}
    result = cli.run("initial-sync", **api_down)
    assert result.returncode == 1, result.stderr
    _outputs(texts, "initial-sync, API down", result)
    _outputs(texts, "status, API down", cli.run("status", **api_down))
    _outputs(texts, "status --json, API down", cli.run("status", "--json", **api_down))
    # NATS is down
    nats_down = {**base, "FILE_MANAGER_API_URL": api.url, "REPORT_URLS": f"{api.url}/syncResults",
                 "EVENT_SOURCE": "nats"}
    result = cli.run("incremental-sync", **nats_down)
    assert result.returncode == 1
    _outputs(texts, "incremental-sync, NATS down", result)
    _outputs(texts, "publish-event, NATS down",
             cli.run("publish-event", '{"type":"delete","path":"x.txt"}', **nats_down))
    _outputs(texts, "status --json, NATS down", cli.run("status", "--json", **nats_down))
    # a message carrying a secret is dead-lettered; the rest syncs against the live API
    spool(cli, "001", f'{{"type":"rename","path":"{secrets["API_TOKEN"]}"}}',
          f"not json {secrets['CUSTOMER_S3_SECRET_KEY']}")
    live = {**nats_down, "EVENT_SOURCE": "file"}
    _outputs(texts, "incremental-sync, live", cli.run("incremental-sync", **live))
    _outputs(texts, "export-csv", cli.run("export-csv", **live))
    # the daemon, failing cycles against a down API: /health, /metrics, the status page, /api/status
    bucket.put("docs/c.txt", b"c")
    spool(cli, "002", {"type": "create", "path": "docs/c.txt"})
    port = free_port()
    daemon = cli.start("daemon", SYNC_INTERVAL="1", METRICS_PORT=str(port), **api_down)
    try:
        health = f"http://127.0.0.1:{port}/health"
        wait_for(lambda: _status(health) == 503, timeout=60)
        answer = requests.get(health, timeout=5)
        assert "last_error" in answer.json()
        texts["daemon /health"] = answer.text
        texts["daemon /metrics"] = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        texts["daemon / (status page)"] = requests.get(f"http://127.0.0.1:{port}/", timeout=10).text
        texts["daemon /api/status"] = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=10).text
    finally:
        stop(daemon)

    # then no secret value shows anywhere: outputs, answers, logs, sync.db, reports, dead letters
    assert (cli.workdir / "data" / "dead-letters").is_dir()
    assert list((cli.workdir / "data" / "reports").glob("*.json"))
    assert leaks(secrets, texts, cli.workdir) == []
    # and the URLs still say where they point, password masked
    assert f"fm-user:***@127.0.0.1:{api_port}" in texts["status, API down stdout"], texts["status, API down stderr"]


def test_no_secret_leaks_on_bad_credentials(cli: Cli, secrets: dict[str, str], tmp_path: Path) -> None:
    # given an S3 server and a file manager that both refuse our (unique) credentials
    try:
        s3 = RcloneS3(tmp_path / "rclone").start()
        fm = MockApiProcess(tmp_path / "fm", token="the-right-token").start()
    except Exception as exc:
        unavailable(f"cannot start rclone or the mock API: {exc}")
    try:
        (tmp_path / "rclone" / "bucket").mkdir(parents=True)
        (tmp_path / "rclone" / "bucket" / "a.txt").write_bytes(b"a")
        env = {"CUSTOMER_S3_ENDPOINT": s3.endpoint, "CUSTOMER_S3_BUCKET": "bucket",
               "CUSTOMER_S3_SECRET_KEY": secrets["CUSTOMER_S3_SECRET_KEY"],
               "API_TOKEN": secrets["API_TOKEN"], "MOCK_API_URL": fm.url,
               "FILE_MANAGER_API_URL": fm.url,
               "MAX_RETRIES": "0", "LOG_FORMAT": "json"}
        texts: dict[str, str] = {}
        # when syncs and status run
        result = cli.run("initial-sync", **env)
        assert result.returncode == 1
        _outputs(texts, "initial-sync", result)
        result = cli.run("status", "--json", **env)
        checks = json.loads(result.stdout)["checks"]
        assert not checks["s3"]["ok"]
        _outputs(texts, "status --json", result)
        # and with S3 credentials that work, every call the file manager refuses (401)
        result = cli.run("initial-sync", **{**env, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY})
        assert result.returncode == 1 and "401" in result.stdout
        _outputs(texts, "initial-sync, API refuses", result)
        # then the refusals are reported without any secret
        assert leaks(secrets, texts, cli.workdir) == []
    finally:
        s3.stop()
        fm.stop()


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0
