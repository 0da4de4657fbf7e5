"""Podman as the container smoke test runs it: rootful, on the host's network, with a
``containers.conf`` of its own for this kind of machine, and the stand-in base image.

Why the settings: the default ulimits (nofile 1048576, nproc 4194304) need a capability root
lacks in this sandbox, so they are set to what the machine allows; crun refuses its hybrid
cgroups, runc does not; no systemd, so cgroupfs. ``BUILDAH_FORMAT=docker`` keeps the images'
HEALTHCHECK, which the OCI format drops.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from devtools.local_servers import ACCESS_KEY, REPO_ROOT, SECRET_KEY, MotoS3

HERE = Path(__file__).resolve().parent
BASE_IMAGE_SCRIPT = HERE / "base_image.sh"
BASE_TAGS = ("localhost/python:3.11-slim-bookworm", "docker.io/library/python:3.11-slim-bookworm")
PACKAGES = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}  # command: Debian package
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
APP_UID = 10001
RECIPE_LABEL = "org.s3-sync-service.base-recipe"


def containers_conf(path: Path) -> Path:
    """Write the test's ``containers.conf`` to ``path``."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 1048576 if hard == resource.RLIM_INFINITY else hard
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n')
    return path


def missing_packages() -> list[str]:
    """The Debian packages whose commands are not on PATH."""
    return [package for command, package in PACKAGES.items() if shutil.which(command) is None]


def install_packages(packages: Sequence[str]) -> str | None:
    """``apt-get install`` them; None when done, else why not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{', '.join(packages)} not installed, and apt-get cannot install them here (not root on Debian)"
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:  # a stale or missing package list: fetch it once
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        return f"apt-get install {' '.join(packages)} failed: {result.stderr.strip()[-300:]}"
    return None


def recipe_key() -> str:
    """What the cached base image depends on: its script, the host's CAs, the machine."""
    digest = hashlib.sha256(BASE_IMAGE_SCRIPT.read_bytes())
    for ca in sorted(HOST_CA_DIR.glob("*")) if HOST_CA_DIR.is_dir() else []:
        digest.update(ca.name.encode() + b"\0" + ca.read_bytes())
    digest.update(platform.machine().encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Where base image tarballs are kept between runs on one machine."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "s3-sync-service" / "container-test"


def s3_environment(s3: MotoS3, bucket: str) -> dict[str, str]:
    """The CUSTOMER_S3_* settings of a container reaching moto on the host."""
    return {"CUSTOMER_S3_ENDPOINT": s3.endpoint, "CUSTOMER_S3_ACCESS_KEY": ACCESS_KEY,
            "CUSTOMER_S3_SECRET_KEY": SECRET_KEY, "CUSTOMER_S3_BUCKET": bucket}


def container_args(env: dict[str, str], *volumes: str) -> list[str]:
    """``podman run`` options: the host's network (no CNI needed), the environment, named volumes."""
    args = ["--network=host"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    for volume in volumes:
        args += ["--volume", volume]
    return args


class Podman:
    """Runs ``podman`` with the test's configuration."""

    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf), "BUILDAH_FORMAT": "docker"}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """One podman command, its output captured."""
        return subprocess.run(["podman", *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, cwd=REPO_ROOT)

    def image_exists(self, name: str) -> bool:
        """Whether the local storage has an image of that name."""
        return self("image", "exists", name).returncode == 0

    def label(self, image: str, name: str) -> str | None:
        """A label of a local image; None when the image is missing."""
        found = self("image", "inspect", "--format", f'{{{{index .Labels "{name}"}}}}', image)
        return found.stdout.strip() if found.returncode == 0 else None

    def base_image(self) -> tuple[str, bool]:
        """Make the stand-in for python:3.11-slim-bookworm available; returns how, and
        whether this call imported it (so the caller removes it after)."""
        key = recipe_key()
        label = self.label(BASE_TAGS[1], RECIPE_LABEL)
        if label == "":  # not one of ours: a real image, pulled on a machine with a registry
            return "the local storage's own", False
        if label is not None and label != key:  # a stand-in of an older recipe, left by a killed run
            self("rmi", "--force", *BASE_TAGS)
        tarball = cache_dir() / f"python-3.11-slim-bookworm-{key}.tar"
        how = "cached rootfs"
        if not tarball.exists():
            tarball.parent.mkdir(parents=True, exist_ok=True)
            for stale in tarball.parent.glob("python-3.11-slim-bookworm-*.tar"):
                stale.unlink()
            started = time.monotonic()
            built = subprocess.run(["bash", str(BASE_IMAGE_SCRIPT), str(tarball)], capture_output=True,
                                   text=True, timeout=900)
            if built.returncode != 0:
                raise RuntimeError(f"base_image.sh failed: {(built.stdout + built.stderr)[-1500:]}")
            how = f"debootstrap, {time.monotonic() - started:.0f} s"
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8",
                   'CMD ["python3"]', f"LABEL {RECIPE_LABEL}={key}"]
        imported = self("import", *(arg for change in changes for arg in ("--change", change)), str(tarball),
                        BASE_TAGS[0], timeout=300)
        if imported.returncode != 0:
            raise RuntimeError(f"podman import failed: {imported.stderr[-1500:]}")
        tagged = self("tag", BASE_TAGS[0], BASE_TAGS[1])
        if tagged.returncode != 0:
            raise RuntimeError(f"podman tag failed: {tagged.stderr[-1500:]}")
        return how, True

    def build(self, dockerfile: str, tag: str) -> subprocess.CompletedProcess[str]:
        """Build an image from a Dockerfile of the repository, with no registry."""
        return self("build", "--pull=never", "--network=host", "--layers=false", "-f", dockerfile, "-t", tag, ".",
                    timeout=900)
