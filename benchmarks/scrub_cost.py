"""What scrubbing costs: the checkpoint every erasure runs, a full scrub, and the residue
check's byte scan.

``checkpoint``
    Microseconds per `keyvault.engine.checkpoint_wal` on SQLite with no other connection in the
    way (what every `erase` that destroys a key pays), after one erasure-sized write (a WAL
    frame or two to copy back, fsyncs included) and with nothing to do. ``before`` is the
    implementation this module replaced (kept below as `previous_checkpoint_wal`: one
    checkpoint on an SQLAlchemy connection, waiting on the 30 s busy timeout); ``after`` is
    the current one (the driver's connection, busy timeout 0, bounded retries). The two are
    interleaved call by call, so drift on a busy machine hits both alike: median and 90th
    percentile of the calls.
``scrub``
    Milliseconds per `keyvault.scrub.scrub_tables` of the vault's tables holding N subjects, 1 %
    of them erased just before (SQLite: the secure_delete check and a TRUNCATE checkpoint;
    PostgreSQL: VACUUM FULL of both tables and CHECKPOINT): median of the repetitions.
``byte scan``
    Milliseconds per MiB for the residue check's scan of a database file for a subject's values
    (`shredstore.erasure.residue`), six values in three forms each.

Run from the repository root::

    python -m benchmarks.scrub_cost                  # both backends
    python -m benchmarks.scrub_cost --backend sqlite --quick
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from benchmarks.common import add_common_arguments, check_repeat, progress, render_table
from keyvault import KeyVault, MasterKey
from keyvault.engine import WRITE, checkpoint_wal, is_sqlite
from keyvault.scrub import VAULT_TABLES, scrub_tables
from shredstore.erasure import residue


def previous_checkpoint_wal(engine: Engine) -> bool:
    """`checkpoint_wal` as it was before the bounded wait (git 25da34c), to compare with."""
    if not is_sqlite(engine):
        return True
    with engine.connect() as conn:
        conn.commit()
        busy, _log, _checkpointed = conn.exec_driver_sql(
            "PRAGMA wal_checkpoint(TRUNCATE)").one()
    return int(busy) == 0


def erasure_sized_write(engine: Engine) -> None:
    """One small committed write, as an erasure's transaction makes (the state row)."""
    with engine.connect() as conn:
        conn.execution_options(**WRITE)
        with conn.begin():
            conn.exec_driver_sql("UPDATE keyvault_state SET erasures = erasures + 1")


def checkpoint_rows(directory: Path, calls: int) -> list[list[str]]:
    with KeyVault(f"sqlite:///{directory / 'checkpoint.db'}",
                  master_key=MasterKey.generate()) as vault:
        for i in range(200):
            vault.seal(f"subject-{i}", b"x")
        engine = vault._engine
        implementations: dict[str, Callable[[Engine], bool]] = {
            "before": previous_checkpoint_wal, "after": checkpoint_wal}
        written: dict[str, list[float]] = {name: [] for name in implementations}
        idle: dict[str, list[float]] = {name: [] for name in implementations}
        for _ in range(calls):
            for name, checkpoint in implementations.items():
                erasure_sized_write(engine)
                written[name].append(timed(lambda c=checkpoint: c(engine)))
                idle[name].append(timed(lambda c=checkpoint: c(engine)))
    rows = []
    for case, samples in (("after a write", written), ("nothing to do", idle)):
        for name in implementations:
            rows.append([case, name, f"{statistics.median(samples[name]) * 1e6:,.0f}",
                         f"{statistics.quantiles(samples[name], n=10)[-1] * 1e6:,.0f}"])
    return rows


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    assert call()
    return time.perf_counter() - started


def scrub_row(backend: str, url: str, subjects: int, repeat: int) -> list[str]:
    runs = []
    with KeyVault(url, master_key=MasterKey.generate()) as vault:
        with vault.keyring() as ring:
            ring.prepare([f"subject-{i}" for i in range(subjects)])  # keys made in one go
        for round_ in range(repeat):
            for i in range(round_, subjects, 100):
                vault.erase(f"subject-{i}")
            started = time.perf_counter()
            result = scrub_tables(vault._engine, list(VAULT_TABLES))
            runs.append(time.perf_counter() - started)
            assert result.complete, result.lines()
    return [backend, f"{subjects:,}", f"{statistics.median(runs) * 1e3:,.1f}"]


def scan_row(directory: Path, mib: int) -> list[str]:
    file = directory / "scan.db"
    with file.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))
    values = ["Alice Example", "alice@example.org", "DE00 1234 5678 9012", "1 Long Road",
              "+44 20 7946 0000", "1984-02-29"]
    needles = residue._needles(values, "utf-8")
    started = time.perf_counter()
    assert residue._places(file, needles) == 0
    return [f"{mib} MiB", f"{len(needles)}",
            f"{(time.perf_counter() - started) * 1e3 / mib:,.2f}"]


def postgres_url(base: str) -> tuple[str, Callable[[], None]]:
    """A URL of a new database on `base`'s server, and what drops it. Its own database, since
    another session's transaction in the same database keeps old row versions alive."""
    name = f"bench_scrub_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()

    return sa.make_url(base).set(database=name).render_as_string(hide_password=False), drop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrub_cost",
                                     description=__doc__.split("\n")[0])
    add_common_arguments(parser, quick_help="fewer calls and smaller vaults: a smoke run")
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    calls, sizes, mib = (50, (1_000,), 16) if args.quick else (500, (1_000, 10_000), 128)
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        progress("checkpoint ...")
        print(render_table(["checkpoint (SQLite, unblocked)", "code", "median us", "p90 us"],
                           checkpoint_rows(directory, calls)))
        rows = []
        for subjects in sizes:
            if args.backend in ("sqlite", "all"):
                progress(f"scrub, SQLite, {subjects} subjects ...")
                rows.append(scrub_row("sqlite", f"sqlite:///{directory / f'v{subjects}.db'}",
                                      subjects, args.repeat))
            if args.backend in ("postgres", "all"):
                progress(f"scrub, PostgreSQL, {subjects} subjects ...")
                url, drop = postgres_url(args.postgres_url)
                try:
                    rows.append(scrub_row("postgresql", url, subjects, args.repeat))
                finally:
                    drop()
        print()
        print(render_table(["scrub_tables (vault tables)", "subjects", "median ms"], rows))
        progress("byte scan ...")
        print()
        print(render_table(["byte scan", "needles", "ms per MiB"], [scan_row(directory, mib)],
                           left=1))
    print(f"\n{calls} interleaved checkpoint calls per code; {args.repeat} scrub(s) per size")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
