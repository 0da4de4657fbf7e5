"""A lean HTTP/1.1 client for the file manager's small calls: one buffered request, one
buffered answer, over kept-alive connections of one origin.

aiohttp's client request path was a third of the service's CPU in an initial sync of small
objects (py-spy, 5000 × 1 KiB: two file-manager calls an object, each building a
``ClientRequest``, a ``ClientResponse``, a ``StreamWriter``, a timer and a task). A call whose
body is already in memory and whose answer is a short JSON document needs none of that: here a
request is one ``bytes`` written in one ``transport.write`` and the answer is parsed in the
protocol's ``data_received``. Streamed bodies, custom timeouts, proxies and anything unusual
stay on aiohttp (``FileManagerSession`` decides which).

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
    """One kept-alive connection: writes a request, gathers its answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False  # whether an answer came back on it already (a reused connection)
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._head: tuple[int, CIMultiDict[str], bool] | None = None  # status, headers, keep-alive
        self._body_start = 0
        self._length: int | None = None  # the body's length; None: chunked or until close
        self._chunked = False
        self._bodiless = False
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._max_body: int | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: the connection is out of step
            return
        self._buffer += data
        try:
            answer = self._parse()
        except (OSError, AnswerTooLarge) as exc:
            self._finish(exc)
            return
        if answer is not None:
            self._finish(answer)
        elif self._timer is not None:  # part of the answer: the read timeout starts again
            self._timer.cancel()
            self._timer = self.loop.call_later(self._read_timeout, self._timed_out)

    def eof_received(self) -> bool:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._head is not None and self._length is None \
                and not self._chunked and not self._bodiless:
            status, headers, _ = self._head  # a body delimited by the end of the connection
            self._finish(Answer(status, headers, bytes(self._buffer[self._body_start:]), False))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._finish(ConnectionResetError(f"the server closed the connection: {exc or 'end of stream'}"))

    # -- requests -------------------------------------------------------------------------------

    def request(self, data: bytes, *, bodiless: bool, read_timeout: float,
                max_body: int | None = None) -> asyncio.Future[Answer]:
        """Write ``data`` (a whole request); the future is the whole answer (``AnswerTooLarge``
        when a 2xx body would be longer than ``max_body``)."""
        assert self.transport is not None
        self._buffer.clear()
        self._head = None
        self._length = None
        self._chunked = False
        self._bodiless = bodiless
        self._read_timeout = read_timeout
        self._max_body = max_body
        self._waiter = self.loop.create_future()
        self._timer = self.loop.call_later(read_timeout, self._timed_out)
        self.transport.write(data)
        return self._waiter

    def started(self) -> bool:
        """Whether any byte of the answer in flight came back."""
        return bool(self._buffer) or self._head is not None

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

    def _parse(self) -> Answer | None:
        """The answer once the buffer holds all of it; None while it does not."""
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise ConnectionError("the answer's headers are too long")
                return None
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ConnectionError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.add(name.strip(), value.strip())
            status = int(code)
            if 100 <= status < 200:  # an interim answer (100 Continue, 103): the real one follows
                del buffer[:end + 4]
                return self._parse()
            connection = headers.get("connection", "").lower()
            keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
            self._head = (status, headers, keep_alive)
            self._body_start = end + 4
            if self._bodiless or status in (204, 304):
                self._length = 0
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
            elif "content-length" in headers:
                try:
                    self._length = int(headers["content-length"])
                except ValueError:
                    raise ConnectionError("the answer's Content-Length is not a number") from None
            else:
                self._length = None  # until the server closes the connection
                self._head = (status, headers, False)
            limit = self._max_body
            if limit is not None and status < 300 and (self._length is None or self._length > limit):
                raise AnswerTooLarge(f"{self._length if self._length is not None else 'an unknown number of'} "
                                     f"bytes, more than {limit}")
        status, headers, keep_alive = self._head
        start = self._body_start
        if self._chunked:
            body = _unchunk(buffer, start)
            return None if body is None else Answer(status, headers, body, keep_alive)
        if self._length is None:
            return None  # eof_received completes it
        if len(buffer) - start < self._length:
            return None
        return Answer(status, headers, bytes(buffer[start:start + self._length]), keep_alive)


def _unchunk(buffer: bytearray, start: int) -> bytes | None:
    """A chunked body's bytes once its last chunk (and trailers) arrived; None before."""
    parts: list[bytes] = []
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ConnectionError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            # Trailers (usually none) end with an empty line.
            if buffer.find(b"\r\n", line_end + 2) == line_end + 2 or buffer.find(b"\r\n\r\n", line_end) >= 0:
                return b"".join(parts)
            return None
        if len(buffer) < line_end + 2 + size + 2:
            return None
        parts.append(bytes(buffer[line_end + 2:line_end + 2 + size]))
        at = line_end + 2 + size + 2


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
