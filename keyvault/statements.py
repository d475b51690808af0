"""The vault's statements on its hot paths, built once.

Most are SQLAlchemy Core over the tables of `keyvault.schema`, compiled once and cached by
SQLAlchemy. The check an append makes (`erased_among`) is written out for the driver: on that
path, compiling its IN list would cost more than the query. It is built from the schema's
names and placeholder marks only, never from values.
"""

# ruff: noqa: S608  (SQL built from the schema's names and placeholder marks only)

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from keyvault import schema
from keyvault.engine import ask_rows, driver_rows
from keyvault.errors import TamperedError, VaultConfigurationError

__all__ = [
    "ERASURES",
    "LOAD_SERVICE_KEY",
    "LoadedKey",
    "erased_among",
    "insert_keys",
    "ask_latest_erasure",
    "erasures_from",
    "latest_erasure",
    "load_keys",
    "ask_load_keys",
    "ask_master_key_ids",
    "insert_new",
]

_S = schema.SUBJECTS
_ST = schema.STATE
_K = schema.SERVICE_KEYS

ERASURES = sa.select(_ST.c.erasures).where(_ST.c.id == 1)
"""The erasure counter (an erasure locks it first: ``.with_for_update()``)."""


def latest_erasure(connection: Connection) -> tuple[int, str | None, datetime | None]:
    """The latest erasure: the counter and the tombstone it numbers (see `keyvault.cache`),
    read on the driver's cursor in the caller's transaction: every keyring asks it, and
    SQLAlchemy's execution of a select costs several times the query itself."""
    return ask_latest_erasure(connection)()


def ask_latest_erasure(connection: Connection
                       ) -> Callable[[], tuple[int, str | None, datetime | None]]:
    """`latest_erasure` in two steps: the query is sent now, and the function returned reads
    its answer. Queries sent in between share its round trip where the connection is in
    psycopg's pipeline mode (a read's erasure check on PostgreSQL)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_LATEST_ERASURE_SQL)
    except BaseException:
        cursor.close()
        raise

    def answer() -> tuple[int, str | None, datetime | None]:
        try:
            found = cursor.fetchall()
        finally:
            cursor.close()
        if len(found) != 1:
            raise VaultConfigurationError(
                "the vault's state row is missing or repeated: this database holds no key "
                "vault, or one that was altered")
        erasures, subject_id, erased_at = found[0]
        return int(erasures), subject_id, _stored_time(erased_at)

    return answer


def erasures_from(connection: Connection, number: int
                  ) -> list[tuple[str, int, datetime | None]]:
    """(subject id, erasure number, erased at) of every erasure numbered `number` or
    later, on the driver's cursor in the caller's transaction (a read's erasure check asks it
    when erasures happened since its last check)."""
    found = driver_rows(connection, f"{_ERASURES_FROM_SQL} {_mark(connection)}", (number,))
    return [(subject_id, int(seq), _stored_time(erased_at))
            for subject_id, seq, erased_at in found]


class LoadedKey(NamedTuple):
    """A subject's row as `load_keys` reads it: what its key is loaded from."""

    subject_id: str
    state: str
    key_version: int | None
    wrapped_key: bytes | None
    wrapped_by: str | None
    erased_at: datetime | None


def load_keys(connection: Connection, subject_ids: Sequence[str]) -> list[LoadedKey]:
    """The rows of `subject_ids`, on the driver's cursor in the caller's transaction (a
    subject's first append and every page of a read with uncached keys ask it)."""
    return ask_load_keys(connection, subject_ids)()


def ask_load_keys(connection: Connection, subject_ids: Sequence[str]
                  ) -> Callable[[], list[LoadedKey]]:
    """`load_keys` in two steps: the queries are sent now, and the function returned reads
    their answers (in psycopg's pipeline mode, statements sent in between share their round
    trip)."""
    mark = _mark(connection)
    answers = [ask_rows(connection, f"{_LOAD_KEYS_SQL} ({', '.join([mark] * len(part))})",
                         part)
               for part in (subject_ids[start:start + _IN_LIST]
                            for start in range(0, len(subject_ids), _IN_LIST))]

    def answer() -> list[LoadedKey]:
        return [LoadedKey(subject_id, state, version,
                          bytes(wrapped) if isinstance(wrapped, memoryview) else wrapped, by,
                          _stored_time(erased))
                for rows in answers
                for subject_id, state, version, wrapped, by, erased in rows()]

    return answer


