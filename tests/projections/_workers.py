"""Child processes for tests/projections/test_processes.py.

``python -m tests.projections._workers ROLE URL [options]``; each prints JSON lines, flushed.

``project``  runs a `ProjectionRunner` over `Ledger`, a projection that records every event it
    applies (its position) in a table without a key, so a double application shows as a
    duplicate row. It prints ``{"ready": true}``, then ``{"applying": position}`` before each
    event; each event takes `--slow` seconds. Live until SIGTERM/SIGINT, or with
    ``--catch-up`` until caught up.
``tail``  prints ``{"ready": true}``, then follows a live `Subscription` from the start and
    prints each batch as ``{"got": [[position, stream, version], ...]}`` until it has seen
    position `--until`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shredstore import EventStore, RecordedEvent
from shredstore.projections import Projection, ProjectionRunner, Subscription, handles
from tests.shredding.events import Noted
from tests.store._process_workers import TICK_TYPE

metadata = sa.MetaData()
applied = sa.Table(
    "test_applied", metadata,
    sa.Column("position", sa.BigInteger, nullable=False),  # no key: duplicates must show
)


def say(**message: Any) -> None:
    print(json.dumps(message), flush=True)


class Ledger(Projection):
    name = "test-ledger"
    tables = (applied,)
    slow = 0.0

    @handles(Noted, TICK_TYPE)
    def record(self, conn: Connection, record: RecordedEvent) -> None:
        say(applying=record.position)
        time.sleep(self.slow)
        conn.execute(applied.insert().values(position=record.position))


def _project(args: argparse.Namespace) -> None:
    Ledger.slow = args.slow
    with EventStore(args.url) as store, \
            ProjectionRunner(store, [Ledger()], batch_size=args.batch_size,
                             poll_interval=0.1) as runner:
        say(ready=True)
        if args.catch_up:
            runner.catch_up()
        else:
            runner.run(handle_signals=True)
        say(stopped=runner.positions()[Ledger.name])


def _tail(args: argparse.Namespace) -> None:
    with EventStore(args.url) as store:
        subscription = Subscription(store, batch_size=args.batch_size, poll_interval=0.05)
        say(ready=True)
        for batch in subscription.batches():
            if batch.events:
                say(got=[[r.position, r.stream_id, r.version] for r in batch.events])
            if batch.position >= args.until:
                subscription.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.projections._workers")
    parser.add_argument("role", choices=["project", "tail"])
    parser.add_argument("url")
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--catch-up", action="store_true")
    parser.add_argument("--until", type=int, default=0)
    args = parser.parse_args(argv)
    {"project": _project, "tail": _tail}[args.role](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
