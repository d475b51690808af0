"""Raw SQL that changes the events table behind shredstore's back, as an attacker would.

The contract suites use it to check what `EventStore.verify` and the reads report; it needs
rights on the database that the store's own code never uses (dropping triggers).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shredstore.storage import schema
from shredstore.storage.chain import GENESIS, chain_hash

__all__ = [
    "EVENTS",
    "column",
    "drop_triggers",
    "edit",
    "execute",
    "forge_row",
    "raw_engine",
    "rechain",
    "shift_down",
    "shift_up",
    "swap",
]

EVENTS = "shredstore_events"


def raw_engine(url: str) -> Engine:
    """An engine of plain SQLAlchemy on `url`, without any of shredstore's settings."""
    return sa.create_engine(url)


def drop_triggers(engine: Engine) -> None:
    """Remove the immutability triggers of the events table."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ALTER TABLE {EVENTS} DISABLE TRIGGER USER")
        else:
            for name in ("shredstore_events_refuse_update", "shredstore_events_refuse_delete"):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")


def execute(engine: Engine, sql: str, **params: object) -> None:
    """Run one statement with bound `params` in a transaction of its own."""
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def swap(engine: Engine, a: int, b: int) -> None:
    """Exchange the positions of two rows."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {EVENTS} SET position = -position "
                             "WHERE position IN (:a, :b)"), {"a": a, "b": b})
        conn.execute(sa.text(f"UPDATE {EVENTS} SET position = :b WHERE position = -:a"),
                     {"a": a, "b": b})
        conn.execute(sa.text(f"UPDATE {EVENTS} SET position = :a WHERE position = -:b"),
                     {"a": a, "b": b})


def shift_up(engine: Engine, start: int) -> None:
    """Move every row from `start` on one position up, leaving `start` free."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {EVENTS} SET position = -(position + 1) "
                             "WHERE position >= :s"), {"s": start})
        conn.execute(sa.text(f"UPDATE {EVENTS} SET position = -position WHERE position < 0"))


def shift_down(engine: Engine, start: int) -> None:
    """Move every row from `start` on one position down (closing a gap before `start`)."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {EVENTS} SET position = -(position - 1) "
                             "WHERE position >= :s"), {"s": start})
        conn.execute(sa.text(f"UPDATE {EVENTS} SET position = -position WHERE position < 0"))


def forge_row(engine: Engine, position: int) -> None:
    """Insert a well-formed row at `position`, chained to the row before it."""
    with engine.begin() as conn:
        prev = conn.execute(sa.text(f"SELECT hash FROM {EVENTS} WHERE position = :p"),
                            {"p": position - 1}).scalar_one()
        fields = {
            "stream_id": "intruder", "version": 1, "event_id": uuid.uuid4(),
            "event_type": "test.Noted", "schema_version": 1,
            "recorded_at": datetime.now(UTC), "metadata": "{}",
            "payload": '{"text":"forged","number":0}', "personal": None,
            "subjects": None, "mac": None,
        }
        digest = chain_hash(prev, **fields)  # type: ignore[arg-type]
        conn.execute(schema.EVENTS.insert(), [{**fields, "position": position, "prev_hash": prev,
                                       "hash": digest}])


def edit(engine: Engine, position: int, **values: object) -> None:
    """Set columns of the event at `position` (triggers must be gone)."""
    with engine.begin() as conn:
        conn.execute(schema.EVENTS.update().where(schema.EVENTS.c.position == position)
                     .values(**values))


def column(engine: Engine, position: int, name: str) -> object:
    """One stored column of the event at `position`."""
    with engine.begin() as conn:
        return conn.execute(sa.select(schema.EVENTS.c[name])
                            .where(schema.EVENTS.c.position == position)).scalar_one()


def rechain(engine: Engine) -> None:
    """Recompute every row's chain hashes from its stored content, as an attacker who edited
    rows would, so that verify's walk of the chain finds nothing."""
    events = schema.EVENTS
    with engine.begin() as conn:
        rows = conn.execute(sa.select(events).order_by(events.c.position)).all()
        prev = GENESIS
        for row in rows:
            moment = row.recorded_at
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
            digest = chain_hash(
                prev, stream_id=row.stream_id, version=row.version, event_id=row.event_id,
                event_type=row.event_type, schema_version=row.schema_version,
                recorded_at=moment, metadata=row.metadata, payload=row.payload,
                personal=row.personal, subjects=row.subjects,
                mac=bytes(row.mac) if row.mac is not None else None)
            conn.execute(events.update().where(events.c.position == row.position)
                         .values(prev_hash=prev, hash=digest))
            prev = digest
