"""Scrubbing the vault's tables: the checkpoint's bounded wait for readers in other processes,
rotation leftovers, and what each backend's scrub reports, checked against the bytes on disk.

A reader is a real process (`READER`, at the bottom: it imports sqlite3 or psycopg only, not
shredstore, so it starts in a twentieth of a new test interpreter's CPU time on SQLite and a
fifth on PostgreSQL) that holds a transaction open until the test tells it to let go.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa

from keyvault import KeyVault, MasterKey, ScrubResult
from keyvault.engine import checkpoint_wal
from keyvault.scrub import VAULT_TABLES, scrub_tables
from tests.cli.runner import process_environment
from tests.keyvault.contract import raw

ROOT = Path(__file__).resolve().parents[2]


class Reader:
    """Another process holding a transaction open: ``table`` mode has read the key table (and
    so holds a lock on it), ``snapshot`` mode has only taken a snapshot (PostgreSQL)."""

    def __init__(self, url: str, mode: str = "table") -> None:
        """`url`: an SQLite database file's path, or a PostgreSQL URL."""
        if url.startswith("postgresql"):  # libpq's form of it, for psycopg alone
            url = sa.make_url(url).set(drivername="postgresql").render_as_string(
                hide_password=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, url, mode], cwd=ROOT, env=process_environment(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._line() == "holding", self._describe()

    def release(self, after: float = 0.0) -> None:
        """Ask it to end its transaction `after` seconds from now (it answers at once)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{after}\n")
        self.proc.stdin.flush()

    def wait_released(self) -> None:
        assert self._line() == "released", self._describe()
        assert self.proc.wait(timeout=30) == 0, self._describe()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def _describe(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        return f"reader exited {self.proc.returncode}: {err[-2000:]}"


@pytest.fixture
def readers() -> Iterator[list[Reader]]:
    started: list[Reader] = []
    yield started
    for reader in started:
        reader.stop()


def files_of(database: Path) -> bytes:
    """The SQLite database file and its WAL, as they are on disk."""
    wal = database.with_name(database.name + "-wal")
    return database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def wrapped_keys(url: str) -> dict[str, bytes]:
    """Every wrapped key the vault's tables hold now, data keys and service keys."""
    rows = raw(url, "SELECT subject_id, wrapped_key FROM keyvault_subjects "
                    "WHERE wrapped_key IS NOT NULL "
                    "UNION ALL SELECT 'service:' || name, wrapped_key FROM keyvault_service_keys")
    return {str(name): bytes(key) for name, key in rows}  # type: ignore[arg-type]


def filled_vault(url: str) -> KeyVault:
    vault = KeyVault(url, master_key=MasterKey.generate())
    for i in range(30):
        vault.seal(f"subject-{i}", b"x")
    vault.service_key("test.service")
    return vault


# SQLite


def test_a_reader_that_lets_go_within_the_wait_lets_the_checkpoint_complete(
        tmp_path: Path, readers: list[Reader]) -> None:
    """The checkpoint retries while a reader in another process holds it off, and completes
    (the WAL truncated) once the reader ends within the wait."""
    database = tmp_path / "vault.db"
    with filled_vault(f"sqlite:///{database}") as vault:
        readers.append(reader := Reader(str(database)))
        vault.seal("subject-late", b"x")  # WAL frames the reader's snapshot predates
        assert not checkpoint_wal(vault.engine, wait=0)  # held off
        reader.release(after=0.3)
        assert checkpoint_wal(vault.engine, wait=10)
        reader.wait_released()
        assert database.with_name("vault.db-wal").stat().st_size == 0


def test_an_erasure_under_a_long_reader_says_it_did_not_scrub_and_scrub_finishes_it(
        tmp_path: Path, readers: list[Reader]) -> None:
    """A reader that outlasts the bounded wait: erase returns (after the wait, not the 30 s
    busy timeout) saying the key's bytes were not scrubbed, and they are indeed still on disk;
    scrub reports why it cannot complete, then completes once the reader is gone."""
    database = tmp_path / "vault.db"
    url = f"sqlite:///{database}"
    with filled_vault(url) as vault:
        key = wrapped_keys(url)["subject-7"]
        readers.append(reader := Reader(str(database)))
        result = vault.erase("subject-7")
        assert not result.scrubbed
        seen = key in files_of(database)
        assert seen, "the erased key's bytes are still on disk"
        blocked = scrub_tables(vault.engine, list(VAULT_TABLES), wait=0.1)
        assert not blocked.complete
        assert not blocked.log_complete
        assert "kept the WAL busy" in " ".join(blocked.why_not)
        reader.release()
        reader.wait_released()
        done = scrub_tables(vault.engine, list(VAULT_TABLES), wait=5)
        assert done.complete, done.lines()
        gone = key not in files_of(database)
        assert gone, "the erased key's bytes are still on disk after scrub"


def test_rotation_leftovers_leave_the_files_when_scrubbed(tmp_path: Path) -> None:
    """A rotation leaves every key wrapped by the old master key in the database file or WAL
    while the process is open; scrub removes every one, data keys and service keys."""
    database = tmp_path / "vault.db"
    url = f"sqlite:///{database}"
    with filled_vault(url) as vault:
        old = wrapped_keys(url)
        vault.rotate_master_key(MasterKey.generate())
        assert not set(old.values()) & set(wrapped_keys(url).values())  # all re-wrapped
        on_disk = files_of(database)
        assert sum(key in on_disk for key in old.values()) == len(old) == 31
        result = scrub_tables(vault.engine, list(VAULT_TABLES))
        assert result.complete, result.lines()
        on_disk = files_of(database)
        assert not [name for name, key in old.items() if key in on_disk]
        assert all(key in on_disk for key in wrapped_keys(url).values())  # the scan sees keys


def test_without_secure_delete_a_table_is_not_reported_scrubbed(tmp_path: Path) -> None:
    """An engine whose connections run without secure_delete (set otherwise, or a library
    built with another default) may leave deleted rows in free space: the result says so
    instead of claiming the table clean."""
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    filled_vault(url).close()
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect",
                    lambda dbapi, _: dbapi.execute("PRAGMA secure_delete=OFF"))
    try:
        result = scrub_tables(engine, ["keyvault_subjects", "no_such_table"])
    finally:
        engine.dispose()
    assert not result.complete
    (subjects, missing) = result.tables
    assert not subjects.complete
    assert "secure_delete is off" in str(subjects)
    assert missing.complete


