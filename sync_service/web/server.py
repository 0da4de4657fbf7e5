"""A small HTTP server for the daemon: ``/metrics`` (Prometheus text); ``/livez`` (the loop turns:
for restarts), ``/readyz`` and ``/health`` (the verdict ok, degraded or failing, 503 when
failing: for alerts and load balancers); the status page ``/`` (HTML) and ``/api/status`` (the
JSON of ``status --json``)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sync_service.errors import SyncError
from sync_service.runs.metrics import SyncMetrics
from sync_service.runs.status import status_json
from sync_service.utils.redaction import redact, redact_value
from sync_service.web.status_cache import StatusCache
from sync_service.web.status_page import render_status_page


def start_metrics_server(metrics: SyncMetrics, port: int, status: StatusCache,
                         host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve ``metrics`` and ``status`` on ``port`` from a background thread; returns the
    server to shut down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = self.path.split("?")[0]
            if route == "/metrics":
                text = generate_latest(metrics.registry).decode("utf-8")
                self._send(200, CONTENT_TYPE_LATEST, redact(text).encode("utf-8"))
            elif route == "/livez":  # asks nothing of S3, the API or the database
                alive, reason = metrics.liveness()
                self._send_json(200 if alive else 503, {"status": "ok" if alive else "failing", "reason": reason})
            elif route in ("/readyz", "/health"):
                verdict = status.health()
                self._send_json(200 if verdict.ready else 503, verdict.to_dict())
            elif route in ("/", "/api/status"):
                self._send_status(status, page=route == "/")
            else:
                self._send(404, "text/plain", b"not found: try /, /api/status, /metrics, /livez, /readyz or /health\n")

        def _send_json(self, code: int, body: dict[str, object]) -> None:
            self._send(code, "application/json", json.dumps(redact_value(body)).encode())

        def _send_status(self, cache: StatusCache, *, page: bool) -> None:
            try:
                current = cache.status()
            except SyncError as exc:  # the database cannot be read: say so, keep serving
                self._send(503, "text/plain; charset=utf-8", redact(f"status unavailable: {exc}\n").encode())
                return
            if not page:
                self._send(200, "application/json", redact(status_json(current)).encode("utf-8"))
                return
            html = render_status_page(current, next_cycle_at=metrics.next_cycle_at,
                                      live_age_s=cache.live_age_s())
            self._send(200, "text/html; charset=utf-8", redact(html).encode("utf-8"))

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
