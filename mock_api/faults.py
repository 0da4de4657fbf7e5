"""Fault injection for the mock file manager: which calls fail, how, and how slowly."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

#: Keys accepted by ``POST /admin/faults``.
FAULT_KEYS = frozenset({"fail_rate", "status", "latency_ms", "seed", "match", "corrupt", "after_apply",
                        "retry_after"})


@dataclass(frozen=True)
class FaultConfig:
    """One fault-injection setting as posted to ``/admin/faults``."""

    fail_rate: float = 0.0
    status: int | None = None
    latency_ms: int = 0
    seed: int | None = None
    match: str | None = None
    corrupt: bool = False
    # Extension: process the call (and cache it for idempotency) but still answer ``status``,
    # i.e. simulate a reply lost after the server applied the change.
    after_apply: bool = False
    # Seconds in the ``Retry-After`` of a faulted 429 or 503 (None: 0, retry at once).
    retry_after: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the setting as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one selected call."""

    latency_s: float
    status: int | None
    corrupt: bool
    after_apply: bool
    retry_after: int | None = None


def parse_fault_config(body: Any) -> FaultConfig:
    """Validate a ``/admin/faults`` body; raise ValueError/TypeError naming the first bad field."""
    if not isinstance(body, dict):
        raise TypeError("body must be a JSON object")
    unknown = sorted(set(body) - FAULT_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    fail_rate = body.get("fail_rate", 0.0)
    if isinstance(fail_rate, bool) or not isinstance(fail_rate, (int, float)) or not 0.0 <= fail_rate <= 1.0:
        raise ValueError("fail_rate must be a number between 0 and 1")
    status = body.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599):
        raise ValueError("status must be an HTTP error status (400-599) or null")
    latency_ms = body.get("latency_ms", 0)
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, int) or latency_ms < 0:
        raise ValueError("latency_ms must be a non-negative integer")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be an integer or null")
    match = body.get("match")
    if match is not None and not isinstance(match, str):
        raise ValueError("match must be a string or null")
    corrupt = body.get("corrupt", False)
    after_apply = body.get("after_apply", False)
    if not isinstance(corrupt, bool) or not isinstance(after_apply, bool):
        raise TypeError("corrupt and after_apply must be booleans")
    retry_after = body.get("retry_after")
    if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int)
                                    or not 0 <= retry_after <= 3600):
        raise ValueError("retry_after must be whole seconds (0-3600) or null")
    return FaultConfig(float(fail_rate), status, latency_ms, seed, match, corrupt, after_apply, retry_after)


class FaultInjector:
    """Holds the current fault setting and the RNG that selects calls, shared by all requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._rng = random.Random()

    @property
    def config(self) -> FaultConfig:
        """The setting in force."""
        return self._config

    def configure(self, config: FaultConfig) -> None:
        """Install ``config`` with a fresh RNG (a zero fail_rate clears faults)."""
        with self._lock:
            self._config = config if config.fail_rate > 0 else FaultConfig()
            # One RNG per setting so a seed gives the same selection sequence every time.
            self._rng = random.Random(config.seed)

    def clear(self) -> None:
        """Turn fault injection off."""
        self.configure(FaultConfig())

    def select(self, path: str | None) -> FaultDecision | None:
        """Decide whether the call on ``path`` is faulted; None means process it normally."""
        with self._lock:
            config = self._config
            if config.fail_rate <= 0:
                return None
            # With a match set, only calls on matching paths draw from the RNG, keeping seeded runs stable.
            if config.match is not None and (path is None or config.match not in path):
                return None
            if self._rng.random() >= config.fail_rate:
                return None
        return FaultDecision(config.latency_ms / 1000.0, config.status, config.corrupt, config.after_apply,
                             config.retry_after)
