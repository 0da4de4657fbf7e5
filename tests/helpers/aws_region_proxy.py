"""An S3 server that answers as AWS does for a bucket in another region: a real HTTP proxy in
front of moto (or any S3 server), written from AWS's documented answers.

* every answer carries ``x-amz-bucket-region: <region>``;
* a request whose SigV4 credential scope names another region gets
  ``400 AuthorizationHeaderMalformed`` with AWS's XML body (``<Region>`` and the "expecting"
  message; no body to a HEAD), and is not passed on;
* every other request goes to the upstream server.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler

from tests.helpers.fault_proxy import S3Proxy, answer_error, forward

_SCOPE = re.compile(r"Credential=([^/,]+)/\d{8}/([^/,]+)/s3/aws4_request")


def credential_scope(authorization: str) -> tuple[str, str] | None:
    """The access key and region of a SigV4 ``Authorization`` header (None: unsigned)."""
    found = _SCOPE.search(authorization)
    return (found.group(1), found.group(2)) if found else None


def malformed(signed_for: str, region: str) -> bytes:
    """AWS's answer to a request signed for ``signed_for`` when the bucket is in ``region``."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AuthorizationHeaderMalformed</Code>'
            f"<Message>The authorization header is malformed; the region '{signed_for}' is wrong; "
            f"expecting '{region}'</Message><Region>{region}</Region>"
            f"<RequestId>D5F2662865713BDC</RequestId><HostId>test-host-id</HostId></Error>").encode()


class AwsRegionProxy(S3Proxy):
    """Answers as an AWS bucket in ``region``; counts what it refused and what it passed on."""

    def __init__(self, upstream: str, region: str = "eu-west-1") -> None:
        super().__init__(upstream)
        self.region = region
        self.refused: list[tuple[str, str, str]] = []  # (method, path, region signed for)
        self.passed: list[tuple[str, str]] = []  # (method, path)
        self.signed: list[tuple[str, str, str]] = []  # (method, path, access key) of each passed
        self._lock = threading.Lock()

    def handle(self, handler: BaseHTTPRequestHandler, path: str, body: bytes | None) -> None:
        scope = credential_scope(handler.headers.get("Authorization", ""))
        added = {"x-amz-bucket-region": self.region}
        if scope is not None and scope[1] != self.region:
            with self._lock:
                self.refused.append((handler.command, path, scope[1]))
            answer_error(handler, 400, malformed(scope[1], self.region), added)
            return
        with self._lock:
            self.passed.append((handler.command, path))
            if scope is not None:
                self.signed.append((handler.command, path, scope[0]))
        content = forward(handler, self.upstream, body, added)
        if content is not None:
            handler.wfile.write(content)
