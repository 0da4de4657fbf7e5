"""``python -m sync_service.healthcheck [URL | /PATH]``: exit 0 when the URL answers 200, 1
otherwise. A path is asked of the daemon on ``METRICS_PORT``; the default is its ``/livez``.

The Docker HEALTHCHECKs use it. The daemon's is ``/livez`` (its loop turns), not ``/readyz``:
what acts on a container's health (Swarm, autoheal, an orchestrator) restarts it, and a restart
cures neither an S3 outage nor an object the service may not read.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PATH = "/livez"


def url_of(target: str | None, port: str) -> str:
    """The URL to probe: ``target`` as it is, or a path on the daemon's port."""
    if target and not target.startswith("/"):
        return target
    return f"http://127.0.0.1:{port}{target or DEFAULT_PATH}"


def main(argv: list[str]) -> int:
    """Probe one URL."""
    url = url_of(argv[0] if argv else None, os.environ.get("METRICS_PORT", "9090"))
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
