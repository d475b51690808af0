"""Driver errors become shredstore's in one place (`shredstore.storage.engine.translate_errors`),
and keyvault's configuration errors become shredstore's through `vault_configuration_errors`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

import keyvault
from shredstore import EventStore
from shredstore.errors import (
    ConfigurationError,
    ImmutableLogError,
    StorageError,
    StoreUnavailable,
    vault_configuration_errors,
)
from shredstore.storage import schema
from shredstore.storage.engine import create_engine, translate_errors
from tests.store.contract import notes

VALUE = "a-parameter-value-that-must-not-show"  # it may be personal data


def wrapped(error: Exception) -> DBAPIError:
    """`error` as SQLAlchemy wraps a driver's error."""
    return DBAPIError("SELECT secret FROM t", {"p": VALUE}, error)


def raised_by(error: BaseException, database: str = "the database") -> BaseException:
    """What leaves a translator's block in which `error` was raised."""
    try:
        with translate_errors(database):
            raise error
    except BaseException as left:  # noqa: BLE001 - whatever it is, the test looks at it
        return left
    raise AssertionError("the block raised nothing")


@pytest.mark.parametrize("error", [
    sqlite3.OperationalError("unable to open database file"),
    wrapped(sqlite3.OperationalError("unable to open database file")),
    wrapped(sqlite3.OperationalError('connection failed: role "nobody" does not exist')),
], ids=["driver's own", "wrapped", "no such role"])
def test_an_unreachable_database_is_store_unavailable(error: Exception) -> None:
    """A database that cannot be reached raises StoreUnavailable, with the driver's error as
    the cause, whether SQLAlchemy wrapped the driver's error or a hot path met it raw."""
    translated = raised_by(error)
    assert type(translated) is StoreUnavailable
    assert str(translated).startswith("cannot reach the database: ")
    assert translated.__cause__ is error


def test_a_refused_statement_is_a_storage_error_naming_no_sql_and_no_values() -> None:
    """A statement the database refused raises StorageError with the driver's first line only:
    never the SQL or its parameter values (they may hold personal data)."""
    error = wrapped(sqlite3.OperationalError(f"no such table: t\nnear {VALUE}"))
    translated = raised_by(error)
    assert type(translated) is StorageError
    assert str(translated) == "the database refused: no such table: t"
    assert VALUE not in str(translated)
    assert "SELECT" not in str(translated)


def test_a_refusal_of_the_append_only_triggers_is_immutable_log_error() -> None:
    """The message of the triggers that keep the log append-only raises ImmutableLogError."""
    refusal = f"{schema.EVENTS.name} is append-only: stored events cannot be updated"
    translated = raised_by(sqlite3.IntegrityError(refusal))
    assert type(translated) is ImmutableLogError
    assert str(translated) == refusal


def test_the_database_can_be_named() -> None:
    """A translator for another database (the read models', say) names it in its messages."""
    unreachable = raised_by(sqlite3.OperationalError("unable to open database file"),
                            "the read-model database")
    refused = raised_by(sqlite3.OperationalError("disk I/O error"), "the read-model database")
    assert str(unreachable) == "cannot reach the read-model database: unable to open database file"
    assert str(refused) == "the read-model database refused: disk I/O error"


@pytest.mark.parametrize("error", [ValueError("x"), KeyError("k"), StorageError("already ours")])
def test_other_errors_pass_unchanged(error: Exception) -> None:
    """Errors that are not the drivers' leave the block as they are (nested translators
    included: an error already translated is not translated again)."""
    with pytest.raises(type(error)) as caught, translate_errors(), translate_errors():
        raise error
    assert caught.value is error


def test_a_block_without_an_error_returns_its_value() -> None:
    """One translator serves any number of blocks, nested or not."""
    translator = translate_errors()
    with translator, translator:
        value = 42
    assert value == 42
    assert translate_errors() is translator


def test_an_unreachable_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    """A real connection to an SQLite file in a directory that does not exist."""
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'events.db'}")
    try:
        with pytest.raises(StoreUnavailable, match="cannot reach the database"), \
                translate_errors(), engine.connect():
            pass
    finally:
        engine.dispose()


def test_an_unreachable_postgres_server_is_store_unavailable() -> None:
    """A real connection to a port where no PostgreSQL listens."""
    pytest.importorskip("psycopg")
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(StoreUnavailable, match="cannot reach the database"), \
                translate_errors(), engine.connect():
            pass
    finally:
        engine.dispose()


def test_real_driver_errors_are_translated_on_each_backend(any_url: str) -> None:
    """On each backend: an UPDATE of a stored event is ImmutableLogError (through SQLAlchemy
    and through the driver's own cursor); a statement on a missing table is StorageError."""
    with EventStore(any_url) as store:
        store.append("s", notes(1))
    engine = create_engine(any_url)
    update = f"UPDATE {schema.EVENTS.name} SET payload = payload"
    try:
        with pytest.raises(ImmutableLogError), translate_errors(), engine.begin() as conn:
            conn.exec_driver_sql(update)
        with pytest.raises(ImmutableLogError), translate_errors(), engine.begin() as conn:
            conn.connection.cursor().execute(update)
        with pytest.raises(StorageError, match="refused") as refused, translate_errors(), \
                engine.begin() as conn:
            conn.execute(sa.text("SELECT x FROM no_such_table WHERE x = :v"), {"v": VALUE})
        assert type(refused.value) is StorageError
        assert VALUE not in str(refused.value)
    finally:
        engine.dispose()


def test_vault_configuration_errors_become_configuration_errors() -> None:
    """keyvault's VaultConfigurationError leaves the block as ConfigurationError with the
    same message and no chained cause; other errors, keyvault's included, pass unchanged."""
    with pytest.raises(ConfigurationError) as caught, vault_configuration_errors():
        raise keyvault.VaultConfigurationError("a subject id is a non-empty string")
    assert type(caught.value) is ConfigurationError
    assert str(caught.value) == "a subject id is a non-empty string"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    other = keyvault.VaultUnavailable("down")
    with pytest.raises(keyvault.VaultUnavailable) as passed, vault_configuration_errors():
        raise other
    assert passed.value is other


def test_create_engine_refuses_an_unsupported_database_as_configuration_error() -> None:
    """The engine set-up that keyvault provides raises shredstore's ConfigurationError here."""
    with pytest.raises(ConfigurationError, match="unsupported database"):
        create_engine("mysql://somewhere/db")
