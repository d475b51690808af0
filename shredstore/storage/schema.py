"""Every table shredstore keeps in a database, in one `MetaData`, and the triggers by which the
database keeps the event log append-only.

The event log's tables (`LOG_TABLES`: events, the subject index, snapshots, settings) are
created by `install`; the read side's (`CHECKPOINTS` of projections, `PROCESSED` markers of
idempotent consumers) by `install_checkpoints` and `install_processed`, in whichever database
holds the read models. Table names are written here only: the hot-path SQL
(`shredstore.storage.statements`) and the triggers are built from these objects.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shredstore.errors import ConfigurationError

__all__ = [
    "CHECKPOINTS",
    "EVENTS",
    "LEDGER_KEY",
    "LOG_TABLES",
    "PROCESSED",
    "RELAYS",
    "SAGA_DEADLINES",
    "SAGA_RUNNERS",
    "SETTINGS",
    "SNAPSHOTS",
    "SUBJECTS",
    "install",
    "install_checkpoints",
    "install_processed",
    "install_relays",
    "install_saga_runners",
    "metadata",
    "missing_triggers",
    "restore_triggers",
    "table_lock_key",
]

metadata = sa.MetaData()
"""The one `MetaData` of shredstore's tables (keyvault keeps its own: it is a package apart)."""

