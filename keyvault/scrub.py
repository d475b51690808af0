"""Scrubbing: making the bytes of deleted and overwritten rows leave the live database files.

Destroying a key, re-wrapping it under a new master key, or forgetting a person in a read model
changes rows; the database may still hold the old bytes. `scrub_tables` does what the backend
allows, and says what it did and whether that is complete:

- SQLite: every connection runs with ``secure_delete``, so a deleted or overwritten row is
  zeroed in the newest version of its page; older versions of the page remain in the WAL, and
  in the database file until a checkpoint overwrites them. Scrubbing checks ``secure_delete``
  and truncates the WAL (`checkpoint_wal`), retrying for up to `wait` seconds while a reader
  keeps it busy.
- PostgreSQL: an UPDATE or DELETE leaves the old row version (a dead tuple) in the table file,
  and plain VACUUM only marks its space free. Scrubbing runs ``VACUUM FULL`` on each table (a
  rewrite under an exclusive lock, waited for up to `wait` seconds) and ``CHECKPOINT`` where
  the role may. A transaction older than the change keeps the old version alive, and VACUUM
  FULL then copies it: that is reported, from VACUUM's own count.

Out of reach of any scrub: WAL segments not yet recycled, archived WAL, backups and replicas
(see docs/scrubbing.md). "Could not complete" is a result, never an exception; a database
that fails or refuses raises `VaultStorageError` (`VaultUnavailable` if it cannot be reached).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from keyvault import schema
from keyvault.engine import CHECKPOINT_WAIT_SECONDS, checkpoint_wal, is_postgres, translate_errors

__all__ = ["VAULT_TABLES", "ScrubResult", "TableScrub", "scrub_tables"]

VAULT_TABLES = (schema.SUBJECTS.name, schema.SERVICE_KEYS.name)
"""The vault's tables that hold wrapped keys: erased keys and rotation leftovers live here."""

_LOCK_NOT_AVAILABLE = "55P03"
_INSUFFICIENT_PRIVILEGE = "42501"
_KEPT = re.compile(r"(\d+) dead row versions cannot be removed yet")
"""VACUUM VERBOSE's count of old row versions an open transaction still needs (English)."""


@dataclass(frozen=True, slots=True)
class TableScrub:
    """What was done to one table, and whether its live file is now free of old rows."""

    table: str
    done: str
    complete: bool
    why_not: str | None = None

    def __str__(self) -> str:
        return f"{self.table}: {self.done}" + (f"; NOT complete: {self.why_not}"
                                               if self.why_not else "")


@dataclass(frozen=True, slots=True)
class ScrubResult:
    """What `scrub_tables` did: per table, then to the write-ahead log."""

    backend: Literal["sqlite", "postgresql"]
    tables: tuple[TableScrub, ...]
    log: str
    """What was done to the write-ahead log."""
    log_complete: bool
    log_why_not: str | None = None

    @property
    def complete(self) -> bool:
        """Whether everything the backend allows was done: the live files hold no old rows."""
        return self.log_complete and all(table.complete for table in self.tables)

    @property
    def why_not(self) -> tuple[str, ...]:
        """Why it is not complete, one reason per table or log that is not."""
        reasons = [f"{table.table}: {table.why_not}" for table in self.tables if table.why_not]
        return (*reasons, *([self.log_why_not] if self.log_why_not else []))

    def lines(self) -> list[str]:
        """One line per table and one for the log, for a terminal."""
        log = self.log + (f"; NOT complete: {self.log_why_not}" if self.log_why_not else "")
        return [*(str(table) for table in self.tables), log]

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "complete": self.complete,
                "tables": [{"table": table.table, "done": table.done,
                            "complete": table.complete, "why_not": table.why_not}
                           for table in self.tables],
                "log": self.log, "log_complete": self.log_complete,
                "log_why_not": self.log_why_not}


def scrub_tables(engine: Engine, tables: Sequence[str], *,
                 wait: float = CHECKPOINT_WAIT_SECONDS) -> ScrubResult:
    """Make the old bytes of `tables`' deleted and updated rows leave the live database files,
    as far as the backend allows; `wait` bounds each wait for readers or locks (seconds).

    Never raises for "could not complete" (a reader, a lock, a missing privilege): the result
    says so and why; run it again later.
    """
    with translate_errors("the database to scrub"):
        if is_postgres(engine):
            return _scrub_postgres(engine, tables, wait)
        return _scrub_sqlite(engine, tables, wait)


