"""The hot path's SQL and the stored formats it reads and writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from shredstore.storage import schema
from shredstore.storage.engine import create_engine, is_postgres
from shredstore.storage.formats import Formats, as_uuid, parse_subjects, subjects_text
from shredstore.storage.snapshots import SnapshotRow, SnapshotTable, snapshot_row
from shredstore.storage.statements import (
    COLUMNS,
    POSITION,
    READ_COLUMNS,
    VERSION,
    Statements,
    split_snapshot,
)


def statements_of(sql: Statements) -> dict[str, str]:
    """Every statement `sql` holds or builds, by name."""
    # COPY cannot be prepared (and is PostgreSQL's own): the event-store contract's bulk
    # batches run it on PostgreSQL. The index entries as arrays are PostgreSQL's own too:
    # empty on SQLite.
    assert bool(sql.insert_subject_arrays) == (sql.mark == "%s")
    built = {name: value for name, value in vars(sql).items()
             if isinstance(value, str) and name != "mark" and not name.startswith(("_", "copy_"))
             and value}
    counts, subjects = sql.scope_counts([("stream_id", "="), ("recorded_at", ">=")])
    return {**built, "typed_after": sql.typed_after(2),
            "event_ids_among": sql.event_ids_among(3),
            "window": sql.window(types=2, stream_prefix=True),
            "plain_window": sql.window(types=None, stream_prefix=False),
            "scope_counts": counts, "scope_subjects": subjects}


def test_every_statement_is_valid_sql_on_each_backend(any_url: str) -> None:
    """Each statement prepares on the backend it is built for (the schema installed)."""
    engine = create_engine(any_url)
    try:
        with engine.begin() as conn:
            schema.install(conn)
        postgres = is_postgres(engine)
        for name, statement in statements_of(Statements("%s" if postgres else "?")).items():
            if name == "lock" and not postgres:
                continue
            with engine.connect() as conn:
                if postgres:  # numbered parameters, each typed by where it is used
                    parts = statement.split("%s")
                    numbered = "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1))
                    conn.exec_driver_sql(f"PREPARE probe AS {numbered}{parts[-1]}")
                    conn.exec_driver_sql("DEALLOCATE probe")
                else:
                    conn.exec_driver_sql(f"EXPLAIN {statement}",
                                         tuple([None] * statement.count("?")))
                conn.rollback()
    finally:
        engine.dispose()


def test_scope_counts_take_only_known_columns_and_operators() -> None:
    """What goes into the text of a count is a column name and an operator from fixed sets;
    values only ever go in as parameters."""
    sql = Statements("?")
    for bad in [("stream_id; DROP TABLE x", "="), ("stream_id", "LIKE"), ("hash", "=")]:
        with pytest.raises(ValueError, match="no condition"):
            sql.scope_counts([bad])


def test_an_append_writes_every_column_in_the_schemas_order() -> None:
    """The insert names every column of the events table, reads the read columns first."""
    assert {column.name for column in COLUMNS} == set(schema.EVENTS.columns.keys())
    assert COLUMNS[:len(READ_COLUMNS)] == READ_COLUMNS


def test_the_hot_path_formats_are_sqlalchemys(any_url: str) -> None:
    """A row written through SQLAlchemy's types reads back through the hot path's formats as
    written, and the formats' parameters are what SQLAlchemy stores."""
    engine = create_engine(any_url)
    event_id = uuid.uuid4()
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    row = {"position": 1, "stream_id": "s", "version": 1, "event_id": event_id,
           "event_type": "t", "schema_version": 1, "recorded_at": moment, "metadata": "{}",
           "payload": "{}", "personal": None, "prev_hash": bytes(32), "hash": bytes(range(32)),
           "subjects": subjects_text({"b", "a"}), "mac": b"m" * 32}
    try:
        with engine.begin() as conn:
            schema.install(conn)
            conn.execute(schema.EVENTS.insert().values(**row))
        postgres = is_postgres(engine)
        formats = Formats(postgres=postgres)
        sql = Statements("%s" if postgres else "?")
        with engine.connect() as conn:
            raw = conn.exec_driver_sql(sql.after_with_hashes, (0, 10)).one()
            by_params = conn.exec_driver_sql(
                f"SELECT count(*) FROM {schema.EVENTS.name} WHERE event_id = {sql.mark} "
                f"AND recorded_at = {sql.mark}",
                (formats.event_id(event_id), formats.time(moment))).scalar_one()
        stored = formats.row(raw)
        assert stored._asdict() == {**row, "subjects": '["a","b"]'}
        assert as_uuid(raw[3]) == event_id
        assert by_params == 1
    finally:
        engine.dispose()


