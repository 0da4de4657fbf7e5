"""The lean HTTP/1.1 client of the hot path (``lean_http``): against the light file manager
(Node's HTTP parser, strict about what it is sent) and against small asyncio servers that
answer the ways a server may (chunked, closing a kept-alive connection, not answering)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from devtools.local_servers import LightFileManagerProcess
from sync_service.clients.infrastructure_api import InfrastructureAPI
from sync_service.clients.lean_http import AnswerTooLarge, LeanPool


def test_save_and_permissions_through_the_light_file_manager_store_the_bytes(tmp_path: Path) -> None:
    light = LightFileManagerProcess(tmp_path / "fm").start()
    try:
        api = InfrastructureAPI(light.url, max_retries=0)

        async def body() -> AsyncIterator[bytes]:
            yield b"x" * 1000
            yield b"y" * 24

        async def main() -> None:
            async with api.connect() as fm:
                assert fm._lean is not None  # the path measured, not aiohttp's
                for n in range(40):  # more calls than connections: the kept-alive ones are reused
                    saved = await fm.save_to_disk(f"d/f {n}+é.bin", body, key=f"k{n}", size=1024)
                    assert saved.sha256 == hashlib.sha256(b"x" * 1000 + b"y" * 24).hexdigest()
                    await fm.update_permissions(f"d/f {n}+é.bin", '{"read":["a"]}', key=f"p{n}")
        asyncio.run(main())
        assert (tmp_path / "fm" / "d" / "f 39+é.bin").read_bytes() == b"x" * 1000 + b"y" * 24
    finally:
        light.stop()


Handler = Callable[[int, bytes], bytes | None]


async def serve(handler: Handler) -> tuple[asyncio.Server, str, list[int]]:
    """A server answering each request with ``handler(connection number, request)``: bytes to
    send, or None to close the connection without answering; the URL and the connections made."""
    connections: list[int] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len(connections)
        connections.append(number)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                answer = handler(number, request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", connections


def pool(url: str, read_timeout: float = 5.0) -> LeanPool:
    return LeanPool(url, limit=4, connect_timeout=5.0, read_timeout=read_timeout, headers={"User-Agent": "t"})


def test_a_chunked_answer_after_an_interim_one_is_read_whole_and_the_connection_kept() -> None:
    async def main() -> None:
        server, url, connections = await serve(
            lambda _, request: b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
        lean = pool(url)
        for _ in range(3):
            answer = await lean.request("POST", "/x", "", b"body")
            assert (answer.status, answer.body) == (200, b"abcde")
        assert connections == [0]
        lean.close()
        server.close()
    asyncio.run(main())


def test_a_kept_alive_connection_dropped_by_the_server_is_tried_once_more_on_a_fresh_one() -> None:
    seen: list[tuple[int, bytes]] = []

    def handler(connection: int, request: bytes) -> bytes | None:
        seen.append((connection, request))
        if len(seen) == 2:
            return None  # the second request, on the kept-alive connection: closed unanswered
        return b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\n{}"

    async def main() -> None:
        server, url, connections = await serve(handler)
        lean = pool(url)
        first = await lean.request("POST", "/a?path=x%20y", "Idempotency-Key: k1\r\n", b"1")
        second = await lean.request("POST", "/a", "Idempotency-Key: k2\r\n", b"2")
        assert (first.status, first.headers["retry-after"], second.body) == (201, "3", b"{}")
        assert connections == [0, 1]
        lean.close()
        server.close()
    asyncio.run(main())
    assert [request.split(b"\r\n")[0] for _, request in seen] == [
        b"POST /a?path=x%20y HTTP/1.1", b"POST /a HTTP/1.1", b"POST /a HTTP/1.1"]
    assert seen[2][1].count(b"Content-Length") == 1 and b"Idempotency-Key: k2" in seen[2][1]


def test_a_server_that_does_not_answer_times_out_and_one_that_closes_at_once_is_an_oserror() -> None:
    async def main() -> None:
        silent, url, _ = await serve(lambda _, request: b"")
        with pytest.raises(TimeoutError):
            await pool(url, read_timeout=0.2).request("POST", "/a", "", b"x")
        closing, url, _ = await serve(lambda _, request: None)
        with pytest.raises(OSError):
            await pool(url).request("POST", "/a", "", b"x")
        silent.close()
        closing.close()
    asyncio.run(main())


def test_a_success_longer_than_asked_is_refused_but_an_error_body_is_read() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
               b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n<Code>N</C"]

    async def main() -> None:
        server, url, _ = await serve(lambda _, request: answers.pop(0))
        lean = pool(url)
        with pytest.raises(AnswerTooLarge):
            await lean.request("GET", "/big", "", max_body=5)
        missing = await lean.request("GET", "/missing", "", max_body=5)
        assert (missing.status, missing.body) == (404, b"<Code>N</C")
        lean.close()
        server.close()
    asyncio.run(main())


def test_only_plain_origins_take_the_lean_path() -> None:
    assert LeanPool.usable("http://127.0.0.1:8001/api")
    assert not LeanPool.usable("http://user:pw@127.0.0.1:8001")
    assert not LeanPool.usable("unix:///tmp/socket")


def test_answers_that_are_not_http_or_have_endless_headers_are_oserrors_and_close_the_connection() -> None:
    answers = [b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
               b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 70_000 + b"\r\n\r\n"]

    async def main() -> None:
        server, url, connections = await serve(lambda _, request: answers.pop(0))
        lean = pool(url)
        for _ in range(3):
            with pytest.raises(OSError):
                await lean.request("GET", "/x", "")
        assert connections == [0, 1, 2]  # none of them was used again
        lean.close()
        server.close()
    asyncio.run(main())


def test_a_head_answer_ends_at_its_headers_and_a_body_without_length_ends_with_the_connection() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\nETag: \"e\"\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        await writer.drain()
        writer.write(b"the end")
        writer.close()

    async def main() -> None:
        server, url, connections = await serve(lambda _, request: answers.pop(0))
        lean = pool(url)
        head = await lean.request("HEAD", "/big", "")
        assert (head.status, head.headers["etag"], head.body) == (200, '"e"', b"")
        kept = await lean.request("GET", "/small", "")
        assert kept.body == b"ok" and connections == [0]  # the HEAD's connection served it
        closing = await asyncio.start_server(until_close, "127.0.0.1", 0)
        other = pool(f"http://127.0.0.1:{closing.sockets[0].getsockname()[1]}")
        assert (await other.request("GET", "/stream", "")).body == b"until the end"
        for each in (lean, other):
            each.close()
        server.close()
        closing.close()
    asyncio.run(main())


def test_a_second_answer_nobody_asked_for_is_not_read_as_the_next_ones() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"
               b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB",
               b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nC"]

    async def main() -> None:
        server, url, connections = await serve(lambda _, request: answers.pop(0))
        lean = pool(url)
        assert (await lean.request("GET", "/1", "")).body == b"A"
        assert (await lean.request("GET", "/2", "")).body == b"C"
        assert connections == [0, 1]  # the connection out of step was closed, not reused
        lean.close()
        server.close()
    asyncio.run(main())
