"""`shredstore.erasure.scrubbing.scrub`: the vault's tables and the registered read models'
tables, on both backends, checked against the bytes on disk; and what it reports when it cannot
finish."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from keyvault.scrub import VAULT_TABLES
from shredstore import EventStore
from shredstore.erasure.scrubbing import scrub
from shredstore.projections import ProjectionRunner
from tests.keyvault.contract import raw
from tests.keyvault.test_scrub import Reader, relation_bytes
from tests.projections.directory import CustomerDirectory, RedactingDirectory
from tests.projections.test_residue import filled_store, secrets_in, sqlite_files

READ_MODEL_TABLES = ("test_directory", "test_redacted_directory")


@pytest.fixture
def readers() -> Iterator[list[Reader]]:
    started: list[Reader] = []
    yield started
    for reader in started:
        reader.stop()


def projected(store: EventStore, **options: str) -> ProjectionRunner:
    """The example projections, caught up with the log (in the store's database by default)."""
    runner = ProjectionRunner(store, [CustomerDirectory(), RedactingDirectory()], **options)
    runner.catch_up()
    return runner


def key_of(url: str, subject: str) -> bytes:
    ((key,),) = raw(url, "SELECT wrapped_key FROM keyvault_subjects WHERE subject_id = :s",
                    s=subject)
    return bytes(key)


def test_sqlite_scrub_finishes_what_a_reader_held_off(sqlite_url: str, master_file: Path,
                                                     readers: list[Reader]) -> None:
    """A reader from before the erasure keeps the destroyed key and the forgotten rows in the
    files; scrub says it cannot complete while the reader is there, and once it is gone the
    files hold neither the key nor the values."""
    with filled_store(sqlite_url, master_file) as store:
        runner = projected(store)
        key = key_of(sqlite_url, "c2")
        readers.append(reader := Reader(str(make_url(sqlite_url).database)))
        receipt = store.erase_subject("c2")
        runner.catch_up()  # the projections forget c2
        runner.close()
        assert receipt.scrubbed is False
        on_disk = sqlite_files(sqlite_url)
        held = key in on_disk
        assert held, "the destroyed key's bytes are still on disk"
        assert secrets_in(on_disk) >= 2
        blocked = scrub(store, wait=0.1)
        assert not blocked.complete
        assert blocked.lines()[-1].startswith("scrub NOT complete: another connection kept "
                                              "the WAL busy")
        reader.release()
        reader.wait_released()
        report = scrub(store)
        assert report.complete, report.lines()
        on_disk = sqlite_files(sqlite_url)
        gone = key not in on_disk
        assert gone, "the destroyed key's bytes are still on disk after scrub"
        assert secrets_in(on_disk) == 0
        assert b"Name 1" in on_disk  # the scan sees what is still held
    assert [what for what, _ in report.parts] == ["vault and read models"]
    ((_, result),) = report.parts
    assert [table.table for table in result.tables] == [*VAULT_TABLES, *READ_MODEL_TABLES]
    assert report.lines() == [
        *(f"vault and read models (sqlite): {table}: deleted and overwritten rows are zeroed "
          "in place (secure_delete)" for table in (*VAULT_TABLES, *READ_MODEL_TABLES)),
        "vault and read models (sqlite): WAL checkpointed and truncated",
        "scrub complete: the live database files hold no old copies of erased keys or "
        "forgotten rows; WAL archives, backups and replicas keep theirs until their retention "
        "ends (docs/scrubbing.md)"]


def test_postgres_scrub_rewrites_the_dead_tuples_of_keys_and_forgotten_rows(
        postgres_url: str, master_file: Path) -> None:
    """PostgreSQL keeps the destroyed key and the forgotten rows as dead tuples in the table
    files (the residue check cannot see them); scrub's VACUUM FULL rewrites them out."""
    with filled_store(postgres_url, master_file) as store:
        runner = projected(store)
        key = key_of(postgres_url, "c2")
        store.erase_subject("c2")
        runner.catch_up()
        runner.close()
        tables = (*VAULT_TABLES, *READ_MODEL_TABLES)
        files = relation_bytes(postgres_url, *tables)
        held = key in files
        assert held, "the destroyed key's dead tuple is in the file"
        assert secrets_in(files) >= 2  # the forgotten name and email, in dead tuples
        report = scrub(store)
        assert report.complete, report.lines()
        files = relation_bytes(postgres_url, *tables)
        gone = key not in files
        assert gone, "the destroyed key's bytes are still in the files after scrub"
        assert secrets_in(files) == 0
        assert b"Name 1" in files
    assert report.lines()[-2] == ("vault and read models (postgresql): CHECKPOINT done: WAL "
                                  "segments before it can be recycled")


def test_read_models_in_their_own_database_are_scrubbed_there(any_url: str, master_file: Path,
                                                             tmp_path: Path) -> None:
    """With `read_models`, the vault is scrubbed in the store's database and the projections'
    tables in theirs; a database without projections is named, not scrubbed."""
    read_models = f"sqlite:///{tmp_path / 'read-models.db'}"
    with filled_store(any_url, master_file) as store:
        projected(store, engine=read_models).close()
        store.erase_subject("c2")
        runner = projected(store, engine=read_models)
        runner.close()
        report = scrub(store, read_models=read_models)
        assert report.complete, report.lines()
        assert [what for what, _ in report.parts] == ["vault", "read models"]
        assert [t.table for t in report.parts[0][1].tables] == list(VAULT_TABLES)
        assert [t.table for t in report.parts[1][1].tables] == list(READ_MODEL_TABLES)
        assert secrets_in(sqlite_files(read_models)) == 0
        alone = scrub(store)  # the store's database has no projections
        assert alone.complete
        assert [what for what, _ in alone.parts] == ["vault"]
        assert alone.notes == ("read models: no projection is registered in the read-model "
                               "database",)
        assert alone.to_dict()["complete"] is True
    assert secrets_in(str(report.to_dict()).encode()) == 0
