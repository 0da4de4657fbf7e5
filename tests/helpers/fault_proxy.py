"""Real HTTP proxies in front of an S3 server, for the faults neither moto nor rclone can be told
to make: a 403 for chosen keys (a missing permission on a real bucket), and per-request faults
on one object's GET (503 SlowDown, a reset or a stall in the middle of the body)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import requests

ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


def answer_error(handler: BaseHTTPRequestHandler, status: int, body: bytes,
                 headers: dict[str, str] | None = None) -> None:
    """Answer an S3 error document (no body to a HEAD)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/xml")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", "0" if handler.command == "HEAD" else str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def reset(handler: BaseHTTPRequestHandler) -> None:
    """End the connection with a TCP reset (SO_LINGER 0: the peer sees a reset, not a clean end)."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True


def forward(handler: BaseHTTPRequestHandler, upstream: str, body: bytes | None,
            added: dict[str, str] | None = None) -> bytes | None:
    """Send the request on to ``upstream`` and answer its status and headers (and ``added``);
    returns the body for the caller to write (None for a HEAD, which has none)."""
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
    answer = requests.request(handler.command, upstream + handler.path, headers=headers,
                              data=body, timeout=30, allow_redirects=False)
    content = answer.content
    handler.send_response(answer.status_code)
    replaced = HOP_BY_HOP | {name.lower() for name in added or {}}
    for name, value in answer.headers.items():
        if name.lower() not in replaced:
            handler.send_header(name, value)
    for name, value in (added or {}).items():
        handler.send_header(name, value)
    if handler.command == "HEAD":
        handler.send_header("Content-Length", answer.headers.get("Content-Length", "0"))
    else:
        handler.send_header("Content-Length", str(len(content)))
    handler.end_headers()
    return None if handler.command == "HEAD" else content


class S3Proxy:
    """A threaded HTTP server on a free port in front of ``upstream``: every request, with its
    decoded path and body read, goes to ``handle``, which answers it (``forward`` passes it on)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.down:
                    reset(self)
                    return
                proxy.handle(self, unquote(urlsplit(self.path).path), body)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        #: Set: every request, on new and kept-alive connections alike, is answered with a TCP
        #: reset, as a stopped server's would be (closing the listener alone leaves those open).
        self.down = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, handler: BaseHTTPRequestHandler, path: str, body: bytes | None) -> None:
        """Answer one request: by default, as the upstream server answers it."""
        content = forward(handler, self.upstream, body)
        if content is not None:
            handler.wfile.write(content)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class DenyingProxy(S3Proxy):
    """Forwards every request to ``upstream``, but object requests for ``denied`` keys get 403."""

    def __init__(self, upstream: str, denied: set[str]) -> None:
        super().__init__(upstream)
        self.denied = denied
        self.denials = 0
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request

    def handle(self, handler: BaseHTTPRequestHandler, path: str, body: bytes | None) -> None:
        self.seen.append((handler.command, path))
        if any(path.endswith("/" + key) for key in self.denied):
            self.denials += 1
            answer_error(handler, 403, ACCESS_DENIED)
            return
        super().handle(handler, path, body)


SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")


class FaultyS3Proxy(S3Proxy):
    """Forwards every request to ``upstream``; an object GET of a key with faults queued gets the
    next one instead of a clean answer:

    * ``slowdown``: 503 SlowDown with ``Retry-After: 1``;
    * ``reset``: the headers and half the body, then a TCP reset;
    * ``stall``: the headers and half the body, then silence for ``stall_s`` seconds.

    Listing and HEAD requests pass untouched, so only the object's body is at fault.
    """

    def __init__(self, upstream: str, faults: dict[str, list[str]], *, stall_s: float = 5.0) -> None:
        super().__init__(upstream)
        self.faults = {key: list(queue) for key, queue in faults.items()}
        self.stall_s = stall_s
        self.applied: list[tuple[str, str]] = []  # (key, fault) in the order they were served
        self.gets: list[tuple[str, float]] = []  # (path, monotonic time) of every GET
        self._lock = threading.Lock()

    def handle(self, handler: BaseHTTPRequestHandler, path: str, body: bytes | None) -> None:
        if handler.command == "GET":
            self.gets.append((path, time.monotonic()))
        fault = self._next_fault(handler.command, path)
        if fault == "slowdown":
            answer_error(handler, 503, SLOW_DOWN, {"Retry-After": "1"})
            return
        content = forward(handler, self.upstream, body)
        if content is None:
            return
        if fault is None:
            handler.wfile.write(content)
            return
        handler.wfile.write(content[: len(content) // 2])
        handler.wfile.flush()
        if fault == "stall":
            time.sleep(self.stall_s)  # the fault under test: a body that stops mid-way, then breaks
        reset(handler)

    def _next_fault(self, method: str, path: str) -> str | None:
        if method != "GET":
            return None
        with self._lock:
            for key, queue in self.faults.items():
                if queue and path.endswith("/" + key):
                    fault = queue.pop(0)
                    self.applied.append((key, fault))
                    return fault
        return None


class SlowListingProxy(S3Proxy):
    """Forwards every request to ``upstream``; listings (ListObjectsV2) are cut to ``max_keys``
    a page and answered after ``delay_s``, so a listing takes many slow pages. The query of
    every listing is kept in ``listings``, and the most listings it answered at once in
    ``most_at_once``."""

    def __init__(self, upstream: str, max_keys: int, delay_s: float) -> None:
        super().__init__(upstream)
        self.max_keys = max_keys
        self.delay_s = delay_s
        self.listings: list[dict[str, str]] = []
        self.most_at_once = 0
        self._at_once = 0
        self._counting = threading.Lock()

    def handle(self, handler: BaseHTTPRequestHandler, path: str, body: bytes | None) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if handler.command == "GET" and query.get("list-type") == "2":
            self.listings.append(dict(query))
            query["max-keys"] = str(self.max_keys)
            handler.path = parts._replace(query=urlencode(query)).geturl()
            with self._counting:
                self._at_once += 1
                self.most_at_once = max(self.most_at_once, self._at_once)
            try:
                time.sleep(self.delay_s)  # the fault under test: a slow listing page
                super().handle(handler, path, body)
            finally:
                with self._counting:
                    self._at_once -= 1
            return
        super().handle(handler, path, body)
