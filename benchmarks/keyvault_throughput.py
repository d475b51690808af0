"""Key-vault throughput: keys opened per second, warm and cold cache, SQLite and PostgreSQL.

Each backend gets one vault holding 1,000 subjects ``customer-<n>``, each with a data key and one
sealed 32-byte value (prepared untimed). The cases, each repeated (median, min and max of the
repetitions; every rate is operations per second, and ms/op is its inverse):

``open warm``
    `KeyVault.open` per call, every key in the cache: each call is one erasure-counter check
    (a single-row read in its own transaction) and one AES-GCM decryption (10 passes over the
    subjects).
``open cold``
    `KeyVault.open` per call on a new vault with ``cache_size=0``, so every open also reads the
    subject's key row and unwraps the key with the master key (one pass; the vault is created
    untimed).
``ring open warm``
    Opens inside `KeyVault.keyring()`: one erasure check per keyring, one keyring per pass over
    the subjects (the event store's path for a page of events; 50 passes).
``ring open cold+preload``
    A new vault (empty cache, created untimed), one keyring, ``ring.preload(all subjects)`` (one
    query and an unwrap per key), then every value opened; the preload is inside the timing
    (5 fresh vaults per repetition).
``seal warm``
    `KeyVault.seal` per call for subjects whose key is cached (10 passes).
``seal new subject``
    `KeyVault.seal` for subjects never seen: each call creates, wraps and stores a key in a write
    transaction with a durable commit (1,000 new subjects per repetition).
``erase``
    `KeyVault.erase` of subjects that hold a key (created untimed just before): a write
    transaction with a durable commit, plus on SQLite the WAL checkpoint that scrubs the key's
    bytes (200 subjects per repetition, after an untimed `KeyVault.scrub`, so that every
    repetition starts with an empty SQLite WAL); read its ms/op as the latency of one erase.

Every vault file is a new SQLite database (WAL, ``synchronous=FULL``, ``secure_delete``, as the
vault configures it) in a temporary directory, or a new PostgreSQL schema, dropped afterwards.
The cases run in the order above on the same vault; sealing and erasing use subjects of their
own, so the 1,000 opened subjects and their cached keys stay as they were.

Run from the repository root::

    python -m benchmarks.keyvault_throughput                      # both backends, full sizes
    python -m benchmarks.keyvault_throughput --quick              # 10x smaller: a smoke run
    python -m benchmarks.keyvault_throughput --backend sqlite --json results.json

PostgreSQL is reached at ``--postgres-url``, else ``$SHREDSTORE_BENCH_POSTGRES_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the role must be allowed to create
schemas. With ``--backend all`` an unreachable server is reported and skipped. ``--repeat N``
changes the number of repetitions (default 3). Commits are durable (fsync) on both backends, so
the key-creation and erase figures depend on the disk; run on an otherwise idle machine.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cryptography
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from benchmarks import common
from benchmarks.common import add_common_arguments, check_repeat, progress, render_table
from keyvault import KeyVault, MasterKey

SUBJECTS = 1000
"""Subjects with a key and a sealed value, opened by the open cases and sealed to by ``seal``."""
PLAINTEXT_SIZE = 32
COLD_CACHE = 0
WARM_CACHE = 10_000


# --- cases and results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One measurement: `passes` rounds of `per_pass` operations each, per repetition."""

    name: str
    runner: Runner
    per_pass: int
    passes: int = 1

    @property
    def ops(self) -> int:
        return self.per_pass * self.passes


@dataclass(frozen=True, slots=True)
class Result:
    """Operations per second of each repetition of one case on one backend."""

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
            "operations": self.case.ops,
            "operations_per_second": {
                "median": self.median,
                "min": min(self.rates),
                "max": max(self.rates),
                "runs": list(self.rates),
            },
            "ms_per_operation": {
                "median": 1000 / self.median,
                "min": 1000 / max(self.rates),
                "max": 1000 / min(self.rates),
            },
        }


# --- the vault under test ----------------------------------------------------------------------


@dataclass(slots=True)
class Bench:
    """One backend's prepared vault: `subjects` with a cached key and a sealed value each."""

    backend: str
    url: str | URL
    master: MasterKey
    vault: KeyVault
    subjects: list[str]
    sealed: list[tuple[str, bytes]]
    plaintexts: list[bytes]
    created: int = field(default=0)
    """Subjects created so far by the seal-new and erase cases (so ids never repeat)."""

    def new_subjects(self, count: int, prefix: str) -> list[str]:
        first, self.created = self.created, self.created + count
        return [f"{prefix}-{n:06d}" for n in range(first, first + count)]


