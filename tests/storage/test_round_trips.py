"""Round trips to PostgreSQL per operation, counted in libpq's own protocol trace.

On a server across a network a round trip costs more than anything the client does, so the
hot paths send their statements pipelined and read the answers together. A round trip here is
a turn of the conversation: messages from the client, then the server's answer. The counts are
of the steady state (statements already prepared, the subjects' keys cached), and are what the
design promises; a change that adds a round trip to a hot path fails here."""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
import pytest
from psycopg import pq

import keyvault.engine
from keyvault import MasterKey
from shredstore import Aggregate, Event, EventStore, PersonalData, Repository, SubjectId

pytestmark = pytest.mark.postgres


class Registered(Event, type_name="test.trips.Registered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]


class Customer(Aggregate, stream_prefix="trips-", type_name="test.trips.Customer"):
    customer_id: SubjectId = ""
    name: Annotated[str, PersonalData()] = ""

    def apply(self, event: Event) -> None:
        if isinstance(event, Registered):
            self.customer_id, self.name = event.customer_id, event.name


_ANSWER_NOW = frozenset({"Sync", "Flush", "Query", "CopyDone"})
"""The client's messages after which it waits for the server."""


class Trace:
    """libpq's protocol trace of every connection opened while it is installed, each into a
    file of its own (a file shared by several connections would hold their messages in the
    order their traces were flushed, not sent)."""

    def __init__(self) -> None:
        self._traced: list[tuple[psycopg.Connection[Any], Any]] = []

    def opened(self, connection: psycopg.Connection[Any]) -> None:
        file = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by close()
        self._traced.append((connection, file))
        self._on(connection, file)

    @staticmethod
    def _on(connection: psycopg.Connection[Any], file: Any) -> None:
        connection.pgconn.trace(file.fileno())
        connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def _flush(self) -> None:
        for connection, file in self._traced:  # libpq flushes its trace when it stops
            if not connection.closed:
                connection.pgconn.untrace()
                self._on(connection, file)

    def round_trips(self, operation: Callable[[], object]) -> int:
        """How many times `operation` sent messages and then waited for the server's, on
        all connections together."""
        self._flush()
        starts = [os.lseek(file.fileno(), 0, os.SEEK_END) for _, file in self._traced]
        operation()
        self._flush()
        waits = 0
        for index, (_, file) in enumerate(self._traced):
            start = starts[index] if index < len(starts) else 0  # opened meanwhile
            os.lseek(file.fileno(), start, os.SEEK_SET)
            text = os.read(file.fileno(), 1 << 24).decode()
            messages = [line.split("\t")[::2] for line in text.splitlines() if line]
            if os.environ.get("SHREDSTORE_TRACE_DEBUG"):
                print(f"connection {index}:", *(f"{side} {name}" for side, name, *_ in messages),
                      sep="\n")
            # A wait: the client's last message asked the server to answer (the end of a
            # pipeline or statement, a simple query, a COPY's end) and the server's came
            # next. Answers that arrive while the client is still sending are no wait.
            waits += sum(1 for (side, name, *_), (answered, *_)
                         in itertools.pairwise(messages)
                         if side == "F" and answered == "B" and name in _ANSWER_NOW)
        return waits

    def close(self) -> None:
        for _, file in self._traced:
            file.close()


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """Connections the test's own thread opens are traced; those of a thread an earlier test
    left running in this process (a listener, a poller) are not, so their queries are never
    counted as the operation's."""
    traced = Trace()
    connect = psycopg.Connection.connect
    test_thread = threading.current_thread()

    def traced_connect(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        connection = connect(*args, **kwargs)
        if threading.current_thread() is test_thread:
            traced.opened(connection)
        return connection

    monkeypatch.setattr(psycopg, "connect", traced_connect)
    monkeypatch.setattr(psycopg.Connection, "connect", traced_connect)
    yield traced
    traced.close()


@pytest.fixture
def store(postgres_url: str, trace: Trace, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[EventStore]:
    # A held connection left idle for IDLE_CHECK_SECONDS is pinged before use: on a loaded
    # machine a pause between two counted operations would add that round trip to the count
    # (tests/storage/test_connections.py tests the ping itself).
    monkeypatch.setattr(keyvault.engine, "IDLE_CHECK_SECONDS", 3600.0)
    with EventStore(postgres_url, master_key=MasterKey.generate()) as opened:
        yield opened


def _steady(operation: Callable[[], object]) -> Callable[[], object]:
    """`operation`, run often enough first that psycopg has prepared its statements."""
    for _ in range(10):
        operation()
    return operation


def _registered(customer: int, name: str = "Ada") -> Registered:
    return Registered(customer_id=f"c-{customer}", name=name)


def test_an_aggregate_load_is_one_round_trip_with_or_without_a_snapshot(
        store: EventStore, trace: Trace) -> None:
    customers = Repository(store, Customer)
    for customer in range(8):
        store.append(f"trips-{customer}", [_registered(customer) for _ in range(10)])
    loads = itertools.count()
    # The snapshot lookup, the events after it and the vault's erasure check, in one turn.
    assert trace.round_trips(_steady(lambda: customers.load(str(next(loads) % 4)))) == 1
    for customer in range(4, 8):
        store.save_snapshot(customers.load(str(customer)), stream_id=f"trips-{customer}",
                            version=10, type_name=Customer.__stored_type__,
                            schema_version=Customer.__schema_version__)
    state = customers.load("5")
    assert (state.version, state.name) == (10, "Ada")
    assert trace.round_trips(_steady(lambda: customers.load("5"))) == 1


def test_a_page_of_read_all_with_personal_data_is_one_round_trip(
        store: EventStore, trace: Trace) -> None:
    store.append("trips-1", [_registered(1) for _ in range(20)])
    assert trace.round_trips(_steady(lambda: list(store.read_all()))) == 1
    assert trace.round_trips(_steady(lambda: list(store.read_stream("trips-1")))) == 1


def test_a_single_append_is_two_round_trips_and_a_new_subjects_three(
        store: EventStore, trace: Trace) -> None:
    store.append("trips-1", [_registered(1)])
    # BEGIN, the lock, the head, the ledger's and the vault's guards; the inserts and COMMIT.
    assert trace.round_trips(_steady(lambda: store.append("trips-1", [_registered(1)]))) == 2
    customers = iter(range(100, 200))

    def first_append() -> None:
        customer = next(customers)
        store.append(f"trips-{customer}", [_registered(customer)])

    # The key lookup before sealing; the guards with the new key stored; the inserts.
    assert trace.round_trips(_steady(first_append)) == 3
    assert [record.event.name for record in store.read_stream("trips-100")] == ["Ada"]


def test_a_batch_pipelines_its_guards_and_goes_by_copy(store: EventStore, trace: Trace
                                                      ) -> None:
    store.append("trips-1", [_registered(1)])
    batch = lambda: store.append("trips-1", [_registered(1) for _ in range(20)])  # noqa: E731
    # The guards' turn; the index entries (one statement of arrays) and the pipeline's end;
    # the COPY of the events (a turn to start it, one to end it); COMMIT.
    assert trace.round_trips(_steady(batch)) == 5
    assert store.stream_version("trips-1") == 1 + 11 * 20
