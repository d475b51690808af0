"""PostgreSQL connections the server dropped: an idle one is checked and replaced before use;
one dropped while in steady use fails one operation, and the pool then replaces them all.

Reads run in autocommit (no BEGIN and COMMIT round trips): the appends and reads here show
that what a read sees is unchanged by that."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import pytest
import sqlalchemy as sa

import keyvault.engine
from keyvault import MasterKey
from shredstore import NO_STREAM, Event, EventStore, PersonalData, SubjectId
from shredstore.errors import StorageError

pytestmark = pytest.mark.postgres


class CustomerRegistered(Event, type_name="test.connections.CustomerRegistered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData()]


class Pinged(Event, type_name="test.connections.Pinged"):
    note: str


@pytest.fixture
def store(postgres_url: str) -> Iterator[EventStore]:
    with EventStore(postgres_url, master_key=MasterKey.generate()) as opened:
        opened.append("customer-1", [CustomerRegistered(customer_id="1", name="Ada",
                                                        email="ada@example.org")],
                      expected_version=NO_STREAM)
        yield opened


def drop_connections(store: EventStore, url: str) -> int:
    """Have the server end the connections pooled by `store` (as a restart or a proxy's idle
    timeout would); how many it ended."""
    pooled = [store.engine.raw_connection() for _ in range(store.engine.pool.checkedin())]
    pids = [connection.driver_connection.info.backend_pid for connection in pooled]
    for holder in (store._log._reads, store._log._appends):
        held = holder._held if holder is not None else None
        if held is not None:  # the connections reads and appends keep (`HeldReads`)
            pids.append(held.connection.driver_connection.info.backend_pid)  # type: ignore[union-attr]
    for connection in pooled:
        connection.close()  # back to the pool, where the server's end goes unnoticed
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return sum(bool(ended) for ended, in conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,)))
    finally:
        admin.dispose()


def names(store: EventStore) -> list[str]:
    return [record.event.name for record in store.read_stream("customer-1")]


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
        store: EventStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert names(store) == ["Ada"]
    assert drop_connections(store, postgres_url) >= 1
    monkeypatch.setattr(keyvault.engine, "IDLE_CHECK_SECONDS", 0.0)  # every checkout is idle
    assert names(store) == ["Ada"]
    store.append("customer-1", [CustomerRegistered(customer_id="1", name="Ada B.",
                                                   email="ada@example.org")],
                 expected_version=1)
    assert names(store) == ["Ada", "Ada B."]


def test_a_connection_dropped_in_steady_use_fails_once_then_all_are_replaced(
        store: EventStore, postgres_url: str) -> None:
    """Reads and appends each keep a connection (`HeldReads`): the first failure replaces
    both, so one operation fails, not one of each."""
    assert names(store) == ["Ada"]
    assert store._log._appends is not None
    assert store._log._appends._held is not None
    assert drop_connections(store, postgres_url) >= 2
    with pytest.raises(StorageError) as raised:  # no ping while in steady use: one failure
        names(store)
    assert "Ada" not in str(raised.value)
    assert names(store) == ["Ada"]  # the pool replaced the dropped connections
    store.append("customer-1", [CustomerRegistered(customer_id="1", name="Ada B.",
                                                   email="ada@example.org")],
                 expected_version=1)
    assert names(store) == ["Ada", "Ada B."]


def test_a_guard_that_runs_sqlalchemy_statements_in_the_append_pipeline_is_refused(
        store: EventStore) -> None:
    """Appends are pipelined on PostgreSQL, where a statement's rows arrive only when the
    driver's cursor fetches them: a guard running a statement through SQLAlchemy would read
    no rows (an erased subject passing a check), so it is refused loudly, and nothing is
    written."""
    rows = store._mapper.to_rows([Pinged(note="hello")], "{}", None)

    def guard(conn: sa.Connection) -> None:
        conn.execute(sa.text("SELECT 1")).all()

    with pytest.raises(RuntimeError, match="driver's cursor"):
        store._log.append("pings", rows, expected_version=NO_STREAM,
                          before_insert=guard)
    assert list(store.read_stream("pings")) == []
