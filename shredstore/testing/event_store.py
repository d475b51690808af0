"""`EventStoreContract`: the behaviour every event-store backend must have.

Subclass it in a test module and give it a ``url`` fixture naming a fresh, empty database
(each test gets its own); pytest collects it only through your subclass::

    class TestOurDatabase(EventStoreContract):
        @pytest.fixture
        def url(self):
            return "postgresql+psycopg://.../fresh_db"

It checks round trips, expected versions, atomic batches and retries, reads and their
options, metadata, decoding errors, the database's refusal to change stored events, and that
`EventStore.verify` reports each kind of tampering by position. The tampering tests change
the events table with raw SQL, so the URL's user must be allowed to drop triggers. Needs
pytest and hypothesis.

The suite's events are in a registry of their own, passed to every store it opens: the
application's `shredstore.default_registry` is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

import shredstore.testing._tampering as tampering
from shredstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ConfigurationError,
    DuplicateEventError,
    Event,
    EventDecodingError,
    EventRegistry,
    EventStore,
    StorageError,
    UnknownEvent,
    WrongExpectedVersion,
)
from shredstore.storage import log as storage_log
from shredstore.testing._store_events import REGISTRY, Noted, Ordered, Registered

__all__ = ["EventStoreContract"]


def kinds(store: EventStore) -> list[tuple[str, int | None]]:
    """(kind, position) of each finding of `store.verify()`."""
    return [(f.kind, f.position) for f in store.verify().findings]


def notes(count: int, start: int = 0) -> list[Noted]:
    """`count` new `Noted` events, numbered from `start`."""
    return [Noted(text=f"note {i}", number=i) for i in range(start, start + count)]


class EventStoreContract:
    """Subclasses provide a `url` fixture naming a fresh, empty database."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError("subclasses provide the URL of a fresh, empty database")

    @pytest.fixture
    def store(self, url: str) -> Iterator[EventStore]:
        """A store on `url` that knows the suite's events."""
        with EventStore(url, registry=REGISTRY) as store:
            yield store

    # Round trips

    def test_appended_events_read_back_as_equal_models(self, store: EventStore) -> None:
        """Events read back equal the appended models, with their ids, types and versions."""
        events = [
            Registered(customer_id="c1", plan="pro", credit_limit=500),
            Ordered(customer_id="c1", amount=Decimal("19.99"),
                    at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ]
        result = store.append("customer-1", events, expected_version=NO_STREAM)
        assert result.version == 2
        assert result.positions == (1, 2)

        records = list(store.read_stream("customer-1"))
        assert [r.event for r in records] == events
        assert [r.event_id for r in records] == [e.event_id for e in events]
        assert [r.version for r in records] == [1, 2]
        assert [r.position for r in records] == [1, 2]
        assert [r.event_type for r in records] == ["test.Registered", "test.Ordered"]
        assert all(r.stream_id == "customer-1" and r.schema_version == 1 for r in records)

    def test_recorded_at_is_the_commit_time_in_utc(self, store: EventStore) -> None:
        """recorded_at is timezone-aware UTC and close to now."""
        before = datetime.now(UTC)
        store.append("s", notes(1))
        (record,) = store.read_all()
        assert record.recorded_at.tzinfo is not None
        assert record.recorded_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= record.recorded_at <= datetime.now(UTC)

    def test_read_all_is_in_global_commit_order(self, store: EventStore) -> None:
        """read_all interleaves streams in the order the appends committed."""
        a1, b1, a2 = store.append("a", notes(1)), store.append("b", notes(1)), store.append(
            "a", notes(1))
        assert [(r.stream_id, r.version, r.position) for r in store.read_all()] == [
            ("a", 1, a1.positions[0]), ("b", 1, b1.positions[0]), ("a", 2, a2.positions[0])]

    def test_events_survive_reopening_the_store(self, url: str) -> None:
        """What one store object appended, a new one on the same URL reads."""
        with EventStore(url, registry=REGISTRY) as first:
            first.append("s", notes(3))
        with EventStore(url, registry=REGISTRY) as second:
            assert [r.event.number for r in second.read_stream("s")] == [0, 1, 2]  # type: ignore[attr-defined]

    def test_an_unknown_stream_reads_as_empty(self, store: EventStore) -> None:
        """Reading a stream that has no events yields nothing, and its version is 0."""
        assert list(store.read_stream("nobody")) == []
        assert store.stream_version("nobody") == 0

    # Expected versions

    def test_no_stream_accepts_only_a_new_stream(self, store: EventStore) -> None:
        """NO_STREAM appends to a new stream and refuses an existing one, writing nothing."""
        store.append("s", notes(1), expected_version=NO_STREAM)
        with pytest.raises(WrongExpectedVersion) as caught:
            store.append("s", notes(1), expected_version=NO_STREAM)
        assert caught.value.actual == 1
        assert caught.value.expected is NO_STREAM
        assert store.stream_version("s") == 1

    def test_version_zero_means_no_stream(self, store: EventStore) -> None:
        """Expecting version 0 is expecting a stream without events."""
        store.append("s", notes(1), expected_version=0)
        with pytest.raises(WrongExpectedVersion):
            store.append("s", notes(1), expected_version=0)

    def test_stream_exists_refuses_a_new_stream(self, store: EventStore) -> None:
        """STREAM_EXISTS refuses a stream without events and accepts one with events."""
        with pytest.raises(WrongExpectedVersion) as caught:
            store.append("s", notes(1), expected_version=STREAM_EXISTS)
        assert caught.value.actual is None
        assert list(store.read_all()) == []
        store.append("s", notes(1))
        assert store.append("s", notes(1), expected_version=STREAM_EXISTS).version == 2

    def test_exact_version_must_match_the_last_event(self, store: EventStore) -> None:
        """An int expected version must equal the version of the stream's last event."""
        store.append("s", notes(2))
        for wrong in (0, 1, 3):
            with pytest.raises(WrongExpectedVersion, match="'s' is at version 2"):
                store.append("s", notes(1), expected_version=wrong)
        assert store.append("s", notes(1), expected_version=2).version == 3
        assert store.stream_version("s") == 3

    def test_any_appends_whatever_the_stream_holds(self, store: EventStore) -> None:
        """ANY appends to new and existing streams alike."""
        assert store.append("s", notes(1), expected_version=ANY).version == 1
        assert store.append("s", notes(2), expected_version=ANY).version == 3

    @pytest.mark.parametrize("bad", [-1, True, "1", 1.0, None])
    def test_a_malformed_expected_version_is_a_configuration_error(
        self, store: EventStore, bad: object
    ) -> None:
        """An expected version that is neither a sentinel nor an int >= 0 is refused up front."""
        with pytest.raises(ConfigurationError, match="expected_version"):
            store.append("s", notes(1), expected_version=bad)  # type: ignore[arg-type]

    def test_an_empty_batch_checks_the_version_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        """Appending no events checks the expected version and changes nothing."""
        store.append("s", notes(1))
        assert store.append("s", [], expected_version=1).version == 1
        with pytest.raises(WrongExpectedVersion):
            store.append("s", [], expected_version=NO_STREAM)
        assert len(list(store.read_all())) == 1

    # Atomic batches, retries and duplicates

    def test_a_failing_batch_writes_nothing(self, store: EventStore) -> None:
        """A batch whose last event is a duplicate of a stored one leaves no event behind."""
        stored = notes(1)
        store.append("a", stored)
        with pytest.raises(DuplicateEventError):
            store.append("b", [*notes(3, start=10), stored[0]])
        assert [r.stream_id for r in store.read_all()] == ["a"]
        assert store.stream_version("b") == 0

    @pytest.mark.parametrize("expected", [NO_STREAM, ANY, 0])
    def test_retrying_a_committed_append_stores_nothing_twice(
        self, store: EventStore, expected: object
    ) -> None:
        """Appending the same events again (a retried request) succeeds and writes nothing."""
        batch = notes(3)
        first = store.append("s", batch, expected_version=expected)  # type: ignore[arg-type]
        store.append("other", notes(1))
        again = store.append("s", batch, expected_version=expected)  # type: ignore[arg-type]
        assert again == first
        assert store.stream_version("s") == 3
        assert len(list(store.read_all())) == 4

    def test_a_retry_after_the_stream_moved_on_still_succeeds(self, store: EventStore) -> None:
        """A retry is recognised by its event ids even if the stream has grown since."""
        batch = notes(2)
        first = store.append("s", batch, expected_version=NO_STREAM)
        store.append("s", notes(1), expected_version=2)
        assert store.append("s", batch, expected_version=NO_STREAM) == first
        assert store.stream_version("s") == 3

    def test_stored_event_ids_in_another_stream_are_refused(self, store: EventStore) -> None:
        """The same event ids appended to another stream raise DuplicateEventError."""
        batch = notes(2)
        store.append("a", batch)
        with pytest.raises(DuplicateEventError, match="already stored"):
            store.append("b", batch)

    def test_a_batch_mixing_stored_and_new_ids_is_refused(self, store: EventStore) -> None:
        """A batch that repeats only part of an earlier append is not a retry."""
        batch = notes(2)
        store.append("s", batch)
        with pytest.raises(DuplicateEventError):
            store.append("s", [batch[1], *notes(1, start=5)])
        with pytest.raises((DuplicateEventError, WrongExpectedVersion)):
            store.append("s", [batch[1], batch[0]], expected_version=NO_STREAM)
        assert store.stream_version("s") == 2

    def test_a_stale_retry_with_a_wrong_version_is_a_version_conflict(
        self, store: EventStore
    ) -> None:
        """New events with a wrong expected version raise WrongExpectedVersion, not a retry."""
        store.append("s", notes(2))
        with pytest.raises(WrongExpectedVersion):
            store.append("s", notes(1, start=9), expected_version=NO_STREAM)

    def test_the_same_event_twice_in_one_batch_is_refused(self, store: EventStore) -> None:
        """A batch holding one event instance twice raises DuplicateEventError."""
        event = Noted(text="once")
        with pytest.raises(DuplicateEventError):
            store.append("s", [event, event])
        assert list(store.read_all()) == []

    @pytest.mark.parametrize("size", [3, 40])
    def test_batches_small_and_bulk_keep_the_same_promises(
        self, store: EventStore, size: int
    ) -> None:
        """Batches of every size (PostgreSQL inserts larger ones by COPY) are atomic, are
        recognised on retry, and refuse an event id stored elsewhere or given twice."""
        batch = notes(size)
        first = store.append("s", batch, expected_version=NO_STREAM)
        assert store.append("s", batch, expected_version=NO_STREAM) == first
        with pytest.raises(DuplicateEventError):
            store.append("t", [*notes(size, start=1000), batch[-1]])
        repeated = notes(size, start=2000)
        with pytest.raises(DuplicateEventError):
            store.append("u", [*repeated, repeated[0]])
        assert store.stream_version("t") == store.stream_version("u") == 0
        assert [r.event for r in store.read_all()] == batch
        assert store.verify().ok

    # Reading

    def test_read_stream_options(self, store: EventStore) -> None:
        """from_version, backwards and limit select and order a stream's events."""
        store.append("s", notes(6))

        def versions(**options: object) -> list[int]:
            return [r.version for r in store.read_stream("s", **options)]  # type: ignore[arg-type]

        assert versions() == [1, 2, 3, 4, 5, 6]
        assert versions(from_version=4) == [4, 5, 6]
        assert versions(limit=2) == [1, 2]
        assert versions(from_version=2, limit=3) == [2, 3, 4]
        assert versions(backwards=True) == [6, 5, 4, 3, 2, 1]
        assert versions(backwards=True, from_version=3) == [3, 2, 1]
        assert versions(backwards=True, limit=2) == [6, 5]
        assert versions(limit=0) == []
        assert versions(from_version=7) == []

    def test_read_all_options(self, store: EventStore) -> None:
        """after, limit and types select events of the whole log."""
        store.append("a", [Registered(customer_id="1", plan="p", credit_limit=1)])
        store.append("b", notes(3))
        store.append("a", [Registered(customer_id="1", plan="q", credit_limit=2)])

        def positions(**options: object) -> list[int]:
            return [r.position for r in store.read_all(**options)]  # type: ignore[arg-type]

        assert positions() == [1, 2, 3, 4, 5]
        assert positions(after=3) == [4, 5]
        assert positions(after=1, limit=2) == [2, 3]
        assert positions(after=5) == []
        assert positions(types=[Registered]) == [1, 5]
        assert positions(types=["test.Noted"], after=2, limit=1) == [3]
        assert positions(types=[Ordered]) == []

    def test_reads_page_through_large_logs(
        self, store: EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Reads cross page boundaries without losing or repeating events."""
        monkeypatch.setattr(storage_log, "PAGE_SIZE", 3)
        store.append("s", notes(10))
        store.append("t", notes(2))
        assert [r.position for r in store.read_all()] == list(range(1, 13))
        assert [r.position for r in store.read_all(after=2, limit=7)] == list(range(3, 10))
        assert [r.version for r in store.read_stream("s", backwards=True)] == list(
            range(10, 0, -1))
        assert [r.version for r in store.read_stream("s", from_version=3, limit=4)] == [
            3, 4, 5, 6]
        assert [r.position for r in store.read_all(types=["test.Noted"], after=9)] == [
            10, 11, 12]

    @pytest.mark.parametrize(("option", "value"), [
        ("after", -1), ("limit", -1), ("after", "3"), ("limit", 2.5)])
    def test_malformed_read_options_are_configuration_errors(
        self, store: EventStore, option: str, value: object
    ) -> None:
        """Negative or non-int read options are refused with a clear error."""
        with pytest.raises(ConfigurationError, match=option):
            list(store.read_all(**{option: value}))  # type: ignore[arg-type]

    def test_metadata_is_stored_with_each_event(self, store: EventStore) -> None:
        """Metadata given at append reads back on every event of the batch."""
        metadata: dict[str, JsonValue] = {
            "correlation_id": "req-1", "causation_id": "cmd-9", "tags": ["a", 1]}
        store.append("s", notes(2), metadata=metadata)
        store.append("s", notes(1))
        assert [r.metadata for r in store.read_stream("s")] == [metadata, metadata, {}]

    @pytest.mark.parametrize("bad", [{"when": datetime.now}, {1: "x"}])
    def test_metadata_must_be_json_with_string_keys(
        self, store: EventStore, bad: dict[object, object]
    ) -> None:
        """Metadata that is not a JSON object with string keys is refused."""
        with pytest.raises(ConfigurationError, match="metadata"):
            store.append("s", notes(1), metadata=bad)  # type: ignore[arg-type]

    def test_an_unknown_type_reads_as_a_generic_record(self, url: str) -> None:
        """A reader without the event's class gets an UnknownEvent holding the data."""
        with EventStore(url, registry=REGISTRY) as writer:
            event = Registered(customer_id="7", plan="pro", credit_limit=3)
            writer.append("s", [event])
        with EventStore(url, registry=EventRegistry()) as reader:
            (record,) = reader.read_all()
        assert isinstance(record.event, UnknownEvent)
        assert record.event.type_name == "test.Registered"
        assert record.event.data == {"customer_id": "7", "plan": "pro", "credit_limit": 3}
        assert record.event.event_id == event.event_id

    def test_a_payload_that_does_not_fit_its_class_is_a_clear_error(self, url: str) -> None:
        """A stored event that fails validation raises EventDecodingError without its values."""
        with EventStore(url, registry=REGISTRY) as writer:
            writer.append("s", [Noted(text="secret-value-123")])

        class Stricter(Event, type_name="test.Noted", register=False):
            text: int

        stricter = EventRegistry()
        stricter.register(Stricter)
        with EventStore(url, registry=stricter) as reader, pytest.raises(
            EventDecodingError, match="position 1 does not fit"
        ) as caught:
            list(reader.read_all())
        assert "secret-value-123" not in str(caught.value)

    def test_an_event_newer_than_its_class_is_a_clear_error(self, url: str) -> None:
        """A stored schema version above the class's raises EventDecodingError."""

        class Newer(Event, type_name="test.Versioned", schema_version=2, register=False):
            text: str

        class Older(Event, type_name="test.Versioned", register=False):
            text: str

        newer, older = EventRegistry(), EventRegistry()
        newer.register(Newer)
        older.register(Older)
        with EventStore(url, registry=newer) as writer:
            writer.append("s", [Newer(text="x")])
        with EventStore(url, registry=older) as reader, pytest.raises(
            EventDecodingError, match="schema version 2, newer"
        ):
            list(reader.read_all())

    def test_events_of_unregistered_classes_cannot_be_appended(self, store: EventStore) -> None:
        """Appending an event whose class is not in the store's registry is refused."""

        class Loose(Event, type_name="test.Loose", register=False):
            x: int

        with pytest.raises(ConfigurationError, match="not the class registered"):
            store.append("s", [Loose(x=1)])

    def test_a_blank_stream_id_is_refused(self, store: EventStore) -> None:
        """Stream ids are non-empty strings."""
        with pytest.raises(ConfigurationError, match="stream id"):
            store.append("", notes(1))

    def test_a_database_failure_during_an_append_is_a_storage_error(
        self, store: EventStore, url: str
    ) -> None:
        """Appends run on the driver's cursor; its failures still read as StorageError."""
        store.append("s", notes(1))
        engine = tampering.raw_engine(url)
        try:
            tampering.execute(engine, "ALTER TABLE shredstore_events "
                                      "RENAME TO shredstore_events_gone")
        finally:
            engine.dispose()
        with pytest.raises(StorageError, match="refused"):
            store.append("s", [Registered(customer_id="c", plan="p", credit_limit=1)])

    # Immutability, enforced by the database

    @pytest.mark.parametrize("statement", [
        "UPDATE shredstore_events SET stream_id = 'x'",
        "UPDATE shredstore_events SET payload = '{}' WHERE position = 1",
        "DELETE FROM shredstore_events",
        "DELETE FROM shredstore_events WHERE position = 1",
    ])
    def test_the_database_refuses_to_change_stored_events(
        self, store: EventStore, url: str, statement: str
    ) -> None:
        """Raw SQL UPDATE and DELETE against the events table fail with a reason."""
        store.append("s", notes(2))
        engine = tampering.raw_engine(url)
        try:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                tampering.execute(engine, statement)
        finally:
            engine.dispose()
        assert [r.version for r in store.read_stream("s")] == [1, 2]
        assert store.verify().ok

    # Tamper evidence

    @pytest.fixture
    def tampered(self, store: EventStore, url: str) -> Iterator[sa.Engine]:
        """A store of 8 events whose triggers were dropped, and an engine to attack it with."""
        for i in range(4):
            store.append(f"s{i % 2}", notes(2, start=2 * i))
        engine = tampering.raw_engine(url)
        tampering.drop_triggers(engine)
        yield engine
        engine.dispose()

    def test_an_intact_log_verifies(self, store: EventStore) -> None:
        """verify() of an untouched log has no findings and reports its head."""
        store.append("s", notes(5))
        report = store.verify()
        assert report.ok
        assert report.events_checked == 5
        assert report.head == store.head()
        assert report.head.position == 5

    def test_dropped_triggers_are_reported(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """A log whose immutability triggers are gone does not verify."""
        findings = store.verify().findings
        assert findings
        assert {f.kind for f in findings} == {"unprotected"}

    def test_reopening_a_store_does_not_hide_dropped_triggers(
        self, store: EventStore, tampered: sa.Engine, url: str
    ) -> None:
        """A store opened after the triggers were dropped still reports them missing."""
        with EventStore(url, registry=REGISTRY) as reopened:
            assert {f.kind for f in reopened.verify().findings} == {"unprotected"}

    def test_restoring_protection_brings_the_triggers_back(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """restore_protection re-creates the dropped triggers, names them, and they refuse again."""
        assert store.restore_protection()
        assert store.verify().ok
        assert store.restore_protection() == []
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            tampering.execute(tampered, "DELETE FROM shredstore_events")

    def test_a_modified_row_is_reported_by_position(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """Changing one row's payload is reported as modified at its position."""
        tampering.execute(tampered, "UPDATE shredstore_events SET payload = :p "
                          "WHERE position = 5", p='{"text":"changed","number":4}')
        assert [k for k in kinds(store) if k[0] != "unprotected"] == [("modified", 5)]

    def test_a_modified_hash_is_reported(self, store: EventStore, tampered: sa.Engine) -> None:
        """Overwriting a row's stored hash is reported at that row."""
        tampering.execute(tampered, "UPDATE shredstore_events SET hash = prev_hash "
                          "WHERE position = 3")
        assert [k for k in kinds(store) if k[0] != "unprotected"] == [("modified", 3)]

    def test_a_deleted_row_is_reported_by_position(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """Deleting a row is reported as deleted at its position."""
        tampering.execute(tampered, "DELETE FROM shredstore_events WHERE position = 4")
        assert [k for k in kinds(store) if k[0] != "unprotected"] == [("deleted", 4)]

    def test_a_deleted_row_with_the_gap_closed_is_reported(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """Deleting a row and renumbering the rest breaks the chain where the row was."""
        tampering.execute(tampered, "DELETE FROM shredstore_events WHERE position = 4")
        tampering.shift_down(tampered, 5)
        assert [k for k in kinds(store) if k[0] != "unprotected"] == [("unlinked", 4)]

    def test_an_inserted_row_is_reported_by_position(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """A well-forged row squeezed in at position 5 is reported as inserted there."""
        tampering.shift_up(tampered, 5)
        tampering.forge_row(tampered, 5)
        assert [k for k in kinds(store) if k[0] != "unprotected"] == [("inserted", 5)]

    def test_reordered_rows_are_reported_by_position(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """Two rows that swapped positions are both reported as reordered."""
        tampering.swap(tampered, 3, 4)
        assert [k for k in kinds(store) if k[0] != "unprotected"] == [
            ("reordered", 3), ("reordered", 4)]

    def test_a_row_moved_to_the_end_is_reported(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """A row moved to the end leaves a deletion and a misplaced row behind."""
        tampering.execute(tampered, "UPDATE shredstore_events SET position = 9 "
                          "WHERE position = 2")
        assert [k for k in kinds(store) if k[0] != "unprotected"] == [
            ("deleted", 2), ("reordered", 9)]

    def test_a_truncated_log_fails_its_anchor(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """Deleting the newest events is caught by a head kept from earlier."""
        anchor = store.head()
        tampering.execute(tampered, "DELETE FROM shredstore_events WHERE position >= 7")
        findings = store.verify(expected_head=anchor).findings
        assert [(f.kind, f.position) for f in findings if f.kind != "unprotected"] == [
            ("anchor", 8)]

    def test_a_rewritten_log_fails_its_anchor(
        self, store: EventStore, tampered: sa.Engine
    ) -> None:
        """A head whose row now has another hash is reported as rewritten."""
        anchor = store.head()
        tampering.execute(tampered, "UPDATE shredstore_events SET hash = prev_hash "
                          "WHERE position = 8")
        found = [(f.kind, f.position) for f in store.verify(expected_head=anchor).findings]
        assert ("anchor", 8) in found
        assert ("modified", 8) in found

    # Property: any sequence of appends reads back exactly

    # Each backend subclass runs this as its own executor, on purpose; the store fixture is
    # shared by the examples, which is why every example works on streams of its own.
    @settings(max_examples=25, deadline=None, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
    @given(batches=st.lists(
        st.tuples(
            st.sampled_from(["alpha", "beta", "gamma"]),
            st.lists(st.tuples(st.text(max_size=30), st.integers(-(2**63), 2**63 - 1)),
                     max_size=5),
        ),
        max_size=8,
    ))
    def test_any_sequence_of_appends_reads_back_exactly(
        self, store: EventStore, batches: list[tuple[str, list[tuple[str, int]]]]
    ) -> None:
        """Whatever is appended, in whatever batches, reads back identically and in order."""
        start = store.head().position
        prefix = f"p{start}-"
        expected_streams: dict[str, list[Noted]] = {}
        expected_log: list[Noted] = []
        for stream, values in batches:
            events = [Noted(text=text, number=number) for text, number in values]
            version = len(expected_streams.get(prefix + stream, []))
            result = store.append(prefix + stream, events, expected_version=version)
            assert result.version == version + len(events)
            expected_streams.setdefault(prefix + stream, []).extend(events)
            expected_log.extend(events)
        for stream, events in expected_streams.items():
            assert [r.event for r in store.read_stream(stream)] == events
        records = list(store.read_all(after=start))
        assert [r.event for r in records] == expected_log
        assert [r.position for r in records] == list(range(start + 1, start + 1 + len(records)))
        assert store.verify().ok