def plaintext(n: int) -> bytes:
    """The 32-byte value sealed for subject `n`: distinct per subject, so a mix-up shows."""
    return f"value of customer {n:06d}".encode().ljust(PLAINTEXT_SIZE, b".")


@contextlib.contextmanager
def prepared(backend: Backend, subjects: int) -> Iterator[Bench]:
    """A vault on a fresh database with `subjects` keys and sealed values (untimed)."""
    master = MasterKey.generate()
    with backend.fresh() as url, KeyVault(url, master_key=master, cache_size=WARM_CACHE) as vault:
        progress(f"  {backend.name}: preparing {subjects:,} subjects")
        ids = [f"customer-{n:06d}" for n in range(subjects)]
        plaintexts = [plaintext(n) for n in range(subjects)]
        sealed = [(s, vault.seal(s, p)) for s, p in zip(ids, plaintexts, strict=True)]
        yield Bench(backend.name, url, master, vault, ids, sealed, plaintexts)


# --- measurements ------------------------------------------------------------------------------

Runner = Callable[[Bench, Case], float]
"""Runs one repetition of a case and returns the seconds its timed part took."""


def check_opened(bench: Bench, opened: Sequence[bytes], passes: int) -> None:
    _check(list(opened) == bench.plaintexts * passes, "an opened value differs from the sealed one")


def open_warm(bench: Bench, case: Case) -> float:
    vault, sealed = bench.vault, bench.sealed
    for subject_id, value in sealed:  # untimed: make sure every key is cached
        vault.open(subject_id, value)
    start = time.perf_counter()
    opened = [vault.open(s, v) for _ in range(case.passes) for s, v in sealed]
    elapsed = time.perf_counter() - start
    check_opened(bench, opened, case.passes)
    return elapsed


def open_cold(bench: Bench, case: Case) -> float:
    elapsed = 0.0
    for _ in range(case.passes):
        with KeyVault(bench.url, master_key=bench.master, cache_size=COLD_CACHE) as vault:
            start = time.perf_counter()
            opened = [vault.open(s, v) for s, v in bench.sealed]
            elapsed += time.perf_counter() - start
        check_opened(bench, opened, 1)
    return elapsed


def ring_open_warm(bench: Bench, case: Case) -> float:
    vault, sealed = bench.vault, bench.sealed
    with vault.keyring() as ring:  # untimed: make sure every key is cached
        ring.preload(bench.subjects)
    opened: list[bytes] = []
    start = time.perf_counter()
    for _ in range(case.passes):
        with vault.keyring() as ring:
            opened += [ring.open(s, v) for s, v in sealed]
    elapsed = time.perf_counter() - start
    check_opened(bench, opened, case.passes)
    return elapsed


def ring_open_preload(bench: Bench, case: Case) -> float:
    elapsed = 0.0
    for _ in range(case.passes):
        with KeyVault(bench.url, master_key=bench.master, cache_size=WARM_CACHE) as vault:
            start = time.perf_counter()
            with vault.keyring() as ring:
                ring.preload(bench.subjects)
                opened = [ring.open(s, v) for s, v in bench.sealed]
            elapsed += time.perf_counter() - start
        check_opened(bench, opened, 1)
    return elapsed


def seal_warm(bench: Bench, case: Case) -> float:
    vault, subjects, plaintexts = bench.vault, bench.subjects, bench.plaintexts
    pairs = list(zip(subjects, plaintexts, strict=True))
    for subject_id, value in pairs:  # untimed: make sure every key is cached
        vault.seal(subject_id, value)
    start = time.perf_counter()
    sealed = [vault.seal(s, p) for _ in range(case.passes) for s, p in pairs]
    elapsed = time.perf_counter() - start
    _check(vault.open(subjects[-1], sealed[-1]) == plaintexts[-1], "a sealed value won't open")
    return elapsed


def seal_new(bench: Bench, case: Case) -> float:
    vault = bench.vault
    subjects = bench.new_subjects(case.ops, "new")
    value = plaintext(0)
    start = time.perf_counter()
    sealed = [vault.seal(s, value) for s in subjects]
    elapsed = time.perf_counter() - start
    _check(vault.open(subjects[-1], sealed[-1]) == value, "a sealed value won't open")
    return elapsed


