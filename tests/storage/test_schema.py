"""One schema module, one `MetaData`, every table name written in one place."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

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
