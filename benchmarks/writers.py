"""Several writer processes appending to one log at once.

The parent (`WriterPool`) starts one ``python -m benchmarks.writers`` process per writer, once
for the case (so the imports are not paid at every run). For each run it sends each, on
standard input, the contender, the location and key of a log it has already created (so no
two writers race to create tables), and that writer's `Layout`: its own streams, in appends
of `BATCH` events. Each child opens its own session (its own connections) on that log (one
child after the other), prepares all its appends and reports ``ready``. When every child is
ready the parent notes the time and sends each ``go``; each child then appends, and reports
how many appends it made, its CPU time, and how often it retried, then closes its session.
The figure's wall time runs from the ``go`` to the last child's report.

An append that fails because the database is busy (SQLite's "database is locked": another
process holds the write lock longer than the contender's busy timeout) is made again, as an
application would; the retries are counted and shown. No other error is retried.
"""

from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .peers import CONTENDERS
from .workload import Layout, Location

__all__ = ["BATCH", "WriterPool", "WritersRun", "code_changed", "verify_log", "writer_layouts"]

BATCH = 50
"""Events per append of each writer."""
RETRIES = 1000
"""Busy retries a child makes in all before it gives up (and the case fails)."""
_ROOT = Path(__file__).resolve().parents[1]


def _code_stamp() -> float:
    return max((path.stat().st_mtime for folder in ("shredstore", "keyvault")
                for path in (_ROOT / folder).rglob("*.py")), default=0.0)


_LOADED = _code_stamp()


def code_changed() -> bool:
    """Whether the libraries' sources changed since this process imported them: then the
    writer processes (which import the code of their moment) may not run the code this
    process runs, and a log one wrote may not read back in the other."""
    return _code_stamp() != _LOADED


def writer_layouts(writers: int, events: int, streams: int) -> list[Layout]:
    """Each writer's appends: `events` events in appends of `BATCH`, round-robin over its own
    `streams` streams (writer ``w`` has customers ``w * streams`` up to ``(w + 1) * streams``)."""
    return [Layout(events, per_append=BATCH, customers=streams, first_customer=w * streams)
            for w in range(writers)]


@dataclass(frozen=True, slots=True)
class WritersRun:
    wall: float
    """Seconds from the start signal to the last writer's report."""
    cpu: float
    """CPU seconds of all writers in their timed appends, summed."""
    retries: int
    """Appends made again because the database was busy, all writers together."""


def _busy(error: BaseException) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database is busy" in text


class WriterPool:
    """`size` writer processes, started once (each imports everything once) and given one
    run after another: each run, each writer opens its own session on the run's log."""

    def __init__(self, size: int) -> None:
        self._stack = contextlib.ExitStack()
        self.logs = [self._stack.enter_context(  # each child's stderr; closed by the stack
            tempfile.TemporaryFile("w+", encoding="utf-8"))  # noqa: SIM115
            for _ in range(size)]
        self.children = [subprocess.Popen(
            [sys.executable, "-m", "benchmarks.writers"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=_ROOT) for log in self.logs]

    def __enter__(self) -> WriterPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(OSError):
                    assert child.stdin is not None
                    child.stdin.close()
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._stack.close()

    def _fail(self, what: str) -> RuntimeError:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        messages = []
        for number, log in enumerate(self.logs):
            log.seek(0)
            text = log.read().strip()
            if text:
                messages.append(f"writer {number}:\n{text[-3000:]}")
        return RuntimeError(f"the writers failed ({what}):\n" + "\n".join(messages))

    def _send(self, child: subprocess.Popen[str], line: str) -> None:
        assert child.stdin is not None
        try:
            child.stdin.write(line + "\n")
            child.stdin.flush()
        except OSError:
            raise self._fail("a writer is gone") from None

    def run(self, contender: str, location: Location, secret: str,
            layouts: list[Layout]) -> WritersRun:
        """One writer per layout on the log at `location`, all started together."""
        if len(layouts) != len(self.children):
            raise ValueError(f"{len(layouts)} layouts for {len(self.children)} writers")
        for child, layout in zip(self.children, layouts, strict=True):
            # One at a time: opening creates the contender's tables "if not exists", which
            # eventsourcing on PostgreSQL cannot do from several connections at once ("tuple
            # concurrently updated"); an application's processes would start one by one.
            self._send(child, json.dumps({"contender": contender,
                                          "location": location.to_json(), "secret": secret,
                                          "layout": layout.to_json()}))
            assert child.stdout is not None
            if child.stdout.readline().strip() != "opened":
                raise self._fail("while opening")
        for child in self.children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise self._fail("before the start")
        start = time.perf_counter()
        for child in self.children:
            self._send(child, "go")
        answers = []
        for child in self.children:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line:
                raise self._fail("while appending")
            answers.append(json.loads(line))
        wall = time.perf_counter() - start
        for child in self.children:  # each closed its session
            assert child.stdout is not None
            if child.stdout.readline().strip() != "closed":
                raise self._fail("while closing")
        for answer, layout in zip(answers, layouts, strict=True):
            if answer["appends"] != layout.appends:
                raise RuntimeError(f"a writer made {answer['appends']} appends of "
                                   f"{layout.appends}")
        return WritersRun(wall, sum(a["cpu"] for a in answers),
                          sum(a["retries"] for a in answers))


def verify_log(session: Any, layouts: list[Layout], *, positions: bool) -> None:
    """The log holds exactly the writers' events, each read back right (decrypted), each
    stream's in order; with `positions`, the items' global positions are 1..N, no gap."""
    expected = {}
    for layout in layouts:
        for k in range(layout.events):
            spec = layout.event_at(k)
            expected[spec.customer, spec.version] = spec
    total = len(expected)
    last_version: dict[int, int] = {}
    for index, item in enumerate(session.read_all()):
        customer, version = session.locate(item)
        spec = expected.pop((customer, version), None)
        if spec is None:
            raise RuntimeError(f"{session.label}: event {index} ({customer}, v{version}) is "
                               "a duplicate or not a writer's")
        if not session.matches(item, spec):
            raise RuntimeError(f"{session.label}: event {index} read back wrong: {item!r}")
        if last_version.get(customer, 0) != version - 1:
            raise RuntimeError(f"{session.label}: stream {customer} out of order at v{version}")
        last_version[customer] = version
        if positions and item.position != index + 1:
            raise RuntimeError(f"{session.label}: the {index + 1}th event read has position "
                               f"{item.position}: the positions have a gap")
    if expected:
        raise RuntimeError(f"{session.label}: {len(expected)} events of the writers are missing")
    if session.count() != total:
        raise RuntimeError(f"{session.label} counts {session.count()} events, expected {total}")


def _write(request: dict[str, Any]) -> bool:
    """One run of a writer: False if the parent did not say go."""
    session = CONTENDERS[request["contender"]].open(
        Location.from_json(request["location"]), request["secret"])
    print("opened", flush=True)
    try:
        prepared = session.prepare(Layout(**request["layout"]).batches())
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return False
        gc.collect()
        gc.freeze()
        retries = appends = 0
        cpu = time.process_time()
        for batch in prepared:
            while True:
                try:
                    session.append(batch)
                except Exception as error:
                    if not _busy(error) or retries >= RETRIES:
                        raise
                    retries += 1
                    continue
                appends += 1
                break
        cpu = time.process_time() - cpu
        gc.unfreeze()
        print(json.dumps({"appends": appends, "cpu": cpu, "retries": retries}), flush=True)
    finally:
        session.close()
    print("closed", flush=True)
    return True


def child_main() -> int:
    for line in sys.stdin:
        if not _write(json.loads(line)):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