def ask_master_key_ids(connection: Connection
                       ) -> Callable[[], tuple[str | None, str | None]]:
    """The vault's master key id and the one it is rotating to, from its state row, which
    stays locked (shared, PostgreSQL) until the caller's transaction ends: an erasure takes it
    exclusively, so a key's first store and an erasure cannot interleave. In two steps (see
    `ask_load_keys`): the row is locked when the query runs, before any statement sent after
    it; the function returned reads the ids."""
    postgres = connection.dialect.name == "postgresql"
    rows = ask_rows(connection, _MASTER_KEY_IDS_SQL + (" FOR SHARE" if postgres else ""))

    def answer() -> tuple[str | None, str | None]:
        found = rows()
        if len(found) != 1:
            raise VaultConfigurationError(
                "the vault's state row is missing or repeated: this database holds no key "
                "vault, or one that was altered")
        master_key_id, rotating_to = found[0]
        return master_key_id, rotating_to

    return answer


def insert_keys(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new subjects' rows (`keyvault.keys.NewKey.row`) where no row exists, on the
    driver's cursor in the caller's transaction; a subject another process stored first keeps
    its row."""
    mark = _mark(connection)
    postgres = mark == "%s"
    sql = (f"INSERT INTO {_S.name} ({', '.join(_NEW_KEY_COLUMNS)}) "
           f"VALUES ({', '.join([mark] * len(_NEW_KEY_COLUMNS))}) "
           "ON CONFLICT (subject_id) DO NOTHING")
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, [
            tuple(row[name] if name != "created_at" or postgres else _sqlite_time(row[name])
                  for name in _NEW_KEY_COLUMNS) for row in rows])
    finally:
        cursor.close()


def _mark(connection: Connection) -> str:
    return "%s" if connection.dialect.name == "postgresql" else "?"


def _stored_time(value: Any) -> datetime | None:
    """A stored time as SQLAlchemy's DateTime hands it back (SQLite keeps naive UTC text);
    `TamperedError` for a value no vault writes (only an edit of the table stores one)."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise altered_row() from None


def altered_row() -> TamperedError:
    """The error for a row of the vault's subjects table holding a value no vault writes (a
    time that does not parse, text where a number belongs): only an edit of the table stores
    one. It names no subject."""
    return TamperedError("a row of the key vault's subjects table holds a value no vault "
                         "writes: the table was altered (restore the vault from a backup)")


def _sqlite_time(moment: datetime) -> str:
    """A time in SQLAlchemy's SQLite DateTime format (its UTC fields, without an offset)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ",
                                                                 timespec="microseconds")


_IN_LIST = 500
_NEW_KEY_COLUMNS = ("subject_id", "state", "key_version", "wrapped_key", "wrapped_by",
                    "key_fingerprint", "created_at")
_LOAD_KEYS_SQL = (f"SELECT subject_id, state, key_version, wrapped_key, wrapped_by, erased_at "
                  f"FROM {_S.name} WHERE subject_id IN")
_ERASURES_FROM_SQL = (f"SELECT subject_id, erasure_seq, erased_at FROM {_S.name} "
                      "WHERE erasure_seq >=")
_MASTER_KEY_IDS_SQL = f"SELECT master_key_id, rotating_to FROM {_ST.name}"
_LATEST_ERASURE_SQL = (
    f"SELECT st.erasures, su.subject_id, su.erased_at FROM {_ST.name} st "
    f"LEFT OUTER JOIN {_S.name} su ON su.erasure_seq = st.erasures WHERE st.id = 1")

LOAD_SERVICE_KEY = sa.select(_K.c.wrapped_key, _K.c.wrapped_by)
"""A service key's wrapped form (add ``.where(...)``)."""


def erased_among(count: int, *, postgres: bool) -> str:
    """Driver SQL for which of `count` subject ids (the parameters) are erased.

    PostgreSQL: every one of the subjects' rows, erased or not, with its state, locked FOR
    SHARE, so that an erasure of one of them waits for the caller's transaction. SQLite: the
    erased ones (a write transaction, begun IMMEDIATE, already excludes every other writer).
    """
    marks = ", ".join(["%s" if postgres else "?"] * count)
    if postgres:
        return (f"SELECT subject_id, state FROM {_S.name} WHERE subject_id IN ({marks}) "
                "FOR SHARE")
    return (f"SELECT subject_id FROM {_S.name} WHERE state = 'erased' "
            f"AND subject_id IN ({marks})")


def insert_new(connection: Connection, table: sa.Table) -> Any:
    """An INSERT into `table` in the connection's dialect, so that ``on_conflict_do_nothing``
    can be added (a key another process stored first is kept)."""
    return (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(table)