EVENTS = sa.Table(
    "shredstore_events",
    metadata,
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=False),
    sa.Column("stream_id", sa.Text(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("event_id", sa.Uuid(), nullable=False),
    sa.Column("event_type", sa.Text(), nullable=False),
    sa.Column("schema_version", sa.Integer(), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("metadata", sa.Text(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("personal", sa.Text(), nullable=True),
    sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.Column("subjects", sa.Text(), nullable=True),
    sa.Column("mac", sa.LargeBinary(32), nullable=True),
    sa.UniqueConstraint("stream_id", "version", name="shredstore_events_stream_version"),
    sa.UniqueConstraint("event_id", name="shredstore_events_event_id"),
)

SUBJECTS = sa.Table(
    "shredstore_event_subjects",
    metadata,
    sa.Column("subject_id", sa.Text(), primary_key=True),
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=False),
    sqlite_with_rowid=False,
)
"""The subject index: which events name which subjects, so a subject's events are found
without a scan. It holds subject ids (opaque identifiers) and positions, never personal data.

On SQLite a ``WITHOUT ROWID`` table: its rows are its primary key's b-tree, so an append writes
one page for its entries instead of two (the table's and its key's); databases created before
keep a table with a rowid, which reads and writes the same."""

SNAPSHOTS = sa.Table(
    "shredstore_snapshots",
    metadata,
    sa.Column("stream_id", sa.Text(), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("type_name", sa.Text(), nullable=False),
    sa.Column("schema_version", sa.Integer(), nullable=False),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("personal", sa.Text(), nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("mac", sa.LargeBinary(32), nullable=True),
)
"""Snapshots of aggregate state: a cache of a replay, sealed like events, never the truth."""

SETTINGS = sa.Table(
    "shredstore_settings",
    metadata,
    sa.Column("name", sa.Text(), primary_key=True),
    sa.Column("value", sa.LargeBinary(), nullable=False),
)
"""Values the store makes once, when its tables are created, and keeps (see `LEDGER_KEY`)."""

CHECKPOINTS = sa.Table(
    "shredstore_projections",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("tables", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
"""One row per projection: how far it has applied the log, and the tables it writes."""

PROCESSED = sa.Table(
    "shredstore_processed",
    metadata,
    sa.Column("consumer", sa.Text(), primary_key=True),
    sa.Column("event_id", sa.Uuid(), primary_key=True),
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
)
"""The markers of processed events, one per (consumer, event id). It holds no personal data.
Exposed so that a migration tool can create it where the application's role may not."""

def _leased_positions(name: str) -> sa.Table:
    """A table of named positions with leases (`shredstore.projections.lease`)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
    )


SAGA_RUNNERS = _leased_positions("shredstore_saga_runners")
"""One row per saga runner name: the log position up to which it has handled every event
(each event's effect is deduplicated in `PROCESSED`, so a position that lags is safe), and
which process runs it now (`owner`, until `lease_until`)."""

RELAYS = _leased_positions("shredstore_relays")
"""One row per relay name: the log position up to which the broker confirmed every event (the
relay's checkpoint: the log itself is the outbox), and which process relays now."""

SAGA_DEADLINES = sa.Table(
    "shredstore_saga_deadlines",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("saga", sa.String(200), nullable=False),
    sa.Column("saga_id", sa.Text(), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.UniqueConstraint("saga", "saga_id", "name", name="shredstore_saga_deadlines_one"),
)
"""The sagas' pending deadlines, one per (saga, saga id, name): written, replaced and removed
in the steps' transactions, fired once. It holds no personal data (a saga's id is a
correlation id, never personal)."""

LOG_TABLES = (EVENTS, SUBJECTS, SNAPSHOTS, SETTINGS)
"""The tables of the event log itself, created by `install`."""

LEDGER_KEY = "ledger-event-id-key.v1"
"""A random key for the erasure ledger's event ids (`shredstore.erasure.ledger_event_id`): a
keyed hash of the subject id, so that a copy of such an id outside this database names no one."""

_E = EVENTS.name  # the DDL below is built from it: names, never values
_REFUSAL = _E + " is append-only: stored events cannot be {verb}"

_SQLITE_TRIGGERS = {
    f"{_E}_refuse_{op}": (
        f"CREATE TRIGGER IF NOT EXISTS {_E}_refuse_{op} "
        f"BEFORE {op.upper()} ON {_E} "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL.format(verb=verb)}'); END"
    )
    for op, verb in (("update", "updated"), ("delete", "deleted"))
}

_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION shredstore_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: %% is refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'Events are never changed; erase a subject to redact its personal data.';
END
$$
"""

_POSTGRES_TRIGGERS = {
    f"{_E}_refuse_change": (
        f"CREATE OR REPLACE TRIGGER {_E}_refuse_change "
        f"BEFORE UPDATE OR DELETE ON {_E} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shredstore_refuse_change()"
    ),
    f"{_E}_refuse_truncate": (
        f"CREATE OR REPLACE TRIGGER {_E}_refuse_truncate "
        f"BEFORE TRUNCATE ON {_E} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shredstore_refuse_change()"
    ),
}

_POSTGRES_NOTIFY = (
    """CREATE OR REPLACE FUNCTION shredstore_notify_append() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('shredstore_' || TG_RELID::text, '');
    RETURN NULL;
END $$""",
    f"CREATE OR REPLACE TRIGGER {_E}_notify AFTER INSERT ON {_E} "
    "FOR EACH STATEMENT EXECUTE FUNCTION shredstore_notify_append()",
)
"""Wakes live subscribers when an append commits (a hint only: they read by position)."""

_INSTALL_LOCK = (0x5348, 0)
"""Advisory lock (namespace, id) that serialises concurrent installs on PostgreSQL."""

_PROCESSED_INSTALL_LOCK = (0x5348, 1)
"""The same for the markers table of idempotent consumers (`install_processed`)."""

_APPEND_LOCK_NAMESPACE = 0x5348  # "SH": keeps our two-int keys apart from other users' locks


def install(connection: Connection) -> None:
    """Create the tables if missing, with their triggers. Idempotent; call in a transaction.

    The triggers of a table that already exists are left as they are: if they were dropped,
    that is evidence for `verify` to report, not something to paper over on every start.
    """
    _serialise_installs(connection)
    if not sa.inspect(connection).has_table(EVENTS.name):
        metadata.create_all(connection, tables=LOG_TABLES)
        _create_triggers(connection)
    else:
        _refuse_older_format(connection)
        metadata.create_all(connection, tables=LOG_TABLES)
    if connection.execute(sa.select(SETTINGS.c.name).where(
            SETTINGS.c.name == LEDGER_KEY)).first() is None:
        connection.execute(SETTINGS.insert().values(name=LEDGER_KEY,
                                                    value=secrets.token_bytes(32)))
    if connection.dialect.name == "postgresql" and not connection.execute(sa.text(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass(:table) "
            "AND tgname = :trigger"), {"table": _E, "trigger": f"{_E}_notify"}).first():
        for ddl in _POSTGRES_NOTIFY:
            connection.exec_driver_sql(ddl)


def install_checkpoints(connection: Connection) -> None:
    """Create the projections' checkpoint table if missing; call in a transaction."""
    metadata.create_all(connection, tables=[CHECKPOINTS], checkfirst=True)


def install_processed(connection: Connection) -> None:
    """Create the idempotent consumers' markers table if missing; call in a transaction.

    Concurrent installs are serialised on PostgreSQL, where CREATE TABLE IF NOT EXISTS can
    still collide in the catalogue.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:a, :b)"),
                           {"a": _PROCESSED_INSTALL_LOCK[0], "b": _PROCESSED_INSTALL_LOCK[1]})
    metadata.create_all(connection, tables=[PROCESSED], checkfirst=True)


def install_saga_runners(connection: Connection) -> None:
    """Create the saga runners' position and deadline tables and the markers table if
    missing; call in a transaction."""
    install_processed(connection)
    metadata.create_all(connection, tables=[SAGA_RUNNERS, SAGA_DEADLINES], checkfirst=True)


def install_relays(connection: Connection) -> None:
    """Create the relays' table if missing; call in a transaction."""
    metadata.create_all(connection, tables=[RELAYS], checkfirst=True)


def _refuse_older_format(connection: Connection) -> None:
    """Refuse tables written before rows carried their subjects and authenticators.

    There is no in-place upgrade: the log is immutable, and an authenticator added later
    would vouch for whatever the rows hold by then.
    """
    inspector = sa.inspect(connection)
    for table in (EVENTS, SNAPSHOTS):
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - present)
        if missing:
            raise ConfigurationError(
                f"this database holds an event store of an earlier format ({table.name} has no "
                f"{', '.join(missing)} column): this version of shredstore cannot open it, and "
                "there is no in-place upgrade: read its events with the version that wrote it "
                "and append them to a new store")


def restore_triggers(connection: Connection) -> list[str]:
    """Re-create the immutability triggers that are missing; return their names."""
    _serialise_installs(connection)
    missing = missing_triggers(connection)
    if missing:
        _create_triggers(connection)
    return missing


def _serialise_installs(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Concurrent CREATE ... IF NOT EXISTS can still collide in the catalogue.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:a, :b)"),
                           {"a": _INSTALL_LOCK[0], "b": _INSTALL_LOCK[1]})


def _create_triggers(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_POSTGRES_FUNCTION)
        for name, ddl in _POSTGRES_TRIGGERS.items():
            connection.exec_driver_sql(ddl)
            # CREATE OR REPLACE keeps a trigger disabled if someone disabled it.
            connection.exec_driver_sql(f"ALTER TABLE {_E} ENABLE TRIGGER {name}")
    else:
        for ddl in _SQLITE_TRIGGERS.values():
            connection.exec_driver_sql(ddl)


def missing_triggers(connection: Connection) -> list[str]:
    """Names of the immutability triggers that are not in place on the events table."""
    if connection.dialect.name == "postgresql":
        expected = _POSTGRES_TRIGGERS
        rows = connection.execute(sa.text(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = to_regclass(:table) AND tgenabled <> 'D'"
        ), {"table": _E})
    else:
        expected = _SQLITE_TRIGGERS
        rows = connection.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"
        ), {"table": _E})
    present = {name for (name,) in rows}
    return sorted(set(expected) - present)


def table_lock_key(connection: Connection) -> tuple[int, int]:
    """The advisory-lock key that serialises appends to this events table on PostgreSQL.

    It is derived from the table's oid, so event logs in different schemas of one database
    do not wait for each other.
    """
    oid = connection.execute(sa.text("SELECT to_regclass(:table)::oid"),
                             {"table": _E}).scalar_one()
    as_int4 = int(oid) - 2**32 if int(oid) >= 2**31 else int(oid)
    return _APPEND_LOCK_NAMESPACE, as_int4
