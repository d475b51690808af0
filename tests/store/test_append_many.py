"""`append_many`: several streams, one transaction, each with its own expected version; per-event
metadata; correlation and causation ids carried by `caused_by`. On every backend, with real
processes racing each other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keyvault import MasterKey
from shredstore import (
    ANY,
    NO_STREAM,
    AppendResult,
    ConfigurationError,
    DuplicateEventError,
    Event,
    EventStore,
    PersonalData,
    SubjectErasedError,
    SubjectId,
    WrongExpectedVersion,
)
from shredstore.causation import caused_by, current_cause
from tests.processes import Child
from tests.store._append_many_workers import STREAMS, Moved

TRACKING = sa.Table(
    "app_saga_steps", sa.MetaData(),
    sa.Column("stream_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


class Placed(Event, type_name="test.append_many.Placed"):
    order_id: str
    customer_id: SubjectId
    name: Annotated[str, PersonalData(subject="customer_id")]


class Requested(Event, type_name="test.append_many.Requested"):
    order_id: str
    amount: int


class Failed(Exception):
    """What a test's hook raises: it must reach the caller unchanged."""


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        yield opened


def placed(order: str = "7", customer: str = "c-1", name: str = "Ada") -> Placed:
    return Placed(order_id=order, customer_id=customer, name=name)


def log(store: EventStore) -> list[tuple[int, str, int, str]]:
    return [(r.position, r.stream_id, r.version, r.event_type) for r in store.read_all()]


def test_several_streams_append_in_one_transaction_in_the_order_given(
        store: EventStore) -> None:
    store.append("payment-7", [Requested(order_id="6", amount=1)])
    results = store.append_many({
        "order-7": ([placed()], NO_STREAM),
        "payment-7": ([Requested(order_id="7", amount=30), Requested(order_id="7", amount=5)],
                      1),
    })
    assert list(results) == ["order-7", "payment-7"]
    assert results["order-7"] == AppendResult("order-7", 1, (2,))
    assert results["payment-7"] == AppendResult("payment-7", 3, (3, 4))
    assert log(store) == [(1, "payment-7", 1, "test.append_many.Requested"),
                          (2, "order-7", 1, "test.append_many.Placed"),
                          (3, "payment-7", 2, "test.append_many.Requested"),
                          (4, "payment-7", 3, "test.append_many.Requested")]
    assert next(store.read_stream("order-7")).event.name == "Ada"
    assert store.verify().ok


def test_one_stale_expected_version_writes_nothing_and_names_its_stream(
        store: EventStore) -> None:
    store.append("payment-7", [Requested(order_id="7", amount=1)])
    with pytest.raises(WrongExpectedVersion) as raised:
        store.append_many({"order-7": ([placed()], NO_STREAM),
                           "payment-7": ([Requested(order_id="7", amount=2)], NO_STREAM)})
    assert raised.value.stream_id == "payment-7"
    assert len(log(store)) == 1
    assert list(store.read_stream("order-7")) == []
    assert store.subject_status("c-1").state == "unknown"  # its new key was not kept


def test_a_retry_of_a_committed_append_many_returns_the_first_results(
        store: EventStore) -> None:
    streams = {"order-7": ([placed()], NO_STREAM),
               "payment-7": ([Requested(order_id="7", amount=2)], NO_STREAM)}
    first = store.append_many(streams)
    store.append("payment-7", [Requested(order_id="7", amount=3)])  # the stream moved on
    assert store.append_many(streams) == first
    assert len(log(store)) == 3


def test_an_erased_subject_in_one_stream_refuses_every_stream(store: EventStore) -> None:
    store.append("order-1", [placed(order="1")])
    store.erase_subject("c-1")
    before = log(store)
    with pytest.raises(SubjectErasedError):
        store.append_many({"payment-8": ([Requested(order_id="8", amount=2)], NO_STREAM),
                           "order-8": ([placed(order="8")], NO_STREAM)})
    assert log(store) == before


def test_the_same_event_in_two_streams_is_refused(store: EventStore) -> None:
    event = Requested(order_id="7", amount=2)
    with pytest.raises(DuplicateEventError):
        store.append_many({"a": ([event], ANY), "b": ([event], ANY)})
    assert log(store) == []


