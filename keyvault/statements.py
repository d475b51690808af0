"""The vault's statements on its hot paths, built once.

Most are SQLAlchemy Core over the tables of `keyvault.schema`, compiled once and cached by
SQLAlchemy. The check an append makes (`erased_among`) is written out for the driver: on that
path, compiling its IN list would cost more than the query. It is built from the schema's
names and placeholder marks only, never from values.
"""

# ruff: noqa: S608  (SQL built from the schema's names and placeholder marks only)

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from keyvault import schema

__all__ = [
    "ERASURES",
    "LATEST_ERASURE",
    "LOAD_KEYS",
    "LOAD_SERVICE_KEY",
    "erased_among",
    "insert_new",
]

_S = schema.SUBJECTS
_ST = schema.STATE
_K = schema.SERVICE_KEYS

LOAD_KEYS = sa.select(_S.c.subject_id, _S.c.state, _S.c.key_version, _S.c.wrapped_key,
                      _S.c.wrapped_by, _S.c.erased_at)
"""The columns a key is loaded from (add ``.where(...)``)."""

ERASURES = sa.select(_ST.c.erasures).where(_ST.c.id == 1)
"""The erasure counter (an erasure locks it first: ``.with_for_update()``)."""

LATEST_ERASURE = (sa.select(_ST.c.erasures, _S.c.subject_id, _S.c.erased_at)
                  .select_from(_ST.outerjoin(_S, _S.c.erasure_seq == _ST.c.erasures))
                  .where(_ST.c.id == 1))
"""The latest erasure: the counter and the tombstone it numbers (see `keyvault.cache`)."""

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
