"""Fixtures of the container smoke test (``make container-test``): Podman set up for this kind of
machine, a stand-in base image, both images built from the Dockerfiles, and a bucket seeded
by the init job's own command in a container.

Collected only with ``CONTAINER_TEST=1``, which the Make target sets: it installs Debian
packages and takes minutes, so ``make test`` leaves it to its own step of CI.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import yaml

from devtools.local_servers import REPO_ROOT, MotoS3, NatsServer
from tests.container.podman import (
    BASE_TAGS,
    Podman,
    container_args,
    containers_conf,
    install_packages,
    missing_packages,
    s3_environment,
)
from tests.helpers.harness import unavailable

if os.environ.get("CONTAINER_TEST") != "1":
    collect_ignore_glob = ["test_*.py"]

PHASES: list[tuple[str, float, str]] = []  # (phase, seconds, detail) for the closing summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say what each phase took, and how the base image was had."""
    if PHASES:
        terminalreporter.write_line("container test phases: " + "; ".join(
            f"{phase} {seconds:.0f} s" + (f" ({detail})" if detail else "") for phase, seconds, detail in PHASES))


class Phase:
    """Times a phase of the fixtures for the summary."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.detail = ""

    def __enter__(self) -> Phase:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        PHASES.append((self.name, time.monotonic() - self.started, self.detail))


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    if os.geteuid() != 0:
        unavailable("the container test runs Podman as root (and debootstrap needs root): run it as root")
    with Phase("packages") as phase:
        missing = missing_packages()
        if missing:
            phase.detail = f"installed {' '.join(missing)}"
            reason = install_packages(missing)
            if reason:
                unavailable(reason)
        else:
            phase.detail = "already installed"
    engine = Podman(containers_conf(tmp_path_factory.mktemp("podman") / "containers.conf"))
    info = engine("info", "--format", "{{.Host.OCIRuntime.Name}}")
    if info.returncode != 0:
        unavailable(f"podman does not run here: {info.stderr.strip()[-300:]}")
    return engine


@dataclass
class Images:
    """The two images of the project, built for this session."""

    service: str
    mock_api: str
    suffix: str
    made: list[str] = field(default_factory=list)  # containers and volumes to remove after

    def name(self, what: str) -> str:
        """A container or volume name of this session, removed at its end."""
        made = f"s3-sync-test-{what}-{self.suffix}"
        self.made.append(made)
        return made


@pytest.fixture(scope="session")
def images(podman: Podman) -> Iterator[Images]:
    with Phase("base image") as phase:
        try:
            phase.detail, imported = podman.base_image()
        except (RuntimeError, OSError) as exc:
            unavailable(f"no stand-in base image: {exc}")
    suffix = uuid.uuid4().hex[:8]
    built = Images(f"localhost/s3-sync-service:test-{suffix}", f"localhost/s3-sync-mock-api:test-{suffix}", suffix)
    try:
        for dockerfile, tag in (("Dockerfile", built.service), ("Dockerfile.mock-api", built.mock_api)):
            with Phase(f"build {dockerfile}") as phase:
                result = podman.build(dockerfile, tag)
                size = podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()
                phase.detail = f"{int(size) / 1e6:.0f} MB" if size.isdigit() else ""
            assert result.returncode == 0, f"podman build -f {dockerfile} failed:\n{result.stdout[-3000:]}" \
                                           f"\n{result.stderr[-3000:]}"
        yield built
    finally:
        for made in built.made:
            podman("rm", "--force", "--time", "0", made)
            podman("volume", "rm", "--force", made)
        podman("rmi", "--force", built.service, built.mock_api)
        if imported:
            podman("rmi", "--force", *BASE_TAGS)


@dataclass
class Seeded:
    """A bucket on the host's moto filled by the init job run in a container."""

    s3: MotoS3
    bucket: str
    init_output: str
    init_exit: int


@pytest.fixture(scope="session")
def seeded(podman: Podman, images: Images, moto_s3: MotoS3, nats_server: NatsServer) -> Seeded:
    """``init``'s command from docker-compose.yml, in the development image (the mock's, which
    holds test-data/ and the script), against moto and NATS on the host."""
    bucket = f"customer-{images.suffix}"
    env = {**s3_environment(moto_s3, bucket), "EVENT_SOURCE": "nats", "NATS_URL": nats_server.url,
           "NATS_STREAM": f"CT_{images.suffix}", "NATS_SUBJECT": f"ct.{images.suffix}"}
    init = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["init"]["command"]
    # No MinIO here, so no notification ARN to subscribe.
    run = podman("run", "--rm", "--no-healthcheck", *container_args(env), images.mock_api,
                 *init, "--bucket", bucket, "--notify-arn", "", timeout=300)
    return Seeded(moto_s3, bucket, run.stdout + run.stderr, run.returncode)


@pytest.fixture
def fresh_volume(images: Images) -> str:
    """A named volume for /app/data, created from the image as Docker does."""
    return images.name(f"data-{uuid.uuid4().hex[:6]}")
