"""Peak memory of a read, measured in a fresh interpreter.

The parent (`peak_rss`) starts ``python -m benchmarks.memory`` and sends it, on standard input,
the contender, the location and key of a filled log, and how many events to read. The child
imports every contender (so the baseline is the same for all), opens the log, reads that many
events the way `read_all` does, checks the count and every 997th event, and at its end prints
its peak resident set size.

The peak is ``VmHWM`` from ``/proc/self/status``: the high-water mark of the child's own address
space. ``getrusage(RUSAGE_SELF).ru_maxrss`` cannot be used on Linux: across ``fork`` + ``exec``
the kernel keeps the old address space's high-water mark, so a child's ``ru_maxrss`` starts at
its parent's RSS at the time of the fork. Here that parent is the harness, which holds prebuilt
events, and every read came out at the harness's 142 MiB. ``ru_maxrss`` is still reported
(``ru_maxrss_kib``) and is used where ``/proc`` is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import peak_kib
from .peers import CONTENDERS
from .workload import Layout, Location

__all__ = ["SAMPLE_EVERY", "peak_rss", "verify_read"]

SAMPLE_EVERY = 997
"""Every this many events of a timed read is checked (decrypted values) after the clock stops."""
_ROOT = Path(__file__).resolve().parents[1]


def verify_read(session: Any, items: list[tuple[int, Any]], count: int, layout: Layout, *,
                expected: int | None = None, erased: bool = False) -> None:
    """Check a read: it met `expected` events (default: all), each sampled one is right."""
    expected = layout.events if expected is None else expected
    if count != expected:
        raise RuntimeError(f"{session.label} read {count} events, expected {expected}")
    for index, item in items:
        if not session.matches(item, layout.event_at(index), erased=erased):
            raise RuntimeError(f"{session.label}: event {index} read back wrong: {item!r}")


def sampled_read(session: Any, limit: int | None) -> tuple[int, list[tuple[int, Any]]]:
    """Read (at most `limit` events); return the count and every SAMPLE_EVERY-th event."""
    count, sample = 0, []
    for item in session.read_all(limit):
        if not count % SAMPLE_EVERY:
            sample.append((count, item))
        count += 1
    return count, sample


def peak_rss(contender: str, location: Location, secret: str, layout: Layout,
             limit: int | None) -> tuple[int, float]:
    """(events read, peak RSS in MiB) of a child process reading `limit` events (None: all)."""
    request = {"contender": contender, "location": location.to_json(), "secret": secret,
               "layout": layout.to_json(), "limit": limit}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory"], input=json.dumps(request), text=True,
        capture_output=True, cwd=_ROOT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the memory child failed ({done.returncode}):\n{done.stderr}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return int(answer["events"]), answer["peak_rss_kib"] / 1024


def child_main() -> int:
    request = json.loads(sys.stdin.read())
    session = CONTENDERS[request["contender"]].open(
        Location.from_json(request["location"]), request["secret"])
    layout = Layout(**request["layout"])
    limit = request["limit"]
    try:
        count, sample = sampled_read(session, limit)
        verify_read(session, sample, count, layout, expected=limit)
    finally:
        session.close()
    peak, maxrss = peak_kib()
    print(json.dumps({"events": count, "peak_rss_kib": peak, "ru_maxrss_kib": maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
