"""Client instructions per aggregate load, counted by valgrind: a figure that a shared
machine's noise does not move (wall time on this VM moves by a third between runs).

For each contender (shredstore, eventsourcing) and backend, a fresh location is filled with
200 aggregates of 10 events (untimed; with ``--snapshots`` each gets a snapshot after its 10th
event). Then a child process opens it, loads every aggregate once to warm up, and loads them
all `passes` more times, under ``valgrind --tool=callgrind``: once with 1 pass and once with 3.
The difference of the two totals, divided by 400 loads, is what a warm load costs the client
(start-up, imports and filling cancel out). The server's work on PostgreSQL is not counted.

Run from the repository root (needs valgrind; a run takes a few minutes)::

    python -m benchmarks.load_instructions                      # SQLite and PostgreSQL
    python -m benchmarks.load_instructions --backend sqlite --snapshots
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from .common import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV, progress, render_table
from .peers import CONTENDERS
from .workload import Backend, Layout, Location, postgres_backend, sqlite_backend

AGGREGATES = 200
EVENTS = 10
_COLLECTED = re.compile(rb"Collected : (\d+)")


def _fill(location: Location, contender: str, *, snapshots: bool) -> str:
    """The contender's aggregates written to `location`; the secret to open it with."""
    session_class = CONTENDERS[contender]
    secret = session_class.new_secret()
    session = session_class.open(location, secret, snapshots=snapshots)
    try:
        session.fill(Layout(AGGREGATES * EVENTS, per_append=EVENTS, customers=AGGREGATES))
        if snapshots:
            for customer in range(AGGREGATES):
                session.snapshot(customer)
    finally:
        session.close()
    return secret


def _load(spec: str, passes: int) -> None:
    """The child's part: open the location described by `spec` (JSON), warm up, then load
    every aggregate `passes` times."""
    given = json.loads(spec)
    session = CONTENDERS[given["contender"]].open(
        Location.from_json(given["location"]), given["secret"], snapshots=given["snapshots"])
    try:
        for _ in range(1 + passes):
            for customer in range(AGGREGATES):
                session.load(customer)
    finally:
        session.close()


def _valgrind() -> str:
    found = shutil.which("valgrind")
    if found is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    return found


def _instructions(spec: str, passes: int) -> int:
    """Instructions a child that loads `passes` times runs, all told."""
    with tempfile.TemporaryDirectory(prefix="shredstore-callgrind-") as folder:
        done = subprocess.run(
            [_valgrind(), "--tool=callgrind", f"--callgrind-out-file={folder}/out",
             sys.executable, "-m", "benchmarks.load_instructions", "--child", spec,
             "--passes", str(passes)],
            capture_output=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"the load under valgrind failed:\n{done.stderr.decode()[-2000:]}")
    return int(found.group(1))


def per_load(backend: Backend, contender: str, *, snapshots: bool) -> int:
    """A warm load's client instructions for `contender` on a fresh location of `backend`."""
    with backend.fresh() as location:
        progress(f"  {backend.name} {contender}: filling {AGGREGATES} aggregates (untimed)")
        secret = _fill(location, contender, snapshots=snapshots)
        spec = json.dumps({"contender": contender, "location": location.to_json(),
                           "secret": secret, "snapshots": snapshots})
        progress(f"  {backend.name} {contender}: loads under valgrind")
        return (_instructions(spec, 3) - _instructions(spec, 1)) // (2 * AGGREGATES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_instructions",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--snapshots", action="store_true",
                        help="loads that start from a snapshot taken after the 10th event")
    parser.add_argument("--postgres-url", default=None,
                        help=f"PostgreSQL URL (default: ${POSTGRES_URL_ENV} or "
                             f"{DEFAULT_POSTGRES_URL})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _load(args.child, args.passes)
        return
    _valgrind()
    url = args.postgres_url or os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    backends = ([sqlite_backend()] if args.backend in ("sqlite", "all") else []) + (
        [postgres_backend(url)] if args.backend in ("postgres", "all") else [])
    rows = []
    for backend in backends:
        try:
            counts = {contender: per_load(backend, contender, snapshots=args.snapshots)
                      for contender in ("shredstore", "eventsourcing")}
        finally:
            backend.dispose()
        rows.append((backend.name, "from a snapshot" if args.snapshots else "without",
                     f"{counts['shredstore']:,}", f"{counts['eventsourcing']:,}",
                     f"{counts['eventsourcing'] / counts['shredstore']:.2f}x"))
    print(render_table(("backend", "load", "shredstore", "eventsourcing",
                        "eventsourcing / shredstore"), rows))


if __name__ == "__main__":
    main()
