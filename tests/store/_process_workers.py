"""Child processes for tests/store/test_processes.py: writers, a tailing reader, a batch writer.

Run from the repository root as ``python -m tests.store._process_workers ROLE URL [options]``.
Every role reports on stdout, one JSON object per line, flushed as soon as it is written, so
the parent knows exactly what a child had done when it died. The parent imports `Tick` from
here too, so parent and children share one definition of the event.

Roles:

``writer``  prints ``{"ready": true}`` once its store is open, waits for ``go`` on stdin, then
    makes `--appends` appends, alternating between the shared stream (with the exact version
    read just before, retried on WrongExpectedVersion) and a private stream of its own. After
    each append returns it prints the append: stream, version, positions and event ids.
``reader``  prints ``{"ready": true}``, then tails ``read_all(after=last_seen)`` and prints
    each non-empty read as ``{"poll": [[position, event_id], ...]}``. A line on stdin tells it
    the writers are done: it reads until a read after that line brings nothing new, then exits.
``batches`` appends batches of `--batch-size` events, each batch one append, and prints each
    batch once its append has returned, until it is killed (or `--max-batches` is reached).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from shredstore import AppendResult, EventStore, WrongExpectedVersion
from shredstore.events import Event

TICK_TYPE = "test.processes.Tick"
SHARED_STREAM = "shared"
BATCH_STREAMS = 3
"""The batch writer spreads its batches over this many streams, batch n to ``batches-{n % 3}``."""


class Tick(Event, type_name=TICK_TYPE):
    """An event written by a child: who wrote it, in which of its appends, where in the batch."""

    writer: str
    seq: int
    index: int


def private_stream(writer: str) -> str:
    """The stream only `writer` appends to."""
    return f"private-{writer}"


def batch_stream(batch: int) -> str:
    """The stream the batch writer appends batch number `batch` to."""
    return f"batches-{batch % BATCH_STREAMS}"


def writer_batch_size(seq: int) -> int:
    """How many events a writer puts in its append number `seq` (1, 2 or 3)."""
    return 1 + seq % 3


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _report(result: AppendResult, events: Sequence[Tick], **extra: Any) -> None:
    _emit({
        "stream": result.stream_id,
        "version": result.version,
        "positions": list(result.positions),
        "event_ids": [str(event.event_id) for event in events],
        **extra,
    })


def _writer(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    with EventStore(args.url) as store:
        _emit({"ready": True})
        if sys.stdin.readline().strip() != "go":
            return 3
        private = private_stream(args.name)
        private_version = 0
        for seq in range(args.appends):
            events = [
                Tick(writer=args.name, seq=seq, index=index)
                for index in range(writer_batch_size(seq))
            ]
            if seq % 2 == 1:
                result = store.append(private, events, expected_version=private_version)
                private_version = result.version
                _report(result, events, seq=seq, attempts=1)
                continue
            attempts = 0
            while True:
                attempts += 1
                if time.monotonic() > deadline:
                    print(f"writer {args.name}: append {seq} still conflicting after "
                          f"{attempts} attempts", file=sys.stderr)
                    return 4
                current = store.stream_version(SHARED_STREAM)
                try:
                    result = store.append(SHARED_STREAM, events, expected_version=current)
                except WrongExpectedVersion:
                    continue
                break
            _report(result, events, seq=seq, attempts=attempts)
    return 0


def _reader(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    writers_done = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        writers_done.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    last_seen = 0
    with EventStore(args.url) as store:
        _emit({"ready": True})
        while time.monotonic() < deadline:
            # Taken before the read: a read begun after the writers finished sees all they wrote.
            final = writers_done.is_set()
            seen = [(event.position, str(event.event_id))
                    for event in store.read_all(after=last_seen)]
            if seen:
                _emit({"poll": seen})
            if not any(position > last_seen for position, _ in seen):
                if final:
                    return 0
                time.sleep(0.002)
            last_seen = max([last_seen, *(position for position, _ in seen)])
    print("reader: timed out", file=sys.stderr)
    return 4


def _batches(args: argparse.Namespace) -> int:
    with EventStore(args.url) as store:
        for batch in range(args.max_batches):
            events = [
                Tick(writer=args.name, seq=batch, index=index)
                for index in range(args.batch_size)
            ]
            result = store.append(batch_stream(batch), events)
            _report(result, events, batch=batch)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.store._process_workers")
    parser.add_argument("role", choices=["writer", "reader", "batches"])
    parser.add_argument("url")
    parser.add_argument("--name", default="w")
    parser.add_argument("--appends", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--max-batches", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    role = {"writer": _writer, "reader": _reader, "batches": _batches}[args.role]
    return role(args)


if __name__ == "__main__":
    # Run as __main__, this module is the only definition of Tick in the child: importing it
    # again as tests.store._process_workers would register the type name a second time.
    sys.exit(main())
