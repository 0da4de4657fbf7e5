"""A lean HTTP/1.1 client for the file manager's small calls: one buffered request, one
buffered answer, over kept-alive connections of one origin.

aiohttp's client request path was a third of the service's CPU in an initial sync of small
objects (py-spy, 5000 × 1 KiB: two file-manager calls an object, each building a
``ClientRequest``, a ``ClientResponse``, a ``StreamWriter``, a timer and a task). A call whose
body is already in memory and whose answer is a short JSON document needs none of that: here a
request is one ``bytes`` written in one ``transport.write`` and the answer is parsed as it
arrives by llhttp (Node's HTTP parser, through httptools, as uvicorn parses requests).
Streamed bodies, custom timeouts, proxies and anything unusual stay on aiohttp
(``FileManagerSession`` decides which).

Errors are the standard library's: ``TimeoutError`` (no byte of the answer for ``read_timeout``
seconds, or no connection within ``connect_timeout``) and ``OSError`` (refused, reset, closed
before the answer was whole, an answer that is not HTTP/1.x); the caller classifies them.
A kept-alive connection the server closed while it sat idle is noticed when taken, and one that
fails before any byte of the answer came back is tried once more on a fresh connection (the
calls carry an Idempotency-Key, so a request the server did see is not applied twice).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import cast
from urllib.parse import urlsplit

from httptools import HttpParserCallbackError, HttpParserError, HttpResponseParser
from multidict import CIMultiDict

#: The most bytes of headers an answer may have before it is refused.
MAX_HEADER_BYTES = 64 * 1024


class AnswerTooLarge(Exception):
    """A 2xx answer's body is longer than the request allowed (or of a length not told first)."""


class Answer:
    """The parsed answer: status, headers (case-insensitive), body."""

    __slots__ = ("body", "headers", "keep_alive", "status")

    def __init__(self, status: int, headers: CIMultiDict[str], body: bytes, keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive

    async def read(self) -> bytes:
        """The body (as aiohttp's ``ClientResponse.read``)."""
        return self.body

    def release(self) -> None:
        """Nothing to release: the connection went back to the pool with the whole answer."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection: writes a request, gathers its answer (parsed by llhttp,
    through httptools, one parser a request)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # whether an answer came back on it already (a reused connection)
        self._parser: HttpResponseParser | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._received = False  # any byte of the answer in flight
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._header_bytes = 0
        self._status = 0
        self._body = bytearray()
        self._until_close = False  # a body delimited by the end of the connection
        self._answer: Answer | None = None
        self._bodiless = False
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._max_body: int | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done() or self._parser is None:
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except HttpParserCallbackError as exc:
            self._finish(exc.__context__ if isinstance(exc.__context__, (OSError, AnswerTooLarge))
                         else ConnectionError(f"a malformed answer: {exc}"))
            return
        except HttpParserError as exc:
            self._finish(ConnectionError(f"not an HTTP/1.x answer: {exc}"))
            return
        if self._answer is not None:
            self._finish(self._answer)
        elif self._timer is not None:  # part of the answer: the read timeout starts again
            self._timer.cancel()
            self._timer = self.loop.call_later(self._read_timeout, self._timed_out)

    def eof_received(self) -> bool:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._until_close:
            self._finish(Answer(self._status, self._headers, bytes(self._body), False))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._finish(ConnectionResetError(f"the server closed the connection: {exc or 'end of stream'}"))

    # -- httptools' callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._answer is not None:  # a second answer after the one asked for: out of step
            self._answer.keep_alive = False
        self._headers = CIMultiDict()
        self._header_bytes = 0
        self._body.clear()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            raise ConnectionError("the answer's headers are too long")
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._status = self._parser.get_status_code()
        if status < 200 or self._answer is not None:
            return  # an interim answer (100 Continue, 103): the real one follows
        headers = self._headers
        if self._bodiless or status in (204, 304):
            self._answer = Answer(status, headers, b"", self._parser.should_keep_alive())
            return
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = None if chunked else headers.get("content-length")
        self._until_close = not chunked and length is None
        limit = self._max_body
        if limit is not None and status < 300 and (length is None or int(length) > limit):
            raise AnswerTooLarge(f"{length if length is not None else 'an unknown number of'} "
                                 f"bytes, more than {limit}")

    def on_body(self, body: bytes) -> None:
        if self._answer is None:
            self._body += body

    def on_message_complete(self) -> None:
        assert self._parser is not None
        if self._status >= 200 and self._answer is None:
            self._answer = Answer(self._status, self._headers, bytes(self._body),
                                  self._parser.should_keep_alive())

    # -- requests -------------------------------------------------------------------------------

    def request(self, data: bytes, *, bodiless: bool, read_timeout: float,
                max_body: int | None = None) -> asyncio.Future[Answer]:
        """Write ``data`` (a whole request); the future is the whole answer (``AnswerTooLarge``
        when a 2xx body would be longer than ``max_body``)."""
        assert self.transport is not None
        self._parser = HttpResponseParser(self)
        self._received = False
        self._answer = None
        self._until_close = False
        self._status = 0
        self._body.clear()
        self._bodiless = bodiless
        self._read_timeout = read_timeout
        self._max_body = max_body
        self._waiter = self.loop.create_future()
        self._timer = self.loop.call_later(read_timeout, self._timed_out)
        self.transport.write(data)
        return self._waiter

    def started(self) -> bool:
        """Whether any byte of the answer in flight came back."""
        return self._received

    def close(self) -> None:
        """Close the connection (an answer awaited fails)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self) -> None:
        self._timer = None
        self._finish(TimeoutError(f"no answer within {self._read_timeout:g} s"))
        self.close()

    def _finish(self, outcome: Answer | BaseException) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter, self._waiter = self._waiter, None
        self._parser = None
        if isinstance(outcome, BaseException):
            self.close()
            if waiter is not None and not waiter.done():
                waiter.set_exception(outcome)
            return
        self.used = True
        if not outcome.keep_alive:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)


