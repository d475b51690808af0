"""keyvault's one translation of driver errors, and its transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from keyvault import VaultConfigurationError, VaultStorageError, VaultUnavailable
from keyvault.engine import (
    Transactions,
    create_engine,
    driver_failure,
    translate_errors,
)


def test_driver_failure_reads_the_first_line_and_whether_the_database_is_unreachable() -> None:
    """The classification both packages share: the driver's first line (no SQL, no values),
    and whether the database could not be reached; None for anything but a driver error."""
    raw = sqlite3.OperationalError("unable to open database file\nmore")
    assert driver_failure(raw) == ("unable to open database file", True)
    wrapped = DBAPIError("SELECT 1", {}, sqlite3.OperationalError("no such table: t"))
    assert driver_failure(wrapped) == ("no such table: t", False)
    invalidated = DBAPIError("SELECT 1", {}, sqlite3.OperationalError("boom"),
                             connection_invalidated=True)
    assert driver_failure(invalidated) == ("boom", True)
    assert driver_failure(ValueError("x")) is None


def test_the_vault_translator_names_the_vault_database() -> None:
    """VaultUnavailable where the vault's database cannot be reached, VaultStorageError where
    it refused; the driver's error is the cause."""
    down = sqlite3.OperationalError("unable to open database file")
    with pytest.raises(VaultUnavailable) as unreachable, translate_errors():
        raise down
    assert str(unreachable.value) == ("cannot reach the vault's database: "
                                      "unable to open database file")
    assert unreachable.value.__cause__ is down
    with pytest.raises(VaultStorageError) as refused, translate_errors("the database to scrub"):
        raise DBAPIError("VACUUM", {}, sqlite3.OperationalError("database is locked"))
    assert type(refused.value) is VaultStorageError
    assert str(refused.value) == "the database to scrub refused: database is locked"


def test_transactions_refuse_writes_when_read_only(tmp_path: Path) -> None:
    """A read-only vault's write raises VaultConfigurationError with the reason given, and
    reads still work."""
    engine = create_engine(f"sqlite:///{tmp_path / 'vault.db'}")
    try:
        transactions = Transactions(engine, read_only=True, refusal="opened read-only")
        with transactions.read() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        with pytest.raises(VaultConfigurationError, match="opened read-only"), \
                transactions.write():
            pass
    finally:
        engine.dispose()


def test_transactions_translate_driver_errors(tmp_path: Path) -> None:
    """A statement the vault's database refuses inside a transaction is VaultStorageError."""
    engine = create_engine(f"sqlite:///{tmp_path / 'vault.db'}")
    try:
        with pytest.raises(VaultStorageError, match="no such table"), \
                Transactions(engine).write() as conn:
            conn.exec_driver_sql("DELETE FROM no_such_table")
    finally:
        engine.dispose()
