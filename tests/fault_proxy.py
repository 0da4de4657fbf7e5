"""A real HTTP proxy in front of an S3 server that answers 403 for chosen keys: the way to give
one object a HEAD or GET that fails (a missing permission on a real bucket), which neither moto
nor rclone can be told to do."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import requests

ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class DenyingProxy:
    """Forwards every request to ``upstream``, but object requests for ``denied`` keys get 403."""

    def __init__(self, upstream: str, denied: set[str]) -> None:
        self.upstream = upstream.rstrip("/")
        self.denied = denied
        self.denials = 0
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                path = unquote(urlsplit(self.path).path)
                proxy.seen.append((self.command, path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if any(path.endswith("/" + key) for key in proxy.denied):
                    proxy.denials += 1
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(ACCESS_DENIED)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(ACCESS_DENIED)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = requests.request(self.command, proxy.upstream + self.path, headers=headers,
                                          data=body, timeout=30, allow_redirects=False)
                content = answer.content
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", answer.headers.get("Content-Length", "0"))
                else:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DenyingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