class LeanPool:
    """Kept-alive connections to one origin (``http`` or ``https``), at most ``limit`` at once."""

    def __init__(self, base_url: str, *, limit: int, connect_timeout: float, read_timeout: float,
                 headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise ValueError(f"not a plain http(s) origin: {base_url!r}")
        self.secure = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.prefix = parts.path.rstrip("/")
        self.limit = max(1, limit)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.secure else None
        # The request line's fixed headers, built once.
        self.origin = f"{parts.scheme}://{parts.netloc}"
        host = parts.netloc.rsplit("@", 1)[-1]  # as S3 signs it: no port where it is the scheme's
        default = ":443" if self.secure else ":80"
        host = host[: -len(default)] if host.endswith(default) else host
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in
                              {"Host": host, **headers, "Accept": "*/*"}.items())
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @staticmethod
    def usable(base_url: str) -> bool:
        """Whether ``base_url`` is an origin this client serves (else aiohttp does)."""
        parts = urlsplit(base_url)
        return (parts.scheme in ("http", "https") and bool(parts.hostname)
                and not parts.username and not parts.password and not parts.query and not parts.fragment)

    async def request(self, method: str, target: str, headers: str, body: bytes = b"", *,
                      max_body: int | None = None) -> Answer:
        """Send ``method target`` (``target``: path and query, encoded, below the base URL's path)
        with ``headers`` (``"Name: value\\r\\n"`` lines) and ``body``; the whole answer, whose
        body may be ``max_body`` bytes at most when it is a success (else ``AnswerTooLarge``)."""
        length = f"Content-Length: {len(body)}\r\n" if body or method not in ("GET", "HEAD") else ""
        data = (f"{method} {self.prefix}{target} HTTP/1.1\r\n{self._fixed}{headers}{length}\r\n"
                ).encode("latin-1") + body
        bodiless = method == "HEAD"
        connection = await self._take()
        try:
            answer = await connection.request(data, bodiless=bodiless, read_timeout=self.read_timeout,
                                                  max_body=max_body)
        except OSError:
            again = connection.used and not connection.started()
            connection.close()
            self._give_back(connection)
            if not again:
                raise
            # A kept-alive connection the server dropped as the request went: once more on a
            # fresh one (the Idempotency-Key makes a repeat harmless).
            connection = await self._connect()
            try:
                answer = await connection.request(data, bodiless=bodiless, read_timeout=self.read_timeout,
                                                  max_body=max_body)
            except BaseException:
                connection.close()
                self._give_back(connection)
                raise
        except BaseException:
            connection.close()
            self._give_back(connection)
            raise
        self._give_back(connection)
        return answer

    def close(self) -> None:
        """Close every idle connection (those in use close as they come back)."""
        while self._idle:
            self._idle.popleft().close()

    async def _take(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and connection.transport is not None and not connection.transport.is_closing():
                return connection
            self._open -= 1
        while self._open >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake()  # pass the turn on
                raise
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed and connection.transport is not None \
                        and not connection.transport.is_closing():
                    return connection
                self._open -= 1
        return await self._connect()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        self._open += 1
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port, ssl=self._ssl),
                self.connect_timeout)
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        return connection

    def _give_back(self, connection: _Connection) -> None:
        if connection.closed:
            self._open -= 1
        else:
            self._idle.append(connection)
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