def _scrub_sqlite(engine: Engine, tables: Sequence[str], wait: float) -> ScrubResult:
    with engine.connect() as conn:
        secure = conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        present = {name for (name,) in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    done: list[TableScrub] = []
    for table in tables:
        if table not in present:
            done.append(TableScrub(table, "not present: nothing to scrub", complete=True))
        elif secure:
            done.append(TableScrub(table, "deleted and overwritten rows are zeroed in place "
                                   "(secure_delete)", complete=True))
        else:
            done.append(TableScrub(
                table, "secure_delete is off on this engine's connections", complete=False,
                why_not="deleted rows may remain in free space: open the database through "
                        "keyvault's create_engine, or run VACUUM"))
    if engine.url.database in (None, "", ":memory:"):
        return ScrubResult("sqlite", tuple(done), "in-memory database: no file",
                           log_complete=True)
    if checkpoint_wal(engine, wait=wait):
        return ScrubResult("sqlite", tuple(done), "WAL checkpointed and truncated",
                           log_complete=True)
    return ScrubResult(
        "sqlite", tuple(done), "WAL not truncated", log_complete=False,
        log_why_not=f"another connection kept the WAL busy (a read transaction or a write) "
                    f"for {wait:g} s: older copies of the pages remain in the WAL and the "
                    "database file; run scrub again")


def _scrub_postgres(engine: Engine, tables: Sequence[str], wait: float) -> ScrubResult:
    with engine.connect() as pooled, _session(pooled, wait) as (conn, notices):
        done = [_vacuum_full(conn, notices, table, wait) for table in tables]
        try:
            conn.exec_driver_sql("CHECKPOINT")
        except DBAPIError as error:
            if _sqlstate(error) != _INSUFFICIENT_PRIVILEGE:
                raise
            return ScrubResult(
                "postgresql", tuple(done), "CHECKPOINT not run", log_complete=False,
                log_why_not="this role may not run CHECKPOINT (it needs superuser or "
                            "pg_checkpoint): WAL segments holding the old rows wait for the "
                            "server's next checkpoint before they can be recycled")
    return ScrubResult("postgresql", tuple(done), "CHECKPOINT done: WAL segments before it "
                       "can be recycled", log_complete=True)


@contextlib.contextmanager
def _session(pooled: Connection, wait: float
             ) -> Iterator[tuple[Connection, list[str]]]:
    """An autocommit connection (VACUUM refuses transactions) with a lock timeout of `wait`,
    collecting the details of the server's notices; both undone before it goes back to the
    pool."""
    conn = pooled.execution_options(isolation_level="AUTOCOMMIT")
    notices: list[str] = []
    driver: Any = conn.connection.driver_connection

    def collect(diagnostic: Any) -> None:
        notices.append(diagnostic.message_detail or "")

    driver.add_notice_handler(collect)
    conn.exec_driver_sql(f"SET lock_timeout = {max(1, int(wait * 1000))}")
    try:
        yield conn, notices
    finally:
        driver.remove_notice_handler(collect)
        if not conn.invalidated:
            conn.exec_driver_sql("RESET lock_timeout")


def _vacuum_full(conn: Connection, notices: list[str], table: str, wait: float) -> TableScrub:
    regclass = conn.execute(sa.text("SELECT to_regclass(:name)::oid"),
                            {"name": _quote(conn, table)}).scalar()
    if regclass is None:
        return TableScrub(table, "not present: nothing to scrub", complete=True)
    filenode = sa.text("SELECT pg_relation_filenode(:oid)")
    before = conn.execute(filenode, {"oid": regclass}).scalar()
    notices.clear()
    try:
        conn.exec_driver_sql(f"VACUUM (FULL, VERBOSE) {_quote(conn, table)}")
    except DBAPIError as error:
        if _sqlstate(error) != _LOCK_NOT_AVAILABLE:
            raise
        return TableScrub(table, "not rewritten", complete=False,
                          why_not=f"another transaction held the table for more than "
                                  f"{wait:g} s; run scrub again")
    if conn.execute(filenode, {"oid": regclass}).scalar() == before:
        return TableScrub(table, "not rewritten: VACUUM FULL skipped it", complete=False,
                          why_not="only the table's owner or a superuser may VACUUM FULL it")
    kept = [int(match.group(1)) for detail in notices if (match := _KEPT.search(detail))]
    if not kept:
        return TableScrub(table, "rewritten by VACUUM FULL", complete=False,
                          why_not="could not read whether VACUUM kept old row versions "
                                  "(the server's messages are not in English)")
    if sum(kept):
        return TableScrub(table, "rewritten by VACUUM FULL", complete=False,
                          why_not=f"{sum(kept)} old row version(s) kept: a transaction that "
                                  "began before they were replaced is still open; run scrub "
                                  "again when it has ended")
    return TableScrub(table, "rewritten by VACUUM FULL: no old row versions kept",
                      complete=True)


def _quote(conn: Connection, table: str) -> str:
    return conn.dialect.identifier_preparer.quote(table)


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)
