"""Kill -9 at seeded random moments across an initial sync and an incremental cycle with
renames, a swap and deletes (SPEC §7): after each kill the next run completes, the file manager
ends equal to the bucket, and no content is uploaded again beyond what was in flight.

Ten seeds, two kills each: the same twenty moments every run. A slow group (``-m killpoints``),
left out of ``make test`` and run by ``make test-killpoints`` in CI."""

from __future__ import annotations

import os
import random
import signal
from collections import Counter

import pytest

from tests.helpers.harness import Api, Bucket, Cli
from tests.helpers.sync import assert_mirrors, rename_in_bucket, spool
from tests.helpers.waiting import wait_for

WORKERS = 4
SEEDS = range(10)


def saves(api: Api, since: int = 0) -> list[str]:
    """Paths of the uploads the mock stored since the ``since``-th call: a run after a kill
    sends again what the killed one had in flight, under its key, and those replays store nothing."""
    return [op["path"] for op in api.operations()[since:] if op["op"] == "saveToDisk" and not op["replay"]]


def kill_at(cli: Cli, api: Api, rng: random.Random, command: str, calls: int, since: int) -> str:
    """Start ``command``, kill -9 it once the API has applied a random number of its calls."""
    target = rng.randrange(calls)
    process = cli.start(command)
    try:
        wait_for(lambda: process.poll() is not None or len(api.operations()) - since >= target,
                   timeout=60, interval=0.01)
    except AssertionError:
        pass
    moment = f"{command} after {len(api.operations()) - since} of {calls} calls"
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return moment


def assert_mirrors_at(api: Api, bucket: Bucket, where: str) -> None:
    try:
        assert_mirrors(api, bucket)
    except AssertionError as exc:
        raise AssertionError(f"{where}: {exc}") from exc


def extra_uploads(paths: list[str]) -> int:
    return sum(n - 1 for n in Counter(paths).values())


@pytest.mark.killpoints
@pytest.mark.parametrize("seed", SEEDS)
def test_killed_at_a_seeded_moment_then_run_again_ends_exact(cli: Cli, bucket: Bucket, api: Api, seed: int) -> None:
    rng = random.Random(seed)
    cli.env["SYNC_WORKERS"] = str(WORKERS)
    objects = {f"f/{n:02}.bin": os.urandom(rng.randrange(1, 64 * 1024)) for n in range(30)}
    objects |= {"a": b"AAA", "b": b"BBB", "old/x": b"x", **{f"gone/{n}": b"g" for n in range(5)}}
    for key, body in objects.items():
        bucket.put(key, body)

    moment = kill_at(cli, api, rng, "initial-sync", len(objects), 0)
    first = cli.run("initial-sync")
    where = f"seed {seed}, killed in {moment}"
    assert first.returncode == 0, (where, first.stderr[-3000:])
    assert_mirrors_at(api, bucket, where)
    assert extra_uploads(saves(api)) <= WORKERS, (where, Counter(saves(api)))

    mark = len(api.operations())
    rename_in_bucket(bucket, "a", "tmp")
    rename_in_bucket(bucket, "b", "a")
    rename_in_bucket(bucket, "tmp", "b")
    rename_in_bucket(bucket, "old/x", "new/x")
    bucket.put("new/y", b"y")
    events: list[dict[str, str]] = [
        {"type": "rename", "path": "a", "new_path": "tmp"}, {"type": "rename", "path": "b", "new_path": "a"},
        {"type": "rename", "path": "tmp", "new_path": "b"}, {"type": "move", "path": "old/x", "new_path": "new/x"},
        {"type": "create", "path": "new/y"}]
    for n in range(5):
        bucket.client.delete_object(Bucket=bucket.name, Key=f"gone/{n}")
        events.append({"type": "delete", "path": f"gone/{n}"})
    spool(cli, "001", *events)

    moment = kill_at(cli, api, rng, "incremental-sync", 10, mark)
    second = cli.run("incremental-sync")
    where = f"seed {seed}, killed in {moment}"
    assert second.returncode == 0, (where, second.stderr[-3000:])
    assert_mirrors_at(api, bucket, where)
    uploads = saves(api, mark)
    assert extra_uploads(uploads) <= WORKERS, (where, Counter(uploads))
    assert not set(uploads) & {f"f/{n:02}.bin" for n in range(30)}, (where, uploads)  # untouched files stay
