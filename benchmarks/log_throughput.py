"""Event-log throughput, in events per second, on SQLite and PostgreSQL.

What is measured (each case repeated, reported as median, min and max events/s):

``append x1``
    Single-event appends: one event per `EventStore.append` call, so each append is its own
    transaction and its own durable commit (2,000 appends).
``append x100``
    Batched appends: 100 events per call (1,000 appends, 100,000 events).
``read_all``
    `EventStore.read_all()` over a log of 100,000 events, consuming the iterator fully, so every
    event is fetched and decoded to its pydantic model.

The event is a realistic six-field ``CustomerRegistered``; appends go round-robin to 1,000
streams ``customer-<n>``. Events are built before the clock starts, so only the store's work is
timed. Every append run starts from an empty log: a new SQLite file (WAL, ``synchronous=FULL``,
as the store configures it) in a temporary directory, or a new PostgreSQL schema, dropped
afterwards. The read case fills one empty log, untimed, and reads it on every repetition.

Run from the repository root::

    python -m benchmarks.log_throughput                      # both backends, full sizes
    python -m benchmarks.log_throughput --quick              # 10x smaller: a smoke run
    python -m benchmarks.log_throughput --backend sqlite --json results.json

PostgreSQL is reached at ``--postgres-url``, else ``$SHREDSTORE_BENCH_POSTGRES_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the role must be allowed to create
schemas. With ``--backend all`` an unreachable server is reported and skipped. ``--repeat N``
changes the number of repetitions (default 3). Commits are durable (fsync) on both backends, so
the append figures depend on the disk; run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

import shredstore
from benchmarks import common
from benchmarks.common import add_common_arguments, check_repeat, progress, render_table
from shredstore import EventStore

CUSTOMERS = 1000
"""Distinct customers, hence streams, that appends go to round-robin."""
FILL_BATCH = 100
"""Events per append when filling the log for the read case (untimed)."""
_PLANS = ("free", "team", "business", "enterprise")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class CustomerRegistered(shredstore.Event, type_name="bench.CustomerRegistered"):
    """The benchmark's event: a typical small domain event with personal data in it."""

    customer_id: str
    name: str
    email: str
    plan: str
    credit_limit: int
    registered_at: datetime


# --- cases and results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement: appends of `per_append` events each, or a full read of `events`."""

    name: str
    kind: Literal["append", "read"]
    events: int
    per_append: int

    @property
    def appends(self) -> int:
        return self.events // self.per_append