def test_a_stream_and_its_newest_snapshot_are_one_statement(any_url: str) -> None:
    """`stream_with_snapshot` gives the newest snapshot of the asked type, whole, and the
    events after it (all of them without one), read by the same formats as any read."""
    engine = create_engine(any_url)
    postgres = is_postgres(engine)
    formats = Formats(postgres=postgres)
    sql = Statements("%s" if postgres else "?")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    events = [{"position": version + 10, "stream_id": stream, "version": version,
               "event_id": uuid.uuid4(), "event_type": "t", "schema_version": 1,
               "recorded_at": moment, "metadata": "{}", "payload": f'{{"n":{version}}}',
               "personal": None, "prev_hash": bytes(32), "hash": bytes(32), "subjects": None,
               "mac": None}
              for stream in ("s", "other") for version in range(1, 6)]
    for position, event in enumerate(events, start=1):
        event["position"] = position
    snapshots = [SnapshotRow("s", version, kind, 2, f'{{"v":{version}}}', personal, b"m" * 32)
                 for version, kind, personal in ((2, "A", "[]"), (3, "A", None), (4, "B", None))]
    try:
        with engine.begin() as conn:
            schema.install(conn)
            conn.execute(schema.EVENTS.insert(), events)
        table = SnapshotTable(engine)
        for row in snapshots:
            table.save(row)
        with engine.connect() as conn:
            def read(stream: str, kind: str, size: int = 10
                     ) -> tuple[SnapshotRow | None, list[int]]:
                raw = conn.exec_driver_sql(sql.stream_with_snapshot,
                                           (stream, kind, stream, stream, kind, size)).all()
                found, rows = split_snapshot(raw)
                versions = [formats.row(row).version for row in rows]
                return (None if found is None else snapshot_row(found)), versions

            assert read("s", "A") == (snapshots[1], [4, 5])
            assert read("s", "B") == (snapshots[2], [5])
            assert read("s", "C") == (None, [1, 2, 3, 4, 5])
            assert read("s", "C", size=2) == (None, [1, 2])
            assert read("other", "A") == (None, [1, 2, 3, 4, 5])
            assert read("none", "A") == (None, [])
    finally:
        engine.dispose()


@given(st.permutations([None, *range(1, 8)]))
def test_a_snapshot_is_taken_out_of_its_rows_in_any_order(order: list[int | None]) -> None:
    """SQL does not order a union's rows: the snapshot's row is found wherever it is, and the
    events come back by version."""
    def row(version: int | None) -> tuple[object, ...]:
        if version is None:  # a snapshot in event columns, as the statement puts it
            return (None, "s", 4, None, "A", 2, None, None, "{}", None, None, b"m")
        return (version + 100, "s", version, "id", "t", 1, 0, "{}", "{}", None, None, None)

    snapshot, events = split_snapshot([row(version) for version in order])
    assert snapshot == ("s", 4, "A", 2, "{}", None, b"m")
    assert [event[VERSION] for event in events] == list(range(1, 8))
    assert all(event[POSITION] is not None for event in events)


@given(st.frozensets(st.text(min_size=1, max_size=8), max_size=5))
def test_the_subjects_column_round_trips(subjects: frozenset[str]) -> None:
    """The stored subjects column reads back as the subjects written (none: NULL)."""
    text = subjects_text(subjects)
    assert (text is None) == (not subjects)
    assert parse_subjects(text) == subjects


@pytest.mark.parametrize("text", ["", "not json", "{}", '["a", 1]', '"a"'])
def test_a_malformed_subjects_column_names_nobody(text: str) -> None:
    """A row that cannot say whom it names names nobody (verify reports it)."""
    assert parse_subjects(text) == frozenset()


def test_the_sqlalchemy_column_objects_are_the_schemas() -> None:
    """The statements' columns are the schema's own column objects."""
    assert all(column.table is schema.EVENTS for column in COLUMNS)
    assert isinstance(schema.EVENTS.c.position, sa.Column)
