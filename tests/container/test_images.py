"""The images built from the Dockerfiles and run for real under Podman: what the Compose stack
runs, but for MinIO and NATS, whose images no registry here serves. S3 (moto), NATS and the mock
API run natively on the host, and the containers reach them over the host's network."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from devtools.local_servers import ACCESS_KEY, REPO_ROOT, SECRET_KEY, free_port
from sync_service.clients.s3_manager import make_client
from sync_service.version import package_version
from tests.container.conftest import Images, Seeded
from tests.container.podman import APP_UID, Podman, container_args, s3_environment
from tests.helpers.harness import Api

pytestmark = pytest.mark.timeout(1500)  # the first test also waits for the packages, base image and builds


def wait_for(check: Callable[[], bool], timeout: float = 90.0) -> bool:
    """Poll until ``check`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)  # the poll's interval
    return False


def own_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the container wrote to stderr, without podman's own log lines."""
    return [line for line in result.stderr.splitlines() if not line.startswith('time="')]


def objects(seeded: Seeded) -> dict[str, int]:
    """The seeded bucket's keys and sizes."""
    client = make_client(endpoint_url=seeded.s3.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=seeded.bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def run_once(podman: Podman, image: str, *command: str, env: dict[str, str] | None = None,
             volumes: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` one command (no health check: it would want systemd timers)."""
    return podman("run", "--rm", "--no-healthcheck", *container_args(env or {}, *volumes), image, *command,
                  timeout=300)


def test_the_service_image_runs_help_as_its_non_root_user(podman: Podman, images: Images) -> None:
    result = run_once(podman, images.service, "python", "-m", "sync_service.main", "help")
    assert result.returncode == 0, result.stderr
    assert "initial-sync" in result.stdout
    command = run_once(podman, images.service, "s3-sync", "--version")  # the installed command
    assert command.returncode == 0, command.stderr
    assert command.stdout.split() == ["s3-sync", package_version(REPO_ROOT / "pyproject.toml")]  # not "unknown"
    assert run_once(podman, images.service, "id").stdout.startswith(f"uid={APP_UID}(app) gid={APP_UID}(app)")
    inspected = podman("image", "inspect", "--format", "{{.Config.User}} {{json .Config.Healthcheck}}", images.service)
    user, healthcheck = inspected.stdout.split(" ", 1)
    assert user == str(APP_UID)
    assert json.loads(healthcheck)["Test"] == ["CMD", "python", "-m", "sync_service.healthcheck",
                                               "/livez"]  # BUILDAH_FORMAT
    # What the README says of paths: /app itself is not the app user's to write.
    assert run_once(podman, images.service, "touch", "/app/out.csv").returncode != 0


def test_the_service_image_holds_the_service_only_read_only_and_compiled(podman: Podman, images: Images) -> None:
    """Issue 22: no mock, tests, test data, scripts, FastAPI or uvicorn in the service's image;
    the code root's, unwritable by the app user; its bytecode compiled at build time."""
    listing = run_once(podman, images.service, "ls", "-A", "/app")
    assert listing.returncode == 0, listing.stderr
    assert sorted(listing.stdout.split()) == ["data", "logs", "pyproject.toml", "sync_service"]
    modules = ("fastapi", "uvicorn", "starlette", "mock_api", "moto")
    probe = ("import importlib.util, sys; "
             f"sys.exit(','.join(m for m in {modules!r} if importlib.util.find_spec(m)) or 0)")
    found = run_once(podman, images.service, "python", "-c", probe)
    assert found.returncode == 0, f"importable in the service image: {found.stderr.strip()}"
    assert run_once(podman, images.service, "test", "-e", "/app/test-data").returncode != 0
    # Written by root, for the app user to read: no file or folder of the code or the
    # environment is the app user's, and none is writable by it.
    writable = run_once(podman, images.service, "find", "/app/sync_service", "/opt/venv", "(", "-writable",
                        "-o", "-user", str(APP_UID), ")", "-print")
    assert writable.returncode == 0 and writable.stdout == "", writable.stdout[:2000]
    for path in ("/app/out.csv", "/app/sync_service/injected.py", "/opt/venv/bin/injected"):
        assert run_once(podman, images.service, "touch", path).returncode != 0, path
    for path in ("/app/data/ok", "/app/logs/ok"):  # the only places it writes
        assert run_once(podman, images.service, "touch", path).returncode == 0, path
    # Compiled at build time: every module has its bytecode, fresh (compileall -q with
    # no recompilation needed lists nothing), so a command start compiles nothing.
    sources = run_once(podman, images.service, "find", "/app/sync_service", "-name", "*.py").stdout.split()
    compiled = run_once(podman, images.service, "find", "/app/sync_service", "-name", "*.cpython-311.pyc")
    assert sources and len(compiled.stdout.split()) == len(sources)
    recompiled = run_once(podman, images.service, "python", "-m", "compileall", "/app/sync_service")
    assert "Compiling" not in recompiled.stdout, recompiled.stdout[:2000]


def test_the_mock_image_holds_the_mock_and_the_init_job_and_cannot_rewrite_them(
        podman: Podman, images: Images) -> None:
    found = run_once(podman, images.mock_api, "python", "-c", "import fastapi, uvicorn, mock_api, sync_service")
    assert found.returncode == 0, found.stderr
    assert run_once(podman, images.mock_api, "test", "-f", "/app/scripts/init_stack.py").returncode == 0
    assert run_once(podman, images.mock_api, "touch", "/app/mock_api/injected.py").returncode != 0
    assert run_once(podman, images.mock_api, "touch", "/app/data/mock-storage/ok").returncode == 0


