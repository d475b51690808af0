"""What an append of 100 events writes to SQLite's write-ahead log, on a small and a large log.

The bytes a commit writes (and syncs) grow with the number of distinct pages it changes; the
`flat` case of ``python -m benchmarks`` times the result, on a shared machine's noisy clock.
This counts it: the log is filled to each size (untimed), the WAL's automatic checkpoints are
switched off, and the WAL file's growth over ``--appends`` appends of 100 is divided by their
number. Ids of events: the library's default (time-ordered, version 7), or ``--random-ids``
(version 4, as before issue 17's third session) to see what the order of ids costs.

Run from the repository root::

    python -m benchmarks.wal_growth                       # logs of 5,000 and 50,000 events
    python -m benchmarks.wal_growth --sizes 10000,200000 --random-ids
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path
from typing import Any

import keyvault.engine
import shredstore.events

from .contenders import ShredstoreSession
from .workload import Layout, Location

BATCH = 100

_connect = keyvault.engine._sqlite_connect  # wrapped below: the measurement adds a pragma


def _no_checkpoints(dbapi_connection: Any, record: Any) -> None:
    _connect(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def wal_per_append(size: int, appends: int) -> float:
    """KiB written to the WAL per append of 100 events, on a log of `size` events."""
    layout = Layout(size + (appends + 1) * BATCH, BATCH)
    with tempfile.TemporaryDirectory(prefix="shredstore-wal-") as folder:
        location = Location("sqlite", folder=folder)
        session = ShredstoreSession.open(location, ShredstoreSession.new_secret())
        try:
            session.fill(layout, stop=size // BATCH)
            prepared = session.prepare(layout.batches(size // BATCH,
                                                      size // BATCH + appends + 1))
            wal = Path(location.sqlite_file("shredstore") + "-wal")
            session.append(prepared[0])  # the first, to settle the connection
            before = wal.stat().st_size
            for batch in prepared[1:]:
                session.append(batch)
            return (wal.stat().st_size - before) / appends / 1024
        finally:
            session.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000",
                        help="log sizes in events, comma-separated (multiples of 100)")
    parser.add_argument("--appends", type=int, default=30)
    parser.add_argument("--random-ids", action="store_true",
                        help="version 4 (random) event ids instead of the default")
    options = parser.parse_args(argv)
    keyvault.engine._sqlite_connect = _no_checkpoints  # before any engine is made
    if options.random_ids:  # every id made from here on, the fill's too
        shredstore.events._STDLIB_UUID7 = uuid.uuid4
    ids = "random (v4)" if options.random_ids else "time-ordered (v7)"
    for size in (int(text) for text in options.sizes.split(",")):
        kib = wal_per_append(size, options.appends)
        print(f"log of {size:>9,} events, {ids} ids: {kib:7.1f} KiB of WAL per append of 100")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
