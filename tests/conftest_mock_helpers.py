"""Helpers for tests that need the mock file-manager API or an S3 server on a real port."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import pytest
import requests
import uvicorn

from mock_api.app import create_app
from mock_api.storage import Storage

#: How long a server may take to come up before the test gives up on it.
STARTUP_TIMEOUT_S = 10.0


def services_required() -> bool:
    """True when missing servers must fail tests instead of skipping them (CI sets REQUIRE_SERVICES=1)."""
    return os.environ.get("REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it when services are required."""
    if services_required():
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, timeout_s: float = STARTUP_TIMEOUT_S) -> bool:
    """Poll ``url`` until it answers with any status, or give up after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.02)
    return False


def start_mock_api(storage: Storage, token: str | None = None) -> tuple[str, Callable[[], None]]:
    """Serve the mock API on ``storage`` under uvicorn in a thread; return (base_url, stop)."""
    app = create_app(storage, token=token)
    # Bind first and hand the socket to uvicorn, so no other process can grab the port in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this; without it Nagle + delayed ACK add ~40 ms to every answer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        """Ask uvicorn to exit and wait for its thread."""
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    if not wait_for_http(f"{base_url}/health") or not server.started:
        stop()
        skip_or_fail(f"mock API did not start on {base_url}")
    return base_url, stop


def start_moto_server() -> tuple[str, Callable[[], None]]:
    """Start moto's S3 server on a free port; return (endpoint_url, stop), skipping if it cannot start."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        skip_or_fail(f"moto[server] is not installed: {exc}")
    port = free_port()
    server: Any = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    # start() waits forever if the server thread dies (port taken), so bound the wait ourselves.
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(STARTUP_TIMEOUT_S)
    endpoint = f"http://127.0.0.1:{port}"
    if starter.is_alive() or not wait_for_http(endpoint):
        skip_or_fail(f"moto server did not start on {endpoint}")
    return endpoint, server.stop
