"""The vault contract on SQLite, and secure deletion from the database file and its WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from keyvault import KeyVault, MasterKey
from keyvault.errors import KeyErasedError, TamperedError
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


_KEYS_TABLE_MADE_BEFORE = (
    "CREATE TABLE keyvault_subjects (subject_id TEXT NOT NULL, state VARCHAR(8) NOT NULL, "
    "key_version INTEGER, wrapped_key BLOB, wrapped_by TEXT, key_fingerprint TEXT, "
    "created_at DATETIME, erased_at DATETIME, erasure_seq BIGINT, request_id TEXT, "
    "reason TEXT, PRIMARY KEY (subject_id), "
    "CONSTRAINT keyvault_subjects_state CHECK (state IN ('active', 'erased')), "
    "CONSTRAINT keyvault_subjects_key_only_when_active "
    "CHECK ((state = 'active') = (wrapped_key IS NOT NULL)), "
    "CONSTRAINT keyvault_subjects_erasure_seq UNIQUE (erasure_seq))")
"""The keys table as vaults made before it lost its rowid were created."""


@pytest.mark.parametrize("made_before", [False, True], ids=["new", "made-with-a-rowid"])
def test_the_sqlite_keys_table_is_its_keys_b_tree(tmp_path: Path, made_before: bool) -> None:
    """A new vault's keys table is ``WITHOUT ROWID``, its erasure numbers a partial index (a
    new key is one b-tree insert); a vault made before, with a rowid and a unique constraint
    on the number, works the same: keys, erasures in order, another process's view of them."""
    database = tmp_path / "vault.db"
    if made_before:
        with sqlite3.connect(database) as db:
            db.execute(_KEYS_TABLE_MADE_BEFORE)
    url = f"sqlite:///{database}"
    master = MasterKey.generate()
    with KeyVault(url, master_key=master) as vault, KeyVault(url, master_key=master) as other:
        sealed = {subject: vault.seal(subject, b"x") for subject in ("a", "b", "c")}
        assert other.open("a", sealed["a"]) == b"x"  # cached by the other vault
        vault.erase("b")
        vault.erase("a")
        assert raw(url, "SELECT subject_id, erasure_seq FROM keyvault_subjects "
                        "WHERE erasure_seq IS NOT NULL ORDER BY erasure_seq") == [("b", 1),
                                                                                ("a", 2)]
        other.refresh()
        with pytest.raises(KeyErasedError):
            other.open("a", sealed["a"])
        assert other.open("c", sealed["c"]) == b"x"
        assert {status.subject_id for status in other.erasures()} == {"a", "b"}
    with sqlite3.connect(database) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'keyvault_subjects'"
                            ).fetchone()
    assert ("WITHOUT ROWID" in sql) is not made_before


@pytest.mark.parametrize(("column", "value"), [("created_at", "garbage"),
                                               ("erased_at", "nope"), ("erased_at", b"\x00")])
def test_a_time_no_vault_writes_is_tampering(tmp_path: Path, column: str, value: object
                                             ) -> None:
    """SQLite keeps times as text, so an edit can store one that does not parse: the vault's
    reads of it (a subject's status, the tombstones, the erasure check every key ring makes)
    raise TamperedError, naming no subject, where they raised ValueError."""
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    with KeyVault(url, master_key=MasterKey.generate()) as vault:
        vault.seal("s-1", b"x")
        sealed = vault.seal("s-2", b"y")
        vault.erase("s-2")
        subject = "s-1" if column == "created_at" else "s-2"
        raw(url, f"UPDATE keyvault_subjects SET {column} = :v WHERE subject_id = :s",
            v=value, s=subject)
        reads = [lambda: vault.status(subject)]
        if column == "erased_at":
            reads += [lambda: list(vault.erasures()), lambda: vault.open("s-1", sealed)]
        for read in reads:
            with pytest.raises(TamperedError, match="subjects table holds a value") as caught:
                read()
            assert subject not in str(caught.value)
