"""``python -m sync_service.healthcheck [URL]``: exit 0 when URL (default: the daemon's
``/health`` on ``METRICS_PORT``) answers 200, 1 otherwise. Used by the Docker HEALTHCHECKs."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    """Probe one URL."""
    url = argv[0] if argv else f"http://127.0.0.1:{os.environ.get('METRICS_PORT', '9090')}/health"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
