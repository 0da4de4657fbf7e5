"""The ``nats`` event source: a NATS JetStream durable pull consumer (SPEC §5).

The stream (``NATS_STREAM`` on ``NATS_SUBJECT``) and the durable consumer (``NATS_DURABLE``)
are created when missing. Messages are fetched in batches; each is acknowledged only after the
database transaction that applied it has committed, and a message the processor rejected is
terminated (never redelivered) after its dead letter is committed. A message delivered again
(the service died between the commit and the ack) is skipped by its event id.

nats-py is asyncio; this source owns a private event loop and runs each call to completion,
so the rest of the service stays synchronous. NATS errors leave as ``EventSourceError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import nats
from nats import errors as nats_errors
from nats.js import api as js_api
from nats.js import errors as js_errors

from sync_service.clients.event_source import MessageBatch
from sync_service.errors import EventSourceError
from sync_service.models.events import RawMessage
from sync_service.utils.redaction import redact

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
FETCH_WAIT_S = 0.5
#: How long a fetch of messages the consumer may deliver again waits for them (those whose
#: ack wait has not ended yet do not come).
REDELIVERY_WAIT_S = 0.05
DUPLICATE_WINDOW_S = 120.0
_NATS_ERRORS = (nats_errors.Error, js_errors.Error, OSError, asyncio.TimeoutError)


def _event_id(body: str) -> str:
    """The id a message is published under (``Nats-Msg-Id``): its event_id, else its hash."""
    from sync_service.models.event_parser import message_id

    try:
        document = json.loads(body)
    except ValueError:
        return message_id(body)
    if isinstance(document, dict) and document.get("event_id"):
        return str(document["event_id"])
    return message_id(body)


class NatsSource:
    """Reads events from a JetStream durable pull consumer."""

    name = "nats"

    def __init__(self, url: str, stream: str, subject: str, durable: str, *,
                 ack_wait_s: float = 120.0, fetch_wait_s: float = FETCH_WAIT_S,
                 max_age_s: float = 0.0, counted: bool = False) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.ack_wait_s = ack_wait_s
        self.max_age_s = max_age_s
        self.fetch_wait_s = fetch_wait_s
        # The daemon's replay fetches what the consumer counts as waiting, and no more: later
        # messages wake the next cycle.
        self.counted = counted
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None

    # -- plumbing ----------------------------------------------------------------------------

    def _run(self, coroutine: Any, what: str) -> Any:
        try:
            return self._loop.run_until_complete(coroutine)
        except _NATS_ERRORS as exc:
            raise EventSourceError(redact(f"NATS {what} at {self.url}: {type(exc).__name__}: {exc}")) from exc

    async def _connect(self) -> None:
        if self._nc is not None and self._nc.is_connected:
            return

        async def quiet(exc: Exception) -> None:
            logger.debug("NATS: %s", exc)

        self._nc = await nats.connect(
            self.url, connect_timeout=CONNECT_TIMEOUT_S, max_reconnect_attempts=2,
            reconnect_time_wait=0.5, allow_reconnect=True, name="s3-sync-service",
            error_cb=quiet)
        self._js = self._nc.jetstream()
        self._sub = None
        try:
            await self._js.stream_info(self.stream)
        except js_errors.NotFoundError:
            await self._js.add_stream(name=self.stream, subjects=[self.subject],
                                      duplicate_window=DUPLICATE_WINDOW_S, max_age=self.max_age_s)
            logger.info("NATS: created stream %s on %s", self.stream, self.subject)

    async def _subscription(self) -> Any:
        await self._connect()
        if self._sub is None:
            try:
                await self._js.consumer_info(self.stream, self.durable)
            except js_errors.NotFoundError:
                await self._js.add_consumer(self.stream, js_api.ConsumerConfig(
                    durable_name=self.durable, ack_policy=js_api.AckPolicy.EXPLICIT,
                    ack_wait=self.ack_wait_s, filter_subject=self.subject,
                    deliver_policy=js_api.DeliverPolicy.ALL, max_ack_pending=20_000))
                logger.info("NATS: created durable consumer %s", self.durable)
            self._sub = await self._js.pull_subscribe_bind(self.durable, stream=self.stream)
        return self._sub

    async def _fetch(self, count: int, wait_s: float | None = None) -> list[Any]:
        sub = await self._subscription()
        try:
            return list(await sub.fetch(count, timeout=self.fetch_wait_s if wait_s is None else wait_s))
        except (TimeoutError, nats_errors.TimeoutError, js_errors.FetchTimeoutError):
            return []

    async def _consumer(self) -> Any:
        await self._subscription()
        return await self._js.consumer_info(self.stream, self.durable)

    # -- the source interface ----------------------------------------------------------------

    def ensure(self) -> None:
        """Connect and create the stream and the consumer when missing."""
        self._run(self._subscription(), "setup")

    def batches(self, position: str | None, max_messages: int) -> Iterator[MessageBatch]:
        """Fetch until nothing more arrives within the fetch wait (``counted``: what the
        consumer counts as waiting now)."""
        if self.counted:
            yield from self._counted_batches(max_messages)
            return
        while True:
            messages = self._run(self._fetch(max_messages), "fetch")
            if not messages:
                return
            yield _batch(messages)

    def _counted_batches(self, max_messages: int) -> Iterator[MessageBatch]:
        """The messages the consumer has not delivered yet, then those it may deliver again
        (an earlier process's, never acknowledged), each fetched by its count: a pull for
        exactly what is there ends as soon as it has come, and leaves nothing the server
        sends after the client stopped reading (a message stuck until its ack wait ends)."""
        consumer = self._run(self._consumer(), "consumer info")
        for left, wait_s in ((int(consumer.num_pending or 0), self.fetch_wait_s),
                             (int(consumer.num_ack_pending or 0), REDELIVERY_WAIT_S)):
            while left > 0:
                messages = self._run(self._fetch(min(left, max_messages), wait_s), "fetch")
                if not messages:
                    break
                left -= len(messages)
                yield _batch(messages)

    def acknowledge(self, batch: MessageBatch, rejected: frozenset[str] = frozenset()) -> None:
        """Ack what applied and terminate what was dead-lettered, once the database has committed."""

        async def settle() -> None:
            for message, raw in zip(batch.token or [], batch.messages, strict=True):
                await (message.term() if raw.position in rejected else message.ack())
            await self._nc.flush(timeout=CONNECT_TIMEOUT_S)

        self._run(settle(), "ack")

    def release(self, batch: MessageBatch) -> None:
        """Give a batch back unapplied (a dry run): redelivered at once, not after the ack wait.

        The pull subscription goes first: a pull request of this process that the server still
        holds (its expiry can trail the client's timeout) would otherwise take the message
        back at once, and no one would read it before its ack wait ended."""

        async def nak() -> None:
            if self._sub is not None:
                await self._sub.unsubscribe()
                self._sub = None
                await self._nc.flush(timeout=CONNECT_TIMEOUT_S)
            for message in batch.token or []:
                await message.nak()
            await self._nc.flush(timeout=CONNECT_TIMEOUT_S)

        self._run(nak(), "nak")

    def publish(self, body: str) -> str:
        """Publish one event with ``Nats-Msg-Id`` set, so JetStream drops a duplicate."""

        async def send() -> Any:
            await self._connect()
            return await self._js.publish(self.subject, body.encode("utf-8"),
                                          headers={"Nats-Msg-Id": _event_id(body)})

        ack = self._run(send(), "publish")
        duplicate = " (duplicate, dropped by JetStream)" if getattr(ack, "duplicate", False) else ""
        return f"NATS stream {ack.stream} sequence {ack.seq}{duplicate}"

    def redelivery_window_s(self) -> float | None:
        """How long a message can still come again: the stream's maximum age (None: forever)."""

        async def info() -> Any:
            await self._connect()
            return await self._js.stream_info(self.stream)

        max_age = float(self._run(info(), "stream info").config.max_age or 0)
        return max_age if max_age > 0 else None

    def describe(self) -> dict[str, Any]:
        """The consumer's pending, in-flight and redelivered counts."""

        consumer = self._run(self._consumer(), "consumer info")
        return {"source": "nats", "stream": self.stream, "consumer": self.durable,
                "pending": consumer.num_pending, "ack_pending": consumer.num_ack_pending,
                "redelivered": consumer.num_redelivered}

    def close(self) -> None:
        """Close the connection and the loop."""
        if self._nc is not None and not self._nc.is_closed:
            try:
                self._loop.run_until_complete(self._nc.close())
            except _NATS_ERRORS:
                pass
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()


def _batch(messages: list[Any]) -> MessageBatch:
    raw = [RawMessage(m.data.decode("utf-8", errors="replace"), str(m.metadata.sequence.stream))
           for m in messages]
    return MessageBatch(raw, raw[-1].position, token=messages)
