"""Limits toward the file manager (SPEC §4): the schedule of ``ApiLimits`` as pure arithmetic on
a fake clock, the settings, and a real initial sync against the mock API counting what arrives
when: ``API_MAX_RPS``, a 429 with ``Retry-After`` pausing the whole client, and ``BWLIMIT``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from sync_service.clients.api_limits import MIN_RATE, RECOVERY_STEPS, ApiLimits
from sync_service.models.config import SyncConfig
from sync_service.utils.sizes import parse_size
from tests.helpers.harness import Api, Bucket, Cli


class FakeTime:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def calls(api: Api) -> list[dict[str, Any]]:
    return list(requests.get(f"{api.url}/calls", timeout=10).json())


def report_of(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout))


def most_in_one_second(times: list[float]) -> int:
    """The most calls any one-second window [t, t + 1) holds."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times)), default=0)


# -- the schedule, on a fake clock ------------------------------------------------------------

def test_requests_are_spaced_at_the_rate_and_unlimited_ones_wait_for_nothing() -> None:
    clock = FakeTime()
    limited, free = ApiLimits(max_rps=20, monotonic=clock), ApiLimits(monotonic=clock)
    waits = [limited.reserve_request() for _ in range(41)]
    assert waits[0] == 0 and waits[-1] == pytest.approx(2.0) and waits[20] == pytest.approx(1.0)
    assert [free.reserve_request() for _ in range(100)] == [0.0] * 100


def test_a_pause_holds_every_request_then_the_rate_comes_back_step_by_step() -> None:
    # given a client at its limit of 20 requests a second
    clock = FakeTime()
    limits = ApiLimits(max_rps=20, monotonic=clock)
    limits.reserve_request()

    # when the file manager answers 429 with Retry-After: 1
    limits.pause(1.0)

    # then nothing starts for a second, and the rate starts again at half the limit
    assert limits.paused_for() == 1.0
    assert limits.reserve_request() >= 1.0
    assert limits.rate == 10.0
    clock.now += 1.0  # the pause is over: then one step a second, a tenth of the limit each
    seen = []
    for _ in range(RECOVERY_STEPS):
        clock.now += 1.0
        seen.append(limits.rate)
    assert seen[:3] == [12.0, 14.0, 16.0] and seen[-1] == 20.0
    assert seen == sorted(seen)  # type: ignore[type-var]


def test_without_a_limit_a_pause_halves_the_rate_it_ran_at_then_lifts_it() -> None:
    clock = FakeTime()
    limits = ApiLimits(monotonic=clock)
    for _ in range(40):  # 40 requests in the last second
        limits.reserve_request()
        clock.now += 0.02
    limits.pause(2.0)
    assert limits.rate == 20.0
    clock.now += 2.0 + 2.0  # two steps of a tenth of 40 a second
    assert limits.rate == 28.0
    clock.now += RECOVERY_STEPS
    assert limits.rate is None
    limits.pause(0.5)  # a second pause right after: never below the floor
    assert (limits.rate or 0) >= MIN_RATE


def test_upload_bytes_are_paid_before_they_go() -> None:
    clock = FakeTime()
    limits = ApiLimits(bwlimit=1024 * 1024, monotonic=clock)
    waits = [limits.reserve_bytes(1024 * 1024) for _ in range(5)]
    assert waits == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ApiLimits(monotonic=clock).reserve_bytes(10**9) == 0.0


def test_the_settings_read_rates_and_sizes() -> None:
    config = SyncConfig.from_env({"API_MAX_RPS": "20", "BWLIMIT": "10M"}, env_file=None)
    assert (config.api_max_rps, config.bwlimit) == (20.0, 10 * 1024 * 1024)
    default = SyncConfig.from_env({"API_MAX_RPS": "0", "BWLIMIT": "off"}, env_file=None)
    assert (default.api_max_rps, default.bwlimit) == (None, None)
    assert [parse_size(s) for s in ("512", "64K", "1.5M", "10MiB", "1gb")] == [
        512, 65536, 1572864, 10485760, 1 << 30]


def test_a_bad_limit_exits_2_with_one_line_naming_it(cli: Cli) -> None:
    result = cli.run("status", BWLIMIT="fast")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "BWLIMIT" in result.stderr, result.stderr


# -- against the mock API ---------------------------------------------------------------------

def test_api_max_rps_holds_every_second_and_everything_arrives(cli: Cli, bucket: Bucket, api: Api) -> None:
    # given 30 objects and a limit of 20 requests a second
    for n in range(30):
        bucket.put(f"rps/{n:02d}.txt", f"object {n}".encode())

    # when an initial sync delivers them
    report = report_of(cli.run("initial-sync", API_MAX_RPS="20"))

    # then no one-second window at the file manager holds more than 22 calls, and all arrived
    arrivals = [call["arrived_at"] for call in calls(api)]
    assert len(arrivals) >= 31
    assert most_in_one_second(arrivals) <= 22, most_in_one_second(arrivals)
    assert report["succeeded"] == 30 and len(api.files()) == 30


def test_a_429_with_retry_after_pauses_the_whole_client(cli: Cli, bucket: Bucket, api: Api) -> None:
    # given 25 objects, and a file manager answering a tenth of the calls 429 Retry-After: 1
    for n in range(25):
        bucket.put(f"busy/{n:02d}.txt", f"object {n}".encode())
    api.faults(fail_rate=0.1, status=429, retry_after=1, seed=7)

    # when an initial sync delivers them (8 workers)
    report = report_of(cli.run("initial-sync"))

    # then in the second after each 429 no new call arrives (calls in flight may finish: the
    # first 0.15 s), and everything arrives
    seen = calls(api)
    refused = [call["answered_at"] for call in seen if call["status"] == 429]
    assert refused, "the seed faults no call"
    for at in refused:
        started = [round(call["arrived_at"] - at, 3) for call in seen if at + 0.15 < call["arrived_at"] < at + 0.95]
        assert started == [], (at, started)
    api.faults()
    assert report["succeeded"] == 25 and len(api.files()) == 25


def test_bwlimit_1m_takes_five_seconds_for_a_5_mib_object(cli: Cli, bucket: Bucket, api: Api) -> None:
    bucket.put("big.bin", bytes(range(256)) * (5 * 1024 * 4))  # 5 MiB

    report = report_of(cli.run("initial-sync", BWLIMIT="1M"))

    assert 4.5 <= report["duration_s"] <= 6.0, report["duration_s"]
    assert api.files()["big.bin"]["size"] == 5 * 1024 * 1024
