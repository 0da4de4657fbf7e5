"""1000+ hostile event messages from hypothesis through the spool and ``incremental-sync``:
random JSON, huge strings, unicode, nested junk, bytes that are not UTF-8, and valid-looking
events whose paths try to leave the file manager's storage. Every message is applied or
dead-lettered, the run does not crash, and nothing is written outside the mock's storage root."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devtools.local_servers import MockApiProcess
from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_mirrors, report_of

MESSAGES = 1300
LINE_BREAK = b"\n"

HOSTILE_PATHS = st.one_of(
    st.sampled_from(["../x", "../../etc/passwd", "/abs", "/etc/passwd", "a//b", "a/../../b", "./a", "..",
                     ".", "", " ", "a/", "a\x00b", "\x00", "a\x85b", "a\x9fb", "a\\b", "..\\..\\x",
                     "C:\\x", "a/\u202e.txt", "\ufeff", "%2e%2e/x", "a\nb", "a\rb", "con", "a\tb"]),
    st.builds(lambda c: f"d/{c}/x", st.characters(min_codepoint=0x80, max_codepoint=0x9F)),
    st.builds(lambda n, s: s * n, st.integers(1, 1000), st.sampled_from(["../", "a/", "x", "é", "/", "\\"])),
    st.just("p" * 2000), st.just("d/" * 1000 + "f"),
    st.text(max_size=40),
)
JSON_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=15,
)
EVENT_TYPES = st.sampled_from(["create", "delete", "rename", "move", "change_permission", "update",
                               "CREATE", "", "ObjectCreated:Put"])
VALID_LOOKING = st.fixed_dictionaries(
    {"type": EVENT_TYPES, "path": HOSTILE_PATHS},
    # No event_id: a message's id is then its content's, and the messages differ, so no message
    # is a duplicate of another (a duplicate is dropped without a count in the report).
    optional={"new_path": HOSTILE_PATHS, "permissions": JSON_JUNK, "size": JSON_JUNK, "etag": JSON_JUNK})
S3_LOOKING = st.builds(lambda key, extra: {"Records": [{"eventName": "ObjectCreated:Put",
                                                        "s3": {"object": {"key": key, **extra}}}]},
                       HOSTILE_PATHS, st.dictionaries(st.sampled_from(["size", "eTag"]), JSON_JUNK))
HUGE = st.builds(lambda piece, n: json.dumps({"type": "create", "path": piece * n}),
                 st.text(min_size=1, max_size=4), st.integers(50_000, 250_000))


def _line(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


MESSAGE = st.one_of(
    VALID_LOOKING.map(_line),
    S3_LOOKING.map(_line),
    JSON_JUNK.map(_line),
    HUGE.map(str.encode),
    st.text(min_size=1, max_size=200).map(str.encode),  # anything, unicode included
    st.binary(min_size=1, max_size=200),  # not even UTF-8
).map(lambda line: line.replace(LINE_BREAK, b" ")).filter(lambda line: line.strip())


def hostile_messages(count: int) -> list[bytes]:
    """Up to ``count`` different messages, the same every run (derandomized)."""
    drawn: list[bytes] = []
    seen: set[str] = set()

    @settings(max_examples=count, database=None, derandomize=True, phases=[Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(MESSAGE)
    def collect(message: bytes) -> None:
        # Told apart, and kept when not blank, as the spool reads a line.
        text = message.decode("utf-8", errors="replace").rstrip("\r\n")
        if text.strip() and text not in seen:
            seen.add(text)
            drawn.append(message)

    collect()
    return drawn


@pytest.fixture
def own_mock(tmp_path: Path) -> Iterator[tuple[MockApiProcess, Path]]:
    """A mock API whose storage root is the only thing in a folder of its own."""
    outer = tmp_path / "outer"
    root = outer / "storage"
    root.mkdir(parents=True)
    mock = MockApiProcess(root).start()
    yield mock, outer
    mock.stop()


def test_a_thousand_hostile_messages_are_applied_or_dead_lettered_and_nothing_escapes(
        cli: Cli, bucket: Bucket, own_mock: tuple[MockApiProcess, Path]) -> None:
    mock, outer = own_mock
    cli.env["MOCK_API_URL"] = mock.url
    for key in ("keep/a.txt", "keep/b.txt", "c.txt"):
        bucket.put(key, key.encode())
    assert cli.run("initial-sync").returncode == 0
    messages = hostile_messages(MESSAGES)
    assert len(messages) >= 1000, len(messages)
    spool_dir = cli.workdir / "data" / "events"
    spool_dir.mkdir(parents=True, exist_ok=True)
    (spool_dir / "hostile.jsonl").write_bytes(b"".join(m + LINE_BREAK for m in messages))

    result = cli.run("incremental-sync", timeout=240)

    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    report = report_of(result)
    dead_letters = list((cli.workdir / "data" / "dead-letters").glob("*.json"))
    # One event per message: each is applied, skipped and counted (a folder marker), or dead-lettered.
    assert report["events_applied"] + report["skipped"] + report["events_rejected"] == len(messages), \
        (len(messages), report)
    assert report["events_rejected"] == len(dead_letters) > 1000
    assert not (spool_dir / "hostile.jsonl").exists()  # read to the end and moved to processed/
    assert len(list((spool_dir / "processed").glob("hostile.*"))) == 1

    assert sorted(p.name for p in outer.iterdir()) == ["storage"]
    root = (outer / "storage").resolve()
    for folder, _, files in os.walk(outer):
        for name in files:
            assert root in (Path(folder) / name).resolve().parents, Path(folder) / name
    assert_mirrors(Api(mock.url), bucket)