# PostgreSQL


def scrubbed(engine: sa.Engine, tables: list[str]) -> ScrubResult:
    """`scrub_tables`, run again (for up to 10 s) while it kept old row versions only because
    a transaction the test did not start holds a snapshot in the database (autovacuum's ANALYZE
    of the busy test database, say): running it again is what that result asks for."""
    deadline = time.monotonic() + 10
    while True:
        result = scrub_tables(engine, tables)
        kept = any("old row version(s) kept" in (table.why_not or "") for table in result.tables)
        if not kept or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def relation_bytes(url: str, *tables: str) -> bytes:
    """The data files of `tables`, their TOAST tables and indexes, as on disk (needs a
    superuser and a local server: the test skips otherwise)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CHECKPOINT")  # dirty pages reach the files
            directory = Path(conn.exec_driver_sql("SHOW data_directory").scalar_one())
            paths = conn.execute(sa.text(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c "
                "WHERE c.oid = ANY(:oids) OR c.oid IN (SELECT reltoastrelid FROM pg_class "
                "WHERE oid = ANY(:oids)) OR c.oid IN (SELECT indexrelid FROM pg_index "
                "WHERE indrelid = ANY(:oids))"),
                {"oids": [conn.execute(sa.text("SELECT to_regclass(:t)::oid"),
                                       {"t": t}).scalar_one() for t in tables]}).scalars()
            files = [directory / path for path in paths if path]
    finally:
        engine.dispose()
    data = b""
    for file in files:
        for segment in [file, *sorted(file.parent.glob(file.name + ".*"))]:
            try:
                data += segment.read_bytes()
            except PermissionError:
                unreadable("the server's data directory is not readable by this user")
    return data


def unreadable(reason: str) -> NoReturn:
    """Skip, with `reason`; fail instead where every PostgreSQL test must run (CI sets
    SHREDSTORE_REQUIRE_POSTGRES=1, as tests/conftest.py reads it): there a skipped byte scan
    would let the run pass without checking the files at all."""
    if os.environ.get("SHREDSTORE_REQUIRE_POSTGRES", "") not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (run the tests as the server's owner, or as root), and "
                    "SHREDSTORE_REQUIRE_POSTGRES=1 forbids skipping the byte scan",
                    pytrace=False)
    pytest.skip(reason)


def test_postgres_scrub_rewrites_erased_keys_and_rotation_leftovers_out_of_the_files(
        postgres_url: str) -> None:
    """Dead tuples of an erasure and of a rotation stay in the table files; after scrub (VACUUM
    FULL of both vault tables, and CHECKPOINT) none of the old wrapped keys is in them."""
    with filled_vault(postgres_url) as vault:
        before = wrapped_keys(postgres_url)
        vault.erase("subject-7")
        seen = before["subject-7"] in relation_bytes(postgres_url, *VAULT_TABLES)
        assert seen, "the scan sees the dead tuple the erasure left"
        vault.rotate_master_key(MasterKey.generate())  # prunes pages, and leaves old keys
        files = relation_bytes(postgres_url, *VAULT_TABLES)
        assert sum(key in files for key in before.values()) >= 2
        result = scrubbed(vault.engine, list(VAULT_TABLES))
        assert result.complete, result.lines()
        assert result.log == "CHECKPOINT done: WAL segments before it can be recycled"
        assert [str(t) for t in result.tables] == [
            f"{table}: rewritten by VACUUM FULL: no old row versions kept"
            for table in VAULT_TABLES]
        files = relation_bytes(postgres_url, *VAULT_TABLES)
        assert not [name for name, key in before.items() if key in files]
        assert all(key in files for key in wrapped_keys(postgres_url).values())


def test_postgres_scrub_reports_old_row_versions_an_open_snapshot_keeps(
        postgres_url: str, readers: list[Reader]) -> None:
    """A transaction older than the erasure (here a snapshot in another process that never
    touched the vault) makes VACUUM FULL copy the dead row: scrub says so, and completes once
    the transaction has ended."""
    with filled_vault(postgres_url) as vault:
        key = wrapped_keys(postgres_url)["subject-7"]
        readers.append(reader := Reader(postgres_url, "snapshot"))
        vault.erase("subject-7")
        kept = scrub_tables(vault.engine, list(VAULT_TABLES))
        assert not kept.complete
        assert "1 old row version(s) kept" in str(kept.tables[0])
        seen = key in relation_bytes(postgres_url, *VAULT_TABLES)
        assert seen, "the kept row version is still in the file"
        reader.release()
        reader.wait_released()
        done = scrubbed(vault.engine, list(VAULT_TABLES))
        assert done.complete, done.lines()
        gone = key not in relation_bytes(postgres_url, *VAULT_TABLES)
        assert gone, "the erased key's bytes are still in the files after scrub"


def test_postgres_scrub_waits_a_bounded_time_for_a_transaction_holding_the_table(
        postgres_url: str, readers: list[Reader]) -> None:
    """VACUUM FULL needs the table to itself: a transaction that read it holds it off for the
    wait at most; scrub reports that rather than raising or blocking."""
    with filled_vault(postgres_url) as vault:
        vault.erase("subject-7")
        readers.append(reader := Reader(postgres_url, "table"))
        held = scrub_tables(vault.engine, list(VAULT_TABLES), wait=0.2)
        assert not held.complete
        assert "another transaction held the table for more than 0.2 s" in str(held.tables[0])
        assert held.tables[1].complete  # the reader never touched the service keys
        reader.release()
        reader.wait_released()
        assert scrubbed(vault.engine, list(VAULT_TABLES)).complete


@pytest.fixture
def limited_role(postgres_url: str) -> Iterator[str]:
    """A URL for a role that is no superuser and has no pg_checkpoint, in the test's schema."""
    role = f"scrub_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER')
        conn.exec_driver_sql(f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO "{role}"')
    try:
        yield sa.make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()


def test_postgres_scrub_says_what_the_role_may_not_do(postgres_url: str,
                                                      limited_role: str) -> None:
    """A role may VACUUM FULL only the tables it owns, and CHECKPOINT only with pg_checkpoint:
    the result names both gaps instead of claiming the tables scrubbed."""
    raw(postgres_url, "CREATE TABLE admins_table (id int PRIMARY KEY, v text)")
    raw(postgres_url, f"GRANT ALL ON admins_table TO {sa.make_url(limited_role).username}")
    with KeyVault(limited_role, master_key=MasterKey.generate()) as vault:
        vault.seal("subject-1", b"x")
        vault.erase("subject-1")
        result = scrubbed(vault.engine, ["keyvault_subjects", "admins_table"])
    owned, admins = result.tables
    assert owned.complete
    assert not admins.complete
    assert admins.why_not == "only the table's owner or a superuser may VACUUM FULL it"
    assert not result.log_complete
    assert "may not run CHECKPOINT" in (result.log_why_not or "")
    assert not result.complete


READER = """
import sys, time

url, mode = sys.argv[1], sys.argv[2]
if url.startswith("postgresql"):
    import psycopg

    conn = psycopg.connect(url)
    if mode == "snapshot":
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("SELECT 1").fetchall()  # the snapshot is taken here
    else:
        conn.execute("SELECT count(*) FROM keyvault_subjects").fetchall()
else:
    import sqlite3

    conn = sqlite3.connect(url, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM keyvault_subjects").fetchall()
print("holding", flush=True)
time.sleep(float(sys.stdin.readline()))
conn.commit()
conn.close()
print("released", flush=True)
"""
"""The reader process (``python -c READER URL MODE``): open a transaction, say so, and end it
when told, after the delay given. It imports sqlite3 or psycopg only."""