@pytest.mark.parametrize("streams", [
    {"$erasures": ([Requested(order_id="7", amount=1)], ANY)},
    {"": ([Requested(order_id="7", amount=1)], ANY)},
    {"a": [Requested(order_id="7", amount=1)]},
    {"a": ([Requested(order_id="7", amount=1)], "latest")},
], ids=["reserved stream", "blank stream", "not a tuple", "bad version"])
def test_malformed_streams_are_refused_before_anything_is_written(
        store: EventStore, streams: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        store.append_many(streams)  # type: ignore[arg-type]
    assert log(store) == []


def test_nothing_to_append_returns_nothing(store: EventStore) -> None:
    assert store.append_many({}) == {}
    assert store.append_many({"a": ([], NO_STREAM)}) == {"a": AppendResult("a", 0, ())}


def test_the_callers_rows_commit_with_every_stream_or_not_at_all(store: EventStore) -> None:
    with store.engine.begin() as conn:
        TRACKING.create(conn)

    def track(conn: Connection, results: dict[str, AppendResult]) -> None:
        conn.execute(TRACKING.insert(), [{"stream_id": stream, "version": result.version}
                                         for stream, result in results.items()])

    def track_then_fail(conn: Connection, results: dict[str, AppendResult]) -> None:
        conn.execute(TRACKING.delete())
        raise Failed

    store.append_many({"order-7": ([placed()], NO_STREAM),
                       "payment-7": ([Requested(order_id="7", amount=2)], NO_STREAM)},
                      in_transaction=track)
    with pytest.raises(Failed):
        store.append_many({"order-7": ([placed(name="Bo")], 1),
                           "payment-7": ([Requested(order_id="7", amount=3)], 1)},
                          in_transaction=track_then_fail)
    with store.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(TRACKING)).all()) == [("order-7", 1),
                                                                   ("payment-7", 1)]
    assert len(log(store)) == 2


def test_metadata_for_all_events_per_event_and_per_stream(store: EventStore) -> None:
    store.append("a", [Requested(order_id="1", amount=1), Requested(order_id="2", amount=2)],
                 metadata=[{"n": 1}, {"n": 2}])
    store.append_many({"b": ([Requested(order_id="3", amount=3)], ANY),
                       "c": ([Requested(order_id="4", amount=4)], ANY, {"own": True})},
                      metadata={"all": True})
    assert [r.metadata for r in store.read_all()] == [{"n": 1}, {"n": 2}, {"all": True},
                                                      {"own": True}]
    with pytest.raises(ConfigurationError, match="one per event"):
        store.append("a", [Requested(order_id="5", amount=5)], metadata=[{}, {}])


def test_caused_by_carries_correlation_and_causation_to_what_a_handler_appends(
        store: EventStore) -> None:
    store.append("order-7", [placed()], metadata={"correlation_id": "checkout-1"})
    first = next(store.read_stream("order-7"))
    assert current_cause() is None
    with caused_by(first) as ids:
        assert ids == {"correlation_id": "checkout-1", "causation_id": str(first.event_id)}
        store.append_many({"payment-7": ([Requested(order_id="7", amount=2)], NO_STREAM)})
    payment = next(store.read_stream("payment-7"))
    assert payment.metadata == {"correlation_id": "checkout-1",
                                "causation_id": str(first.event_id)}
    with caused_by(payment):  # a chain: the correlation stays, the cause moves on
        store.append("shipping-7", [Requested(order_id="7", amount=0)],
                     metadata={"note": "x", "causation_id": "mine"})
    shipping = next(store.read_stream("shipping-7"))
    assert shipping.metadata == {"correlation_id": "checkout-1", "causation_id": "mine",
                                 "note": "x"}
    store.append("other", [Requested(order_id="8", amount=1)])
    assert next(store.read_stream("other")).metadata == {}  # the context ended


def test_an_event_without_a_correlation_starts_one(store: EventStore) -> None:
    store.append("order-9", [placed(order="9")])
    first = next(store.read_stream("order-9"))
    with caused_by(first):
        store.append("payment-9", [Requested(order_id="9", amount=1)])
    assert next(store.read_stream("payment-9")).metadata == {
        "correlation_id": str(first.event_id), "causation_id": str(first.event_id)}


WRITERS = 3
TRANSFERS = 12


def test_transfers_racing_in_processes_are_all_or_nothing_with_versions_checked(
        any_url: str) -> None:
    """Processes append one event to each of two streams at once, each with the versions it
    read; every conflict is retried. Afterwards every transfer is in both streams exactly
    once, next to each other in the log, and each stream's versions have no gap or repeat."""
    EventStore(any_url).close()  # the tables, before the children race to make them
    started = [Child("tests.store._append_many_workers", any_url, f"w{n}", str(TRANSFERS))
               for n in range(WRITERS)]
    deadline = time.monotonic() + 90
    try:
        for child in started:
            assert child.message(deadline) == {"ready": True}, child.describe()
        for child in started:
            child.send("go")
        reported = {}
        for child in started:
            lines = child.wait_exit(deadline)
            assert lines[-1]["done"] is True
            reported.update({line["transfer"]: line["positions"] for line in lines[:-1]})
    finally:
        for child in started:
            child.kill()
    assert len(reported) == WRITERS * TRANSFERS
    with EventStore(any_url) as store:
        records = list(store.read_all())
    assert [r.position for r in records] == list(range(1, 2 * WRITERS * TRANSFERS + 1))
    for stream in STREAMS:
        versions = [r.version for r in records if r.stream_id == stream]
        assert versions == list(range(1, WRITERS * TRANSFERS + 1))
    pairs = [records[i:i + 2] for i in range(0, len(records), 2)]
    for left, right in pairs:
        assert (left.stream_id, right.stream_id) == STREAMS
        assert isinstance(left.event, Moved)
        assert isinstance(right.event, Moved)
        assert left.event.transfer == right.event.transfer
        assert reported[left.event.transfer] == [left.position, right.position]
