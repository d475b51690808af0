"""The vault's tables.

``keyvault_subjects`` holds one row per subject that ever had a key or was erased: the wrapped
data key while the subject is active, the tombstone (time, request id, reason) once erased. One
row for both is what makes "never resurrect" simple: a key can only be created where no row
exists, and an erased row never becomes active again.

``keyvault_service_keys`` holds the vault's service keys: secrets that belong to the
application rather than to a subject (shredstore authenticates its stored rows with one),
wrapped by the master key like the data keys, re-wrapped by a rotation, and never touched by an
erasure.

``keyvault_state`` is a single row: the id of the master key that wraps the keys, the target of
a rotation in progress, and the erasure counter that other processes check to drop cached keys.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

__all__ = ["SERVICE_KEYS", "STATE", "SUBJECTS", "install"]

metadata = sa.MetaData()

SUBJECTS = sa.Table(
    "keyvault_subjects",
    metadata,
    sa.Column("subject_id", sa.Text(), primary_key=True),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("key_version", sa.Integer(), nullable=True),
    sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
    sa.Column("wrapped_by", sa.Text(), nullable=True),
    sa.Column("key_fingerprint", sa.Text(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("erasure_seq", sa.BigInteger(), nullable=True),
    sa.Column("request_id", sa.Text(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('active', 'erased')", name="keyvault_subjects_state"),
    sa.CheckConstraint("(state = 'active') = (wrapped_key IS NOT NULL)",
                       name="keyvault_subjects_key_only_when_active"),
    # Only erased subjects have a number: active ones are not in the index at all.
    sa.Index("keyvault_subjects_erasure_seq", "erasure_seq", unique=True,
             sqlite_where=sa.text("erasure_seq IS NOT NULL"),
             postgresql_where=sa.text("erasure_seq IS NOT NULL")),
    sqlite_with_rowid=False,
)
"""A subject's key, or its tombstone. On SQLite a table ``WITHOUT ROWID`` (its rows are its
key's b-tree), and its erasure numbers a partial index: a new subject's key is one b-tree
insert, not three (table, key and erasure number). Vaults made before keep a rowid table and a
unique constraint on the number; both work the same."""

SERVICE_KEYS = sa.Table(
    "keyvault_service_keys",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
    sa.Column("wrapped_by", sa.Text(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

STATE = sa.Table(
    "keyvault_state",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("erasures", sa.BigInteger(), nullable=False),
    sa.Column("master_key_id", sa.Text(), nullable=True),
    sa.Column("rotating_to", sa.Text(), nullable=True),
    sa.CheckConstraint("id = 1", name="keyvault_state_single_row"),
)

_INSTALL_LOCK = (0x4B56, 0)  # "KV": serialises concurrent installs on PostgreSQL


def install(connection: Connection) -> None:
    """Create the tables and the state row if missing. Idempotent; call in a transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:a, :b)"),
                           {"a": _INSTALL_LOCK[0], "b": _INSTALL_LOCK[1]})
    metadata.create_all(connection)
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(dialect.insert(STATE).values(id=1, erasures=0).on_conflict_do_nothing())
