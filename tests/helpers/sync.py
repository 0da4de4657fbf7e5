"""Assertions and inputs of the sync tests: what the file manager holds against the bucket,
the run report, event spools and NATS messages, the daemon's metrics and stop."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import nats
import requests

from devtools.local_servers import NatsServer
from sync_service.errors import DatabaseError
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.waiting import holds_for, wait_for

#: The permissions an object without permissions metadata is delivered with.
DEFAULT = {"visibility": "private"}


def sha(body: bytes) -> str:
    """Hex sha256 of ``body``, as the mock reports it."""
    return hashlib.sha256(body).hexdigest()


def report_of(result: Any) -> dict[str, Any]:
    """The run report a command printed on stdout."""
    return dict(json.loads(result.stdout))


def delivered_paths(cli: Cli) -> set[str]:
    """Paths the database knows the file manager holds (the baseline)."""
    try:
        return {row[0] for row in cli.query("SELECT path FROM baseline")}
    except DatabaseError:  # created but not migrated yet
        return set()


def stop_when(process: Any, condition: Callable[[], Any], timeout: float = 60) -> None:
    """Stop `process` (SIGSTOP) at a moment `condition()` holds while it is stopped.

    The condition must still hold a moment after the process stopped, when a commit it had
    already sent has landed, so a test that kills it next knows what the killed process left
    behind."""
    def stopped_while_true() -> bool:
        if not condition():
            return False
        if process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before it could be stopped")
        process.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{process.pid}/stat")

        def stopped() -> bool:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            if state in "ZX":  # it exited meanwhile
                raise AssertionError(f"the process did not stop (state {state})")
            return state == "T"

        wait_for(stopped, 5, f"process {process.pid} stopping on SIGSTOP", interval=0.001)
        try:
            # A statement sent before the stop still finishes on the server: the condition
            # has to survive it, read over a short span.
            holds_for(condition, 0.05, "the condition once stopped", interval=0.01)
            return True
        except AssertionError:
            process.send_signal(signal.SIGCONT)  # it moved on meanwhile
            return False

    wait_for(stopped_while_true, timeout, "a moment to stop the process at", interval=0.02)


def assert_api_matches_bucket(api: Api, bucket: Bucket, permissions: dict[str, Any]) -> None:
    """The file manager holds every object of the bucket (folder markers aside), byte for byte,
    with its permissions (``DEFAULT`` where ``permissions`` names none)."""
    files = api.files()
    contents = bucket.contents()
    expected = {k for k in contents if not k.endswith("/")}
    assert set(files) == expected
    for key in expected:
        assert files[key]["size"] == len(contents[key]), key
        assert files[key]["sha256"] == sha(contents[key]), key
        assert files[key]["permissions"] == permissions.get(key, DEFAULT), key


def assert_mirrors(api: Api, bucket: Bucket, permissions: dict[str, Any] | None = None) -> None:
    """The file manager holds exactly the bucket's objects, by content and permissions."""
    files = api.files()
    contents = bucket.contents()
    assert set(files) == set(contents)
    for key, body in contents.items():
        assert files[key]["sha256"] == sha(body), key
        assert files[key]["permissions"] == (permissions or {}).get(key, DEFAULT), key


def assert_nothing_applied_twice(api: Api, *, answers_lost: Collection[str] = ()) -> None:
    """Each path was uploaded once and each call applied once, counted from every call the mock
    answered, replays included: a client that sends one upload twice fails this even when both
    carry the same Idempotency-Key (the mock answers the second from its cache and changes
    nothing, SPEC §3). A path in ``answers_lost`` had its answers withheld by the test (the
    client timed out), so it was rightly sent again, and a later run sends it as a new
    operation under a new key: its uploads are not counted, its keys still are."""
    operations = api.operations()
    applied = Counter(op["idempotency_key"] for op in operations if not op["replay"])
    assert all(n == 1 for n in applied.values()), f"keys applied more than once: {applied}"
    uploads = Counter(op["path"] for op in operations if op["op"] == "saveToDisk" and op["path"] not in answers_lost)
    assert all(n == 1 for n in uploads.values()), f"uploads sent more than once: {uploads}"


def ops_of(api: Api, since: int = 0) -> list[tuple[str, str]]:
    """(call, path) of each call the mock answered since the ``since``-th."""
    return [(op["op"], op["path"]) for op in api.operations()[since:]]


def spool(cli: Cli, name: str, *events: dict[str, Any] | str) -> Path:
    """Write events (dicts as JSON, strings as they are) to a spool file of the CLI's folder."""
    folder = cli.workdir / "data" / "events"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events))
    return path


def write_spool(folder: Path, name: str, events: list[dict[str, object]]) -> Path:
    """Write events as JSON lines to ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def publish_all(server: NatsServer, subject: str, bodies: list[str]) -> None:
    """Publish each body to ``subject`` on the JetStream of ``server``, in order."""
    async def send() -> None:
        connection = await nats.connect(server.url)
        stream = connection.jetstream()
        for body in bodies:
            await stream.publish(subject, body.encode())
        await connection.close()

    asyncio.run(send())


def rename_in_bucket(bucket: Bucket, source: str, target: str) -> None:
    """Copy ``source`` to ``target`` and delete ``source``: a rename as S3 has it."""
    bucket.client.copy_object(Bucket=bucket.name, Key=target,
                              CopySource={"Bucket": bucket.name, "Key": source})
    bucket.client.delete_object(Bucket=bucket.name, Key=source)


def synced(cli: Cli, bucket: Bucket, objects: dict[str, bytes]) -> None:
    """Put ``objects`` in the bucket and run an initial sync that must succeed."""
    for key, body in objects.items():
        bucket.put(key, body)
    result = cli.run("initial-sync")
    assert result.returncode == 0, result.stderr


def metric(base: str, name: str, **labels: str) -> float:
    """The value of one series of the daemon's ``/metrics`` (0 when absent)."""
    text = requests.get(f"{base}/metrics", timeout=5).text
    wanted = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series == name + wanted or (not labels and series == name):
            return float(value)
        if labels and series.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', series))
            if found == labels:
                return float(value)
    return 0.0


def stop(process: subprocess.Popen[str], timeout: float = 10) -> tuple[int, float]:
    """SIGTERM a daemon; its exit code and how long it took to exit."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=timeout)
    return code, time.monotonic() - started
