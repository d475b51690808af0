"""The shipped crypto-shredding contract on SQLite, and what only SQLite has to promise."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.testing import ShreddingContract
from tests.shredding.contract import (
    PERSONAL,
    PLAIN,
    distinctive_events,
    found_in,
    table_dumps,
)


def database_files(url: str) -> dict[str, bytes]:
    """The bytes of the database file and of its -wal and -shm companions, by file name."""
    path = Path(str(make_url(url).database))
    return {f"file {file.name}": file.read_bytes()
            for file in sorted(path.parent.glob(f"{path.name}*"))}


class TestSQLiteShredding(ShreddingContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url

    @pytest.fixture
    def vault_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'vault.db'}"

    def stored_bytes(self, url: str) -> dict[str, bytes]:
        """The database files as the store left them, then every row of every table."""
        files = database_files(url)
        return {**files, **super().stored_bytes(url)}


def test_the_database_file_and_its_wal_hold_no_personal_plaintext(sqlite_url: str) -> None:
    """While the store is open (events in the WAL) and after it closed (checkpointed into the
    file), the files' bytes hold every plain value and no personal one."""
    with EventStore(sqlite_url, master_key=MasterKey.generate()) as store:
        store.append("customer-42", distinctive_events())
        while_open = database_files(sqlite_url)
        assert "file events.db-wal" in while_open
        assert found_in(while_open, PERSONAL) == []
        assert {label for label, _ in found_in(while_open, PLAIN)} == set(PLAIN)
    after_close = database_files(sqlite_url)
    assert found_in(after_close, PERSONAL) == []
    assert {label for label, where in found_in(after_close, PLAIN)
            if where == "file events.db"} == set(PLAIN)


def test_a_separate_vault_is_a_second_file(sqlite_url: str, tmp_path: Path) -> None:
    """With vault_url, the key tables are in the vault file and not in the events file."""
    vault_url = f"sqlite:///{tmp_path / 'vault.db'}"
    with EventStore(sqlite_url, master_key=MasterKey.generate(), vault_url=vault_url) as store:
        store.append("s", distinctive_events())
    events_tables, vault_tables = set(table_dumps(sqlite_url)), set(table_dumps(vault_url))
    assert {"shredstore_events", "shredstore_event_subjects"} <= events_tables
    assert not any(name.startswith("keyvault_") for name in events_tables)
    assert vault_tables == {"keyvault_subjects", "keyvault_state", "keyvault_service_keys"}
    assert found_in(database_files(vault_url), PERSONAL) == []
