"""Sum up py-spy's collapsed stacks (``--format raw``, as ``BENCH_PROFILE`` writes them): the
share of samples in which each function is on the stack (inclusive) and at its top (self).

    .venv/bin/python scripts/stacks.py /tmp/profile/initial-sync-0.txt [--top 30] [--busy]

``--busy`` leaves out samples that wait (``epoll_wait``, ``select``, a lock's acquire, a
thread's ``wait`` among the top frames): what the CPU did, not where threads sat.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

#: Frames at the top of a stack that mean waiting, not working.
IDLE = re.compile(r"epoll_wait|uv__io_poll|select|poll\b|_wait_for_tstate_lock|acquire_lock|\bwait\b|"
                  r"sem_timedwait|sem_clockwait|futex|nanosleep|pthread_cond")


def function(frame: str) -> str:
    """``name (file:line)`` without the line, so one function's samples add up."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--busy", action="store_true", help="leave out samples that wait")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in args.files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = [function(f) for f in stack.split(";") if f]
            if args.busy and any(IDLE.search(f) for f in frames[-6:]):  # native frames below the wait
                continue
            n = int(count)
            total += n
            own[frames[-1]] += n
            for name in set(frames):
                inclusive[name] += n
    print(f"{total} samples{' (busy)' if args.busy else ''}")
    print("inclusive  self  function")
    for name, n in inclusive.most_common(args.top):
        print(f"{100 * n / total:8.1f}% {100 * own[name] / total:5.1f}%  {name[:150]}")


if __name__ == "__main__":
    main()
