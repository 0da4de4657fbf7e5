"""A small HTTP server for the daemon: ``/metrics`` (Prometheus text) and ``/health`` (JSON)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sync_service.services.metrics import SyncMetrics
from sync_service.utils.redaction import redact


def start_metrics_server(metrics: SyncMetrics, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve ``metrics`` on ``port`` from a background thread; returns the server to shut down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/metrics":
                text = generate_latest(metrics.registry).decode("utf-8")
                self._send(200, CONTENT_TYPE_LATEST, redact(text).encode("utf-8"))
            elif self.path.split("?")[0] == "/health":
                healthy, details = metrics.health()
                self._send(200 if healthy else 503, "application/json",
                           json.dumps(details).encode())
            else:
                self._send(404, "text/plain", b"not found: try /metrics or /health\n")

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