def erase(bench: Bench, case: Case) -> float:
    vault = bench.vault
    subjects = bench.new_subjects(case.ops, "erase")
    for subject_id in subjects:  # untimed: every erased subject holds a key
        vault.seal(subject_id, plaintext(0))
    vault.scrub()  # untimed: the first erase doesn't inherit the WAL of earlier cases
    start = time.perf_counter()
    results = [vault.erase(s, reason="benchmark", request_id=f"bench-{s}") for s in subjects]
    elapsed = time.perf_counter() - start
    _check(all(r.held_key and not r.already_erased for r in results), "an erase destroyed no key")
    return elapsed


def make_cases(*, quick: bool) -> tuple[int, list[Case]]:
    """The number of subjects and the cases, at full size or (``quick``) ten times smaller."""
    scale = 10 if quick else 1
    subjects = SUBJECTS // scale
    return subjects, [
        Case("open warm", open_warm, per_pass=subjects, passes=10),
        Case("open cold", open_cold, per_pass=subjects),
        Case("ring open warm", ring_open_warm, per_pass=subjects, passes=50),
        Case("ring open cold+preload", ring_open_preload, per_pass=subjects, passes=5),
        Case("seal warm", seal_warm, per_pass=subjects, passes=10),
        Case("seal new subject", seal_new, per_pass=1_000 // scale),
        Case("erase", erase, per_pass=200 // scale),
    ]


def run_backend(
    backend: Backend, subjects: int, cases: Sequence[Case], repeat: int
) -> list[Result]:
    """Every case on one backend, on one prepared vault."""
    progress(f"{backend.description}:")
    results = []
    with prepared(backend, subjects) as bench:
        for case in cases:
            rates = []
            for _ in range(repeat):
                rate = case.ops / case.runner(bench, case)
                rates.append(rate)
                progress(f"  {backend.name} {case.name}: {rate:,.0f}/s ({1000 / rate:.3f} ms)")
            results.append(Result(backend.name, case, tuple(rates)))
    return results


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


# --- backends ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backend:
    """A database kind, and how to get an empty vault location on it."""

    name: str
    fresh: Callable[[], contextlib.AbstractContextManager[str | URL]]
    description: str


def sqlite_backend() -> Backend:
    """SQLite files, each in a temporary directory removed afterwards."""

    @contextlib.contextmanager
    def fresh() -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="keyvault-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'vault.db'}"

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


# --- reporting ---------------------------------------------------------------------------------


def format_table(results: Sequence[Result]) -> str:
    """The results as a plain-text table, one row per backend and case."""
    header = ("backend", "case", "ops", "median op/s", "min op/s", "max op/s", "median ms/op")
    rows = [
        (
            result.backend,
            result.case.name,
            f"{result.case.ops:,}",
            f"{result.median:,.0f}",
            f"{min(result.rates):,.0f}",
            f"{max(result.rates):,.0f}",
            f"{1000 / result.median:.3f}",
        )
        for result in results
    ]
    return render_table(header, rows)


def environment(backends: Sequence[Backend]) -> dict[str, Any]:
    """What the figures depend on besides the code: machine, interpreter, libraries, databases."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sqlalchemy": sa.__version__,
        "cryptography": cryptography.__version__,
        "databases": [backend.description for backend in backends],
    }


def write_json(path: Path, results: Sequence[Result], meta: dict[str, Any]) -> None:
    document = {**meta, "results": [result.to_json() for result in results]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.keyvault_throughput",
        description="Measure keyvault open, seal and erase throughput in operations per second.",
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
    subjects, cases = make_cases(quick=args.quick)
    started = time.perf_counter()
    results = [
        result
        for backend in backends
        for result in run_backend(backend, subjects, cases, args.repeat)
    ]
    seconds = time.perf_counter() - started
    meta = {
        "quick": args.quick,
        "repeat": args.repeat,
        "subjects": subjects,
        "plaintext_bytes": PLAINTEXT_SIZE,
        "seconds": round(seconds, 1),
        "environment": environment(backends),
    }
    print(format_table(results))
    print(
        f"\n{subjects:,} subjects; {args.repeat} runs per case; total time {seconds:.1f} s "
        f"({', '.join(meta['environment']['databases'])}, Python {platform.python_version()})"
    )
    if args.json is not None:
        write_json(args.json, results, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
