"""One schema module, one `MetaData`, every table name written in one place."""

from __future__ import annotations

import ast
import importlib
import sqlite3
from pathlib import Path
from typing import Annotated

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from keyvault import MasterKey
from shredstore import NO_STREAM, REDACTED, Event, EventStore, PersonalData, SubjectId
from shredstore.storage import schema
from shredstore.storage.engine import create_engine

STORAGE = Path(schema.__file__).parent
TABLES = [schema.EVENTS, schema.SUBJECTS, schema.SNAPSHOTS, schema.SETTINGS,
          schema.CHECKPOINTS, schema.PROCESSED, schema.SAGA_RUNNERS,
          schema.SAGA_DEADLINES, schema.RELAYS]


def test_one_metadata_holds_every_shredstore_table() -> None:
    """The schema module's tables are all in its one MetaData, and it holds no others."""
    assert set(schema.metadata.tables.values()) == set(TABLES)
    assert all(table.name.startswith("shredstore_") for table in TABLES)


@pytest.mark.parametrize(("module", "name", "table"), [
    ("shredstore.projections.runner", "CHECKPOINTS", schema.CHECKPOINTS),
    ("shredstore.projections.consumer", "PROCESSED", schema.PROCESSED),
])
def test_the_read_side_tables_are_the_schema_modules(module: str, name: str,
                                                     table: sa.Table) -> None:
    """The projections' tables, wherever they are imported from, are declared exactly as in
    the schema module (the same object once their modules import it from there)."""
    theirs = getattr(importlib.import_module(module), name)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert str(CreateTable(theirs).compile(dialect=dialect)) == \
            str(CreateTable(table).compile(dialect=dialect))


def test_install_creates_the_log_tables_only(any_url: str) -> None:
    """`install` creates the event log's tables; the read side's are created, idempotently,
    by their own installs, in whichever database holds the read models."""
    engine = create_engine(any_url)
    try:
        with engine.begin() as conn:
            schema.install(conn)
        present = set(sa.inspect(engine).get_table_names())
        assert {table.name for table in schema.LOG_TABLES} <= present
        assert not {schema.CHECKPOINTS.name, schema.PROCESSED.name,
                    schema.SAGA_RUNNERS.name, schema.SAGA_DEADLINES.name,
                    schema.RELAYS.name} & present
        for _ in range(2):
            with engine.begin() as conn:
                schema.install_checkpoints(conn)
                schema.install_processed(conn)
                schema.install_saga_runners(conn)
                schema.install_relays(conn)
        assert {table.name for table in TABLES} <= set(sa.inspect(engine).get_table_names())
        with engine.begin() as conn:
            assert schema.missing_triggers(conn) == []
    finally:
        engine.dispose()


class Registered(Event, type_name="test.schema.Registered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]


def _subject_index_sql(path: Path) -> str:
    with sqlite3.connect(path) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                            (schema.SUBJECTS.name,)).fetchone()
    return str(sql)


@pytest.mark.parametrize("made_before", [False, True], ids=["new", "made-with-a-rowid"])
def test_the_sqlite_subject_index_is_its_keys_b_tree(tmp_path: Path, made_before: bool) -> None:
    """A new SQLite database's subject index is ``WITHOUT ROWID`` (an append writes one page
    for its entries, not two); a database made before, whose index has a rowid, is read and
    written the same."""
    path = tmp_path / "log.db"
    if made_before:
        with sqlite3.connect(path) as db:
            db.execute(f"CREATE TABLE {schema.SUBJECTS.name} (subject_id TEXT NOT NULL, "
                       "position INTEGER NOT NULL, PRIMARY KEY (subject_id, position))")
    with EventStore(f"sqlite:///{path}", master_key=MasterKey.generate()) as store:
        for number in (1, 2):
            store.append(f"customer-{number}", [Registered(customer_id=str(number),
                                                           name=f"Name {number}")],
                         expected_version=NO_STREAM)
        store.append("customer-1", [Registered(customer_id="1", name="Again")],
                     expected_version=1)
        assert [record.event.name for record in store.read_subject("1")] == ["Name 1", "Again"]
        store.erase_subject("1")
        assert [record.event.name for record in store.read_subject("1")
                if isinstance(record.event, Registered)] == [REDACTED] * 2
        assert [record.event.name for record in store.read_subject("2")] == ["Name 2"]
        assert store.verify().ok
    assert ("WITHOUT ROWID" in _subject_index_sql(path)) is not made_before


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code: docstrings and attribute docs left out."""
    tree = ast.parse(path.read_text())
    docs = {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docs]


@pytest.mark.parametrize("path", sorted(p for p in STORAGE.glob("*.py") if p.name != "schema.py"),
                         ids=lambda p: p.name)
def test_no_storage_module_but_the_schema_spells_a_table_name(path: Path) -> None:
    """Table names are written once, in the schema module: the SQL elsewhere is built from
    its table objects."""
    names = {table.name for table in TABLES}
    spelled = [text for text in _code_strings(path) if any(name in text for name in names)]
    assert spelled == []
