"""The ``test`` command's checklist, and the logs: JSON lines with run ids, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys

from devtools.local_servers import SECRET_KEY
from tests.helpers.harness import Api, Bucket, Cli


def test_workflow_passes_on_embedded_servers(cli: Cli) -> None:
    result = cli.run("test", CUSTOMER_S3_BUCKET="", CUSTOMER_S3_ENDPOINT="", MOCK_API_URL="")
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("initial sync", "database", "s3", "api", "incremental sync", "csv export",
                 "file manager matches bucket"):
        assert f"[PASS] {step}:" in result.stdout
    assert "incremental sync: 2 events, 2 operations" in result.stdout
    assert "workflow passed" in result.stdout


def test_workflow_without_the_launchers_exits_2_saying_what_to_set(cli: Cli) -> None:
    # As in the runtime image: no devtools/ (a source checkout's launchers) to start servers with.
    hide = ("import sys; sys.modules['devtools'] = None; from sync_service.main import main; "
            "sys.exit(main(['test']))")
    result = subprocess.run([sys.executable, "-c", hide], cwd=cli.workdir, capture_output=True, text=True,
                            timeout=60, env=cli.full_env(CUSTOMER_S3_BUCKET="", MOCK_API_URL=""))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "devtools is not installed" in result.stderr
    assert "set CUSTOMER_S3_* and MOCK_API_URL" in result.stderr


def test_workflow_fails_naming_the_step_when_the_api_is_unreachable(cli: Cli, bucket: Bucket) -> None:
    bucket.put("a.txt", b"a")
    result = cli.run("test", MOCK_API_URL="http://127.0.0.1:9", MAX_RETRIES="0")
    assert result.returncode == 1
    assert "[PASS] s3:" in result.stdout
    assert "[FAIL] api:" in result.stdout
    assert "[SKIP] incremental sync" in result.stdout
    assert "workflow FAILED at: api" in result.stdout


def test_workflow_validation_catches_a_file_manager_that_lost_a_file(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("kept.txt", b"k")
    bucket.put("lost.txt", b"l")
    assert cli.run("initial-sync").returncode == 0
    api.delete("lost.txt")
    result = cli.run("test")
    assert result.returncode == 1
    assert "[FAIL] file manager matches bucket: 1 differences, e.g. missing 'lost.txt'" in result.stdout


def test_json_logs_carry_the_run_id_and_no_secrets(cli: Cli, bucket: Bucket) -> None:
    bucket.put("a.txt", b"a")
    result = cli.run("initial-sync", LOG_FORMAT="json", API_TOKEN="tok-abcdef-123")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    lines = [json.loads(line) for line in (cli.workdir / "logs" / "sync.log").read_text().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    run_lines = [line for line in lines if run_id in line["message"]]
    assert run_lines and all(line.get("run_id") == run_id for line in run_lines)
    text = (cli.workdir / "logs" / "sync.log").read_text() + result.stderr + result.stdout
    assert SECRET_KEY not in text and "tok-abcdef-123" not in text