def make_cases(*, quick: bool) -> list[Case]:
    """The three cases, at full size or (``quick``) ten times smaller."""
    scale = 10 if quick else 1
    return [
        Case("append x1", "append", events=2_000 // scale, per_append=1),
        Case("append x100", "append", events=100_000 // scale, per_append=100),
        Case("read_all", "read", events=100_000 // scale, per_append=FILL_BATCH),
    ]


@dataclass(frozen=True, slots=True)
class Result:
    """Events per second of each repetition of one case on one backend."""

    backend: str
    case: Case
    rates: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "case": self.case.name,
            "events": self.case.events,
            "events_per_append": self.case.per_append if self.case.kind == "append" else None,
            "events_per_second": {
                "median": self.median,
                "min": min(self.rates),
                "max": max(self.rates),
                "runs": list(self.rates),
            },
        }


# --- events ------------------------------------------------------------------------------------


def customer_event(n: int) -> CustomerRegistered:
    """The `n`-th event of a run; it belongs to customer ``n % CUSTOMERS``."""
    customer = n % CUSTOMERS
    return CustomerRegistered(
        customer_id=f"C{customer:06d}",
        name=f"Customer Number {customer}",
        email=f"customer.{customer}@example.com",
        plan=_PLANS[n % len(_PLANS)],
        credit_limit=1_000 + (n % 97) * 250,
        registered_at=_EPOCH + timedelta(seconds=n),
    )


Batch = tuple[str, list[CustomerRegistered]]
"""One append: a stream id and its events."""


def make_batches(case: Case) -> list[Batch]:
    """The appends of `case`, as (stream id, events); append ``i`` goes to ``customer-<i%N>``."""
    return [
        (
            f"customer-{i % CUSTOMERS}",
            [customer_event(i * case.per_append + j) for j in range(case.per_append)],
        )
        for i in range(case.appends)
    ]


# --- backends ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backend:
    """A database kind, and how to get an empty event store location on it."""

    name: str
    fresh: Callable[[], contextlib.AbstractContextManager[str | URL]]
    description: str


def sqlite_backend() -> Backend:
    """SQLite files, each in a temporary directory removed afterwards."""

    @contextlib.contextmanager
    def fresh() -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="shredstore-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'events.db'}"

    return Backend("sqlite", fresh, f"SQLite {sqlite3.sqlite_version}")


def postgres_backend(url: str) -> Backend:
    """Schemas of a PostgreSQL database: created per use, dropped with CASCADE afterwards.

    Raises `sa.exc.OperationalError` if the server cannot be reached.
    """
    base = make_url(url)
    if base.get_backend_name() in ("postgres", "postgresql"):
        base = base.set(drivername="postgresql+psycopg")
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        version = conn.exec_driver_sql("SHOW server_version").scalar_one()

    @contextlib.contextmanager
    def fresh() -> Iterator[URL]:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            yield base.update_query_dict({"options": f"-csearch_path={schema}"})
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return Backend("postgres", fresh, f"PostgreSQL {version}")


# --- measurements ------------------------------------------------------------------------------


def time_appends(store: EventStore, batches: Sequence[Batch]) -> float:
    """Seconds taken to append every batch, each with its own `append` call."""
    start = time.perf_counter()
    for stream_id, events in batches:
        store.append(stream_id, events)
    return time.perf_counter() - start


def time_read_all(store: EventStore, expected: int) -> float:
    """Seconds taken to read (and decode) the whole log; checks that it held `expected` events."""
    start = time.perf_counter()
    count = 0
    for _ in store.read_all():
        count += 1
    elapsed = time.perf_counter() - start
    _check(count == expected, f"read_all returned {count} events, expected {expected}")
    return elapsed


def run_append_case(backend: Backend, case: Case, repeat: int) -> list[float]:
    """Events/s of each repetition, each on an empty log."""
    rates = []
    for _ in range(repeat):
        batches = make_batches(case)
        with backend.fresh() as url, EventStore(url) as store:
            elapsed = time_appends(store, batches)
            stored = store.head().position
        _check(stored == case.events, f"the log holds {stored} events, expected {case.events}")
        rates.append(case.events / elapsed)
        progress(f"  {backend.name} {case.name}: {case.events / elapsed:,.0f} events/s")
    return rates


def run_read_case(backend: Backend, case: Case, repeat: int) -> list[float]:
    """Events/s of each full read of one log filled (untimed) with `case.events` events."""
    rates = []
    with backend.fresh() as url, EventStore(url) as store:
        progress(f"  {backend.name} {case.name}: filling the log with {case.events:,} events")
        time_appends(store, make_batches(case))
        for _ in range(repeat):
            elapsed = time_read_all(store, case.events)
            rates.append(case.events / elapsed)
            progress(f"  {backend.name} {case.name}: {case.events / elapsed:,.0f} events/s")
    return rates


def run_backend(backend: Backend, cases: Sequence[Case], repeat: int) -> list[Result]:
    """Every case on one backend."""
    progress(f"{backend.description}:")
    results = []
    for case in cases:
        runner = run_append_case if case.kind == "append" else run_read_case
        results.append(Result(backend.name, case, tuple(runner(backend, case, repeat))))
    return results


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


# --- reporting ---------------------------------------------------------------------------------


def format_table(results: Sequence[Result]) -> str:
    """The results as a plain-text table, one row per backend and case."""
    header = ("backend", "case", "events", "ev/append", "median ev/s", "min ev/s", "max ev/s")
    rows = [
        (
            result.backend,
            result.case.name,
            f"{result.case.events:,}",
            str(result.case.per_append) if result.case.kind == "append" else "-",
            f"{result.median:,.0f}",
            f"{min(result.rates):,.0f}",
            f"{max(result.rates):,.0f}",
        )
        for result in results
    ]
    return render_table(header, rows)


def environment(backends: Sequence[Backend]) -> dict[str, Any]:
    """What the figures depend on besides the code: machine, interpreter, databases."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sqlalchemy": sa.__version__,
        "databases": [backend.description for backend in backends],
    }


def write_json(path: Path, results: Sequence[Result], meta: dict[str, Any]) -> None:
    document = {**meta, "results": [result.to_json() for result in results]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.log_throughput",
        description="Measure shredstore append and read_all throughput in events per second.",
    )
    add_common_arguments(parser, quick_help="10x smaller sizes: a smoke run")
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    return args


def select_backends(choice: str, postgres_url: str) -> list[Backend]:
    """The backends to run; with ``all``, PostgreSQL is skipped if it is unreachable."""
    return common.select_backends(choice, postgres_url, sqlite=sqlite_backend,
                                  postgres=postgres_backend)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backends = select_backends(args.backend, args.postgres_url)
    cases = make_cases(quick=args.quick)
    started = time.perf_counter()
    results = [
        result for backend in backends for result in run_backend(backend, cases, args.repeat)
    ]
    seconds = time.perf_counter() - started
    meta = {
        "quick": args.quick,
        "repeat": args.repeat,
        "seconds": round(seconds, 1),
        "environment": environment(backends),
    }
    print(format_table(results))
    print(
        f"\n{args.repeat} runs per case; total time {seconds:.1f} s "
        f"({', '.join(meta['environment']['databases'])}, Python {platform.python_version()})"
    )
    if args.json is not None:
        write_json(args.json, results, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
