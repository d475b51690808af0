"""The vault contract on SQLite, and secure deletion from the database file and its WAL."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyvault import KeyVault, MasterKey
from tests.keyvault.contract import VaultContract, raw


class TestSQLiteVault(VaultContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


def files_of(database: Path) -> bytes:
    """The database file and its WAL, as they are on disk."""
    data = database.read_bytes()
    wal = database.with_name(database.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def test_an_erased_key_leaves_no_copy_in_the_file_or_wal(tmp_path: Path) -> None:
    """After erase (which checkpoints), no byte sequence of the wrapped key is on disk."""
    database = tmp_path / "vault.db"
    url = f"sqlite:///{database}"
    with KeyVault(url, master_key=MasterKey.generate()) as vault:
        for i in range(50):
            vault.seal(f"subject-{i}", b"x")
        wrapped = dict(raw(url, "SELECT subject_id, wrapped_key "
                                             "FROM keyvault_subjects"))
        vault.scrub()
        assert wrapped["subject-7"] in files_of(database)  # the scan can see a key
        result = vault.erase("subject-7", request_id="REQ-7")
        assert result.scrubbed
        on_disk = files_of(database)
        assert wrapped["subject-7"] not in on_disk
        assert wrapped["subject-7"][-16:] not in on_disk  # not even its tag
        assert wrapped["subject-8"] in on_disk  # the others are untouched
        assert vault.scrub().complete  # nothing holds the file open: scrub completes


def test_the_vault_runs_with_secure_delete(tmp_path: Path) -> None:
    """Vault connections overwrite deleted content (PRAGMA secure_delete=1)."""
    with KeyVault(f"sqlite:///{tmp_path / 'v.db'}", master_key=None) as vault, \
            vault.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