def test_the_test_command_unconfigured_says_what_is_missing_in_one_line(podman: Podman, images: Images) -> None:
    result = run_once(podman, images.service, "python", "-m", "sync_service.main", "test")
    assert result.returncode == 2
    lines = own_lines(result)
    assert len(lines) == 1 and "moto is not installed" in lines[0], lines


def test_the_init_job_prepares_nats_and_seeds_the_bucket(seeded: Seeded) -> None:
    assert seeded.init_exit == 0, seeded.init_output
    assert "uploaded 33 files from /app/test-data" in seeded.init_output
    assert "consumer sync-service: ready" in seeded.init_output
    assert len(objects(seeded)) == 33


def test_initial_sync_in_the_container_writes_its_volume_and_delivers_every_object(
        podman: Podman, images: Images, seeded: Seeded, api: Api, fresh_volume: str) -> None:
    env = {**s3_environment(seeded.s3, seeded.bucket), "MOCK_API_URL": api.url, "DATA_DIR": "/app/data"}
    volume = f"{fresh_volume}:/app/data"
    synced = run_once(podman, images.service, "python", "-m", "sync_service.main", "initial-sync",
                      env=env, volumes=(volume,))
    assert synced.returncode == 0, synced.stdout[-2000:] + synced.stderr[-2000:]

    held = {path: entry["size"] for path, entry in api.files().items()}
    assert held == objects(seeded)

    exported = run_once(podman, images.service, "python", "-m", "sync_service.main", "export-csv",
                        "--out", "/app/data/exports/mine.csv", env=env, volumes=(volume,))
    assert exported.returncode == 0, exported.stderr[-2000:]
    owners = run_once(podman, images.service, "stat", "-c", "%u %n", "/app/data/sync.db",
                      "/app/data/exports/mine.csv", "/app/data/reports", volumes=(volume,))
    assert owners.returncode == 0, owners.stderr
    assert [line.split()[0] for line in owners.stdout.splitlines()] == [str(APP_UID)] * 3


def test_health_check_fails_without_a_daemon_passes_with_one_and_sigterm_stops_it(
        podman: Podman, images: Images, seeded: Seeded, api: Api, fresh_volume: str) -> None:
    idle = images.name("idle")
    assert podman("run", "--detach", "--name", idle, "--health-interval=disable", images.service,
                  "sleep", "300").returncode == 0
    assert podman("healthcheck", "run", idle).returncode == 1

    daemon = images.name("daemon")
    env = {**s3_environment(seeded.s3, seeded.bucket), "MOCK_API_URL": api.url, "DATA_DIR": "/app/data",
           "METRICS_PORT": str(free_port()), "SYNC_INTERVAL": "300"}
    started = podman("run", "--detach", "--name", daemon, "--health-interval=disable",
                     *container_args(env, f"{fresh_volume}:/app/data"), images.service)  # the image's CMD
    assert started.returncode == 0, started.stderr
    # Its first cycle is the initial sync; alive (/livez) from the start and after it.
    synced = wait_for(lambda: len(api.files()) == len(objects(seeded)))
    assert synced, podman("logs", daemon).stderr[-3000:]
    assert podman("healthcheck", "run", daemon).returncode == 0, podman("logs", daemon).stderr[-3000:]

    before = time.monotonic()
    assert podman("stop", "--time", "45", daemon).returncode == 0
    assert time.monotonic() - before < 30
    assert podman("inspect", "--format", "{{.State.ExitCode}}", daemon).stdout.strip() == "0"
    logs = podman("logs", daemon)
    assert "SIGTERM received" in logs.stdout + logs.stderr


def test_the_mock_api_image_passes_its_own_health_check(podman: Podman, images: Images) -> None:
    mock = images.name("mock")
    # Its own network namespace: the HEALTHCHECK probes port 8001, which may be taken on the host.
    assert podman("run", "--detach", "--name", mock, "--network=none", "--health-interval=disable",
                  images.mock_api).returncode == 0
    assert wait_for(lambda: podman("healthcheck", "run", mock).returncode == 0, timeout=60), \
        podman("logs", mock).stdout[-2000:]


def test_podman_compose_reads_the_compose_file(podman: Podman) -> None:
    binary = Path(sys.executable).with_name("podman-compose")
    result = subprocess.run([str(binary), "-f", "docker-compose.yml", "config"], cwd=REPO_ROOT, env=podman.env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = yaml.safe_load(result.stdout)["services"]
    declared = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    assert set(parsed) == {name for name, service in declared.items() if not service.get("profiles")}
    assert parsed["sync-service"]["stop_grace_period"] == declared["sync-service"]["stop_grace_period"]
    assert parsed["sync-service"]["environment"]["DATABASE_URL"] in ("", None)  # SQLite by default
    # The scale profile adds PostgreSQL and the workers; the daemon follows SYNC_DATABASE_URL.
    url = "postgresql://sync:sync@postgres:5432/sync"
    scaled = subprocess.run([str(binary), "-f", "docker-compose.yml", "--profile", "scale", "config"],
                            cwd=REPO_ROOT, env={**podman.env, "SYNC_DATABASE_URL": url},
                            capture_output=True, text=True, timeout=120)
    assert scaled.returncode == 0, scaled.stderr[-2000:]
    services = yaml.safe_load(scaled.stdout)["services"]
    assert set(services) == set(declared)
    assert services["sync-service"]["environment"]["DATABASE_URL"] == url
    assert services["sync-worker"]["environment"]["DATABASE_URL"] == url
