"""Reads keep their connection checked out between reads (`HeldReads`): one connection
for reads in a row, never two reads at once on it, nothing left open on it (a checkpoint
still completes, another process's erasure is still seen), and never the parent's after a fork.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from keyvault import KeyVault, MasterKey
from keyvault import engine as storage_engine
from keyvault.engine import HeldReads, checkpoint_wal
from keyvault.errors import KeyErasedError
from shredstore import (
    NO_STREAM,
    REDACTED,
    Event,
    EventStore,
    PersonalData,
    SubjectId,
    WrongExpectedVersion,
)
from shredstore.storage.engine import create_engine


class Noted(Event, type_name="test.held.Noted"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'held.db'}")
    yield made
    made.dispose()


def test_reads_in_a_row_share_one_connection_and_a_read_meanwhile_gets_another(
        engine: sa.Engine) -> None:
    reads = HeldReads(engine)
    with reads.connect() as first, reads.connect() as meanwhile:
        assert meanwhile is not first  # the held one is taken: one from the pool
    with reads.connect() as again:
        assert again is first
    reads.close()
    with reads.connect() as after_close:
        assert after_close is not first
    assert first.closed


def test_nothing_stays_open_on_the_held_connection(engine: sa.Engine) -> None:
    """A transaction a read left open is rolled back; a read that failed gives the
    connection up."""
    reads = HeldReads(engine)
    with reads.connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()  # SQLAlchemy began a transaction for it
        assert conn.in_transaction()
    assert not conn.in_transaction()
    assert checkpoint_wal(engine, wait=1)
    def fail() -> None:
        with reads.connect() as failing:
            assert failing is conn
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    assert conn.closed
    with reads.connect() as fresh:
        assert fresh is not conn
    reads.close()


def test_sqlite_files_and_blocking_postgresql_hold_a_connection(tmp_path: Path) -> None:
    """An in-memory SQLite database already shares its one connection, and the async
    driver's connections belong to the task that runs them."""
    assert HeldReads.holds(create_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    assert not HeldReads.holds(create_engine("sqlite://"))
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # never connected to
    assert HeldReads.holds(create_engine(url))
    assert not HeldReads.holds(create_async_engine(url).sync_engine)


def _erase_elsewhere(url: str, master_key: bytes) -> None:
    with EventStore(url, master_key=MasterKey(master_key)) as store:
        store.erase_subject("1")


def test_a_store_holding_its_read_connection_sees_another_process_erase(tmp_path: Path
                                                                          ) -> None:
    """A store that has just read (its connection held) reads the subject as redacted once
    another process erased it, and the database can be checkpointed meanwhile."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    secret = os.urandom(32)
    with EventStore(url, master_key=MasterKey(secret)) as store:
        store.append("customer-1", [Noted(customer_id="1", name="Ada")],
                     expected_version=NO_STREAM)
        assert [r.event.name for r in store.read_stream("customer-1")] == ["Ada"]
        assert checkpoint_wal(store.engine, wait=1)  # the held connection holds no snapshot
        child = multiprocessing.get_context("spawn").Process(
            target=_erase_elsewhere, args=(url, secret))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert [r.event.name for r in store.read_stream("customer-1")] == [REDACTED]


def _read_in_child(reads: HeldReads, parents: int, answer: multiprocessing.SimpleQueue[str]
                   ) -> None:
    try:
        with reads.connect() as conn:
            conn.exec_driver_sql("SELECT 1").all()
            taken = id(conn)
        inherited = [id(held) for held in storage_engine._FORKED]
        answer.put("ok" if taken != parents and parents in inherited else
                   f"taken {taken}, parent's {parents}, set aside {inherited}")
    except Exception as error:  # noqa: BLE001 (the parent's assertion then says why)
        answer.put(repr(error))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_neither_uses_nor_closes_the_parents_connection(
        engine: sa.Engine) -> None:
    reads = HeldReads(engine)
    with reads.connect() as parents:
        parents.exec_driver_sql("SELECT 1").all()
    context = multiprocessing.get_context("fork")
    answer: multiprocessing.SimpleQueue[str] = context.SimpleQueue()
    child = context.Process(target=_read_in_child, args=(reads, id(parents), answer))
    child.start()
    child.join(60)
    assert answer.get() == "ok"
    with reads.connect() as again:  # the parent's connection still works, and is still held
        assert again is parents
        assert again.exec_driver_sql("SELECT 1").all() == [(1,)]
    reads.close()


def test_the_key_vaults_reads_keep_a_connection_and_still_see_erasures(
        engine: sa.Engine) -> None:
    """The vault's reads (a key's load, `Transactions.read`) keep theirs too: a second vault
    on the engine loads a key, sees the first one's erasure, and gives its connection back
    on close."""
    master = MasterKey.generate()
    writer = KeyVault(engine, master_key=master)
    reader = KeyVault(engine, master_key=master)
    sealed = writer.seal("subject-1", b"Ada")
    assert reader.open("subject-1", sealed) == b"Ada"  # loaded through the kept connection
    kept = engine.pool.checkedout()
    assert kept >= 1
    assert reader.status("subject-1").state == "active"
    assert engine.pool.checkedout() == kept  # the same one, not another from the pool
    writer.erase("subject-1")
    reader.refresh()
    with pytest.raises(KeyErasedError):
        reader.open("subject-1", sealed)
    writer.close()
    reader.close()
    assert engine.pool.checkedout() == 0


def test_appends_in_a_row_share_one_connection(tmp_path: Path) -> None:
    """Appends keep their connection between them as reads do (a pool checkout and check-in
    cost a PostgreSQL single append a sixth of its client time); an append that fails, a
    stale expected version, gives it up, and the next takes another."""
    with EventStore(f"sqlite:///{tmp_path / 'appends.db'}",
                    master_key=MasterKey.generate()) as store:
        checkouts: list[object] = []
        sa.event.listen(store.engine.pool, "checkout", lambda *args: checkouts.append(args))
        for version in range(3):
            store.append("customer-1", [Noted(customer_id="1", name="Ann")],
                         expected_version=version or NO_STREAM)
        held = store._log._appends._held  # type: ignore[union-attr]
        assert held is not None
        before = len(checkouts)
        store.append("customer-1", [Noted(customer_id="1", name="Ann")], expected_version=3)
        assert len(checkouts) == before  # the held connection, not the pool's
        with pytest.raises(WrongExpectedVersion):
            store.append("customer-1", [Noted(customer_id="1", name="Ann")],
                         expected_version=1)
        assert held.closed
        store.append("customer-1", [Noted(customer_id="1", name="Ann")], expected_version=4)
        assert [record.version for record in store.read_stream("customer-1")] == [1, 2, 3, 4, 5]
    assert store._log._appends._held is None  # type: ignore[union-attr]
