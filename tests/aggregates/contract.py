"""The behaviour of aggregates, repositories, snapshots and upcasters on every backend.

`AggregateContract` is not collected on its own: `test_sqlite.py` and `test_postgres.py`
subclass it and provide the `url` fixture.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyvault import MasterKey
from shredstore import (
    REDACTED,
    Aggregate,
    AggregateNotFound,
    ConfigurationError,
    Event,
    EventDecodingError,
    EventStore,
    PersonalData,
    Repository,
    SubjectErasedError,
    SubjectId,
    WrongExpectedVersion,
    default_registry,
    upcaster,
)
from tests.aggregates.model import (
    ERASED_EMAIL,
    TIERS,
    Customer,
    Member,
    MemberV1,
    Ordered,
    Profile,
    ProfileV1,
    ProfileV2,
    Registered,
    Renamed,
    Wallet,
    WalletInCents,
    registry_of,
)

NAME = "Alice Example"
EMAIL = "alice@example.com"


def register(customer_id: str, name: str = NAME, email: str = EMAIL) -> Registered:
    return Registered(customer_id=customer_id, name=name, email=email)


def order(customer_id: str, amount: int = 10) -> Ordered:
    return Ordered(customer_id=customer_id, amount=amount)


def snapshot_rows(url: str, stream_id: str) -> list[dict[str, Any]]:
    """The stored snapshots of `stream_id`, oldest first, read with plain SQL."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT version, type_name, schema_version, state, personal "
                "FROM shredstore_snapshots WHERE stream_id = :stream ORDER BY version"),
                {"stream": stream_id})
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def unique_id() -> str:
    return uuid.uuid4().hex[:12]


class AggregateContract:
    """Subclasses provide a `url` fixture naming a fresh, empty store."""

    @pytest.fixture
    def master_key(self) -> MasterKey:
        return MasterKey.generate()

    @pytest.fixture
    def store(self, url: str, master_key: MasterKey) -> Iterator[EventStore]:
        with EventStore(url, master_key=master_key) as store:
            yield store

    @pytest.fixture
    def customers(self, store: EventStore) -> Repository[Customer]:
        return Repository(store, Customer, snapshot_every=3)

    def registered(self, customers: Repository[Customer], customer_id: str = "42") -> Customer:
        customer = Customer(id=customer_id)
        customer.record(register(customer_id))
        customers.save(customer)
        return customer

    # Aggregates and the repository

    def test_record_applies_the_event_and_keeps_it_pending(self, store: EventStore) -> None:
        """record() changes the state at once and keeps the event, unsaved, as pending."""
        customer = Customer(id="42")
        event = register("42")
        customer.record(event)
        assert (customer.customer_id, customer.name, customer.email) == ("42", NAME, EMAIL)
        assert customer.pending == (event,)
        assert customer.version == 0
        assert customer.stream_id == "customer-42"
        assert store.stream_version("customer-42") == 0

    def test_save_appends_the_pending_events_and_advances_the_version(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """save() appends the pending events to the aggregate's stream and clears them."""
        customer = Customer(id="42")
        events = [register("42"), order("42", 5)]
        for event in events:
            customer.record(event)
        result = customers.save(customer)
        assert result.version == 2
        assert customer.version == 2
        assert customer.pending == ()
        assert [r.event for r in store.read_stream("customer-42")] == events
        assert customers.save(customer).version == 2  # nothing pending: nothing written
        assert store.stream_version("customer-42") == 2

    def test_a_stale_copy_cannot_save_over_a_newer_one(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """A copy loaded at the version another copy then saved over raises and writes nothing."""
        self.registered(customers)
        first, stale = customers.load("42"), customers.load("42")
        first.record(order("42", 1))
        customers.save(first)
        late = order("42", 2)
        stale.record(late)
        with pytest.raises(WrongExpectedVersion) as caught:
            customers.save(stale)
        assert caught.value.stream_id == "customer-42"
        assert (caught.value.expected, caught.value.actual) == (1, 2)
        assert [r.event.amount for r in store.read_stream("customer-42", from_version=2)] == [1]  # type: ignore[attr-defined]
        assert stale.version == 1
        assert stale.pending == (late,)

    def test_load_rebuilds_state_and_version_from_the_events(
        self, customers: Repository[Customer]
    ) -> None:
        """load() applies every stored event in order and takes the last one's version."""
        self.registered(customers)
        customers.update("42", lambda c: c.record(order("42", 5)))
        customers.update("42", lambda c: c.record(Renamed(customer_id="42", name="Alice B")))
        for use_snapshots in (True, False):
            loaded = customers.load("42", use_snapshots=use_snapshots)
            assert loaded == Customer(id="42", version=3, customer_id="42", name="Alice B",
                                      email=EMAIL, orders=1, total=5)
            assert loaded.pending == ()

    @pytest.mark.parametrize("use_snapshots", [True, False])
    def test_an_id_without_events_is_not_found(
        self, customers: Repository[Customer], use_snapshots: bool
    ) -> None:
        """Loading an id whose stream has no events raises AggregateNotFound naming the stream."""
        self.registered(customers, "42")
        with pytest.raises(AggregateNotFound, match="'customer-43'"):
            customers.load("43", use_snapshots=use_snapshots)

    @pytest.mark.parametrize("every", [0, -3, True, 1.5, "3"])
    def test_snapshot_every_must_be_a_positive_int(
        self, store: EventStore, every: object
    ) -> None:
        """A repository refuses a snapshot interval that is not a positive int."""
        with pytest.raises(ConfigurationError, match="snapshot_every"):
            Repository(store, Customer, snapshot_every=every)  # type: ignore[arg-type]

    def test_update_loads_runs_the_command_and_saves(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """update() returns the saved aggregate with the command's events stored."""
        self.registered(customers)
        updated = customers.update("42", lambda c: c.record(order("42", 7)))
        assert (updated.version, updated.orders, updated.total) == (2, 1, 7)
        assert updated.pending == ()
        assert updated == customers.load("42")
        assert store.stream_version("customer-42") == 2

    def test_update_retries_a_command_that_lost_a_race(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """A conflict makes update() reload and run the command again on the newer state."""
        self.registered(customers)
        seen: list[tuple[int, int]] = []

        def command(customer: Customer) -> None:
            seen.append((customer.version, customer.total))
            if len(seen) == 1:  # another writer saves between our load and our save
                rival = customers.load("42")
                rival.record(order("42", 5))
                customers.save(rival)
            customer.record(order("42", 7))

        updated = customers.update("42", command, retries=1)
        assert seen == [(1, 0), (2, 5)]
        assert (updated.version, updated.orders, updated.total) == (3, 2, 12)
        assert [r.event.amount for r in store.read_stream("customer-42", from_version=2)] == [  # type: ignore[attr-defined]
            5, 7]

    @pytest.mark.parametrize("retries", [0, 2])
    def test_update_gives_up_after_its_retries(
        self, store: EventStore, customers: Repository[Customer], retries: int
    ) -> None:
        """After `retries` retries that all conflict, update() raises; none of its events stay."""
        self.registered(customers)
        runs = 0

        def command(customer: Customer) -> None:
            nonlocal runs
            runs += 1
            rival = customers.load("42")
            rival.record(order("42", 1))
            customers.save(rival)
            customer.record(order("42", 1000))

        with pytest.raises(WrongExpectedVersion):
            customers.update("42", command, retries=retries)
        assert runs == retries + 1
        assert [r.event.amount for r in store.read_stream("customer-42", from_version=2)] == [  # type: ignore[attr-defined]
            1] * runs

    def test_update_of_a_missing_aggregate_needs_create(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """Without create=True, update() of an unknown id raises before running the command."""
        runs: list[Customer] = []
        with pytest.raises(AggregateNotFound):
            customers.update("42", runs.append)
        assert runs == []
        assert store.stream_version("customer-42") == 0

    def test_update_with_create_starts_a_missing_aggregate(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """With create=True, update() runs the command on a new aggregate and saves it."""
        created = customers.update("42", lambda c: c.record(register("42")), create=True)
        assert created == Customer(id="42", version=1, customer_id="42", name=NAME, email=EMAIL)
        assert created == customers.load("42")
        again = customers.update("42", lambda c: c.record(order("42", 3)), create=True)
        assert (again.version, again.name, again.total) == (2, NAME, 3)

    # Snapshots

    def test_a_snapshot_is_written_whenever_a_save_crosses_a_multiple(
        self, url: str, customers: Repository[Customer]
    ) -> None:
        """With snapshot_every=3, a save from version v to w snapshots at w if it passes 3k."""
        self.registered(customers)  # version 1
        written = []
        for _ in range(5):  # versions 2 to 6, one save each
            customers.update("42", lambda c: c.record(order("42")))
            written.append([row["version"] for row in snapshot_rows(url, "customer-42")])
        assert written == [[], [3], [3], [3], [3, 6]]

        def batch(size: int) -> None:
            customers.update("42", lambda c: [c.record(order("42")) for _ in range(size)])

        batch(4)  # 6 -> 10 passes 9
        batch(2)  # 10 -> 12 reaches 12
        batch(2)  # 12 -> 14 passes nothing
        rows = snapshot_rows(url, "customer-42")
        assert [row["version"] for row in rows] == [3, 6, 10, 12]
        assert {(row["type_name"], row["schema_version"]) for row in rows} == {
            ("snapshot:test.aggregates.Customer", 1)}

    def test_without_an_interval_no_snapshot_is_written(
        self, url: str, store: EventStore
    ) -> None:
        """A repository without snapshot_every never writes a snapshot."""
        customers = Repository(store, Customer)
        self.registered(customers)
        for _ in range(4):
            customers.update("42", lambda c: c.record(order("42")))
        assert snapshot_rows(url, "customer-42") == []

    def test_a_snapshot_row_holds_no_plaintext_personal_data(
        self, url: str, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """A snapshot's state lacks the personal fields; they are sealed, later redacted."""
        self.registered(customers)
        customers.update("42", lambda c: [c.record(order("42", 4)), c.record(order("42", 6))])
        store.erase_subject("42")
        customers.update("42", lambda c: [c.record(order("42", 1)) for _ in range(3)])

        before, after = snapshot_rows(url, "customer-42")
        assert json.loads(before["state"]) == {
            "id": "42", "version": 3, "customer_id": "42", "orders": 2, "total": 10}
        (sealed,) = json.loads(before["personal"])
        assert sealed.keys() == {"subject", "paths", "sealed"}
        assert (sealed["subject"], sealed["paths"]) == ("42", [["name"], ["email"]])
        assert json.loads(after["state"]) == {
            "id": "42", "version": 6, "customer_id": "42", "orders": 5, "total": 13}
        assert json.loads(after["personal"]) == [
            {"subject": "42", "paths": [["name"], ["email"]], "redacted": True}]
        for row in (before, after):
            text = row["state"] + row["personal"]
            for value in (NAME, EMAIL, "Alice", "example.com", ERASED_EMAIL):
                assert value not in text

    def test_loading_starts_from_the_newest_snapshot(
        self, store: EventStore, customers: Repository[Customer],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """load() reads only the events after the newest snapshot, and gets the replay's state."""
        self.registered(customers)
        for amount in range(1, 6):  # versions 2 to 6: snapshots at 3 and 6
            customers.update("42", lambda c, amount=amount: c.record(order("42", amount)))
        customers.update("42", lambda c: c.record(order("42", 100)))  # version 7
        reads: list[int | None] = []
        loads: list[tuple[int | None, list[int]]] = []
        read_stream, load_with_snapshot = store.read_stream, store.load_with_snapshot

        def spy(stream_id: str, **options: Any) -> Any:
            reads.append(options.get("from_version", 1))
            return read_stream(stream_id, **options)

        def snapshot_spy(cls: Any, stream_id: str, **options: Any) -> Any:
            state, records = load_with_snapshot(cls, stream_id, **options)
            read = list(records)
            loads.append((None if state is None else state.version, [r.version for r in read]))
            return state, iter(read)

        monkeypatch.setattr(store, "read_stream", spy)
        monkeypatch.setattr(store, "load_with_snapshot", snapshot_spy)
        from_snapshot = customers.load("42")
        replayed = customers.load("42", use_snapshots=False)
        assert loads == [(6, [7])]  # the snapshot at 6, then only the event after it
        assert reads == [1]  # the replay without snapshots reads it all
        assert from_snapshot == replayed
        assert (replayed.version, replayed.orders, replayed.total) == (7, 6, 115)

    def test_a_snapshot_taken_before_an_erasure_loads_redacted(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """Erasing the subject redacts a snapshot's fields exactly as it redacts the events."""
        self.registered(customers)
        customers.update("42", lambda c: [c.record(order("42", 2)) for _ in range(3)])  # 4
        assert customers.load("42") == customers.load("42", use_snapshots=False)
        store.erase_subject("42")
        from_snapshot = customers.load("42")
        assert from_snapshot == customers.load("42", use_snapshots=False)
        assert from_snapshot == Customer(id="42", version=4, customer_id="42", name=REDACTED,
                                         email=ERASED_EMAIL, orders=3, total=6)
        snapshot = store.load_snapshot(Customer, "customer-42",
                                       type_name=Customer.__stored_type__,
                                       schema_version=Customer.__schema_version__)
        assert snapshot is not None
        assert (snapshot.version, snapshot.name, snapshot.email) == (4, REDACTED, ERASED_EMAIL)

    def test_a_snapshot_taken_after_an_erasure_stores_the_fields_as_redacted(
        self, url: str, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """A snapshot of an erased subject's state keeps no value and loads like a replay."""
        self.registered(customers)
        customers.update("42", lambda c: c.record(order("42", 2)))  # 2
        store.erase_subject("42")
        customers.update("42", lambda c: c.record(order("42", 3)))  # 3: snapshot
        customers.update("42", lambda c: c.record(order("42", 4)))  # 4
        (row,) = snapshot_rows(url, "customer-42")
        assert json.loads(row["personal"]) == [
            {"subject": "42", "paths": [["name"], ["email"]], "redacted": True}]
        from_snapshot = customers.load("42")
        assert from_snapshot == customers.load("42", use_snapshots=False)
        assert from_snapshot == Customer(id="42", version=4, customer_id="42", name=REDACTED,
                                         email=ERASED_EMAIL, orders=3, total=9)

    def test_a_snapshot_of_a_schema_version_without_upcaster_is_ignored(
        self, store: EventStore
    ) -> None:
        """A snapshot the class cannot upcast to its schema version is skipped for a replay."""
        old = Repository(store, MemberV1, snapshot_every=2)
        member = MemberV1(id="7")
        member.record(register("7"))
        member.record(order("7"))
        old.save(member)
        assert store.load_snapshot(MemberV1, "member-7", type_name=MemberV1.__stored_type__,
                                   schema_version=1) is not None

        members = Repository(store, Member)
        assert store.load_snapshot(Member, "member-7", type_name=Member.__stored_type__,
                                   schema_version=2) is None
        loaded = members.load("7")
        assert loaded == members.load("7", use_snapshots=False)
        assert loaded == Member(id="7", version=2, member_id="7", full_name=NAME, orders=1)

    @pytest.mark.parametrize("erase", [False, True])
    def test_a_snapshot_upcaster_lifts_old_snapshots(
        self, url: str, master_key: MasterKey, erase: bool
    ) -> None:
        """A registered upcaster of the aggregate lifts its old snapshots, erased or not."""
        registry = registry_of()
        seen: list[object] = []

        @upcaster(Member, from_version=1, registry=registry)
        def _rename(data: dict[str, Any]) -> dict[str, Any]:
            seen.append(data["name"])
            data["full_name"] = data.pop("name")
            return data

        with EventStore(url, master_key=master_key, registry=registry) as store:
            member = MemberV1(id="7")
            member.record(register("7"))
            member.record(order("7"))
            Repository(store, MemberV1, snapshot_every=2).save(member)
            if erase:
                store.erase_subject("7")
            members = Repository(store, Member)
            loaded = members.load("7")
            assert seen == [REDACTED if erase else NAME]
            assert loaded == members.load("7", use_snapshots=False)
            assert loaded == Member(id="7", version=2, member_id="7",
                                    full_name=REDACTED if erase else NAME, orders=1)
            snapshot = store.load_snapshot(Member, "member-7", type_name=Member.__stored_type__,
                                           schema_version=2)
            assert snapshot == loaded

    def test_a_snapshot_of_a_newer_schema_version_is_ignored(self, store: EventStore) -> None:
        """A reader whose class is older than a snapshot's schema replays instead of using it.

        An event newer than its class raises EventDecodingError; a snapshot is a cache, so a
        newer one must be skipped, never read as if it had the reader's schema (here version 2
        counts in cents, and version 1 would read 100 times the balance).
        """
        newer = Repository(store, WalletInCents, snapshot_every=2)
        wallet = WalletInCents(id="w")
        wallet.record(order("w", 3))
        wallet.record(order("w", 4))
        newer.save(wallet)
        assert newer.load("w").balance == 700

        older = Repository(store, Wallet)
        assert store.load_snapshot(Wallet, "wallet-w", type_name=Wallet.__stored_type__,
                                   schema_version=1) is None
        assert older.load("w") == older.load("w", use_snapshots=False)
        assert older.load("w").balance == 7

    def test_a_snapshot_that_cannot_be_taken_does_not_fail_a_committed_save(
        self, store: EventStore, customers: Repository[Customer]
    ) -> None:
        """A state whose subject is not known yet (orders before the registration) still saves.

        The snapshot is written after the events are committed; failing then would report a
        stored change as failed, and update() callers would run the command again.
        """
        created = customers.update("42", lambda c: [c.record(order("42")) for _ in range(3)],
                                   create=True)
        assert created.version == 3
        assert store.stream_version("customer-42") == 3
        assert customers.load("42") == customers.load("42", use_snapshots=False)

    # Property: snapshots never change what load() returns

    # Each backend subclass runs this as its own executor, on purpose; the store fixture is
    # shared by the examples, which is why every example works on a customer of its own.
    @settings(max_examples=20, deadline=None, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
    @given(
        every=st.integers(min_value=1, max_value=4),
        name=st.text(max_size=12),
        email=st.text(max_size=12),
        steps=st.lists(st.lists(st.one_of(
            st.tuples(st.just("order"), st.integers(min_value=-(2**40), max_value=2**40)),
            st.tuples(st.just("rename"), st.text(max_size=12)),
        ), min_size=1, max_size=3), max_size=8),
        erase_at=st.integers(min_value=0, max_value=8),
    )
    def test_loading_from_snapshots_always_equals_a_full_replay(
        self, url: str, store: EventStore, *, every: int, name: str, email: str,
        steps: list[list[tuple[str, Any]]], erase_at: int,
    ) -> None:
        """Whatever the commands, interval and erasure point, load() equals a full replay."""
        customer_id = unique_id()
        customers = Repository(store, Customer, snapshot_every=every)
        customer = Customer(id=customer_id)
        customer.record(register(customer_id, name, email))
        customers.save(customer)
        expected = {"version": 1, "name": name, "email": email, "orders": 0, "total": 0}
        snapshots = 1 // every
        erased = False

        for index in range(len(steps) + 1):
            if index == min(erase_at, len(steps)):
                store.erase_subject(customer_id)
                erased = True
                expected.update(name=REDACTED, email=ERASED_EMAIL)
            if index < len(steps):
                events: list[Event] = [
                    order(customer_id, value) if kind == "order"
                    else Renamed(customer_id=customer_id, name=value)
                    for kind, value in steps[index]]
                if erased and any(isinstance(event, Renamed) for event in events):
                    with pytest.raises(SubjectErasedError):
                        customers.update(customer_id,
                                         lambda c, events=events: [c.record(e) for e in events])
                else:
                    customers.update(customer_id,
                                     lambda c, events=events: [c.record(e) for e in events])
                    before = expected["version"]
                    for event in events:
                        if isinstance(event, Renamed):
                            expected["name"] = event.name
                        else:
                            expected["orders"] += 1
                            expected["total"] += event.amount
                    expected["version"] += len(events)
                    snapshots += expected["version"] // every > before // every

            loaded = customers.load(customer_id)
            assert loaded == customers.load(customer_id, use_snapshots=False)
            assert loaded == Customer(id=customer_id, customer_id=customer_id, **expected)
            assert store.stream_version(customer.stream_id) == expected["version"]
        assert len(snapshot_rows(url, customer.stream_id)) == snapshots

    # Upcasting events

    def test_an_upcaster_chain_lifts_every_old_version_to_the_current_class(
        self, url: str, master_key: MasterKey
    ) -> None:
        """Events of versions 1, 2 and 3 all read as the version-3 class, each step run once."""
        registry = registry_of(Profile)
        steps: list[int] = []

        @upcaster(Profile, from_version=1, registry=registry)
        def _rename(data: dict[str, Any]) -> dict[str, Any]:
            steps.append(1)
            data["full_name"] = data.pop("name")
            return data

        @upcaster("test.aggregates.Profile", from_version=2, registry=registry)
        def _tier(data: dict[str, Any]) -> dict[str, Any]:
            steps.append(2)
            data["tier"] = TIERS[data.pop("plan")]
            return data

        written = [ProfileV1(customer_id="c1", name="Ada", plan="basic"),
                   ProfileV2(customer_id="c1", full_name="Ada L", plan="pro"),
                   Profile(customer_id="c1", full_name="Ada Lovelace", tier=3)]
        for event in written:
            with EventStore(url, master_key=master_key,
                            registry=registry_of(type(event))) as writer:
                writer.append("profile-c1", [event])

        with EventStore(url, master_key=master_key, registry=registry) as reader:
            records = list(reader.read_stream("profile-c1"))
        assert [r.event for r in records] == [
            Profile(customer_id="c1", full_name="Ada", tier=1, event_id=written[0].event_id),
            Profile(customer_id="c1", full_name="Ada L", tier=2, event_id=written[1].event_id),
            written[2],
        ]
        assert [r.schema_version for r in records] == [1, 2, 3]
        assert [r.personal_fields for r in records] == [
            {"name"}, {"full_name"}, {"full_name"}]
        assert steps == [1, 2, 2]

    def test_a_renamed_personal_field_upcasts_for_active_and_erased_subjects(
        self, url: str, master_key: MasterKey
    ) -> None:
        """The upcaster sees the value, or REDACTED once erased, and moves it to the new name."""
        registry = registry_of(ProfileV2)
        seen: list[object] = []

        @upcaster(ProfileV2, from_version=1, registry=registry)
        def _rename(data: dict[str, Any]) -> dict[str, Any]:
            seen.append(data["name"])
            data["full_name"] = data.pop("name")
            return data

        with EventStore(url, master_key=master_key, registry=registry_of(ProfileV1)) as writer:
            ada = ProfileV1(customer_id="c1", name="Ada", plan="basic")
            bob = ProfileV1(customer_id="c2", name="Bob", plan="pro")
            writer.append("profiles", [ada, bob])
            writer.erase_subject("c2")

        with EventStore(url, master_key=master_key, registry=registry) as reader:
            active, erased = reader.read_stream("profiles")
        assert seen == ["Ada", REDACTED]
        assert active.event == ProfileV2(customer_id="c1", full_name="Ada", plan="basic",
                                         event_id=ada.event_id)
        assert active.redacted_fields == frozenset()
        assert erased.event == ProfileV2(customer_id="c2", full_name=REDACTED, plan="pro",
                                         event_id=bob.event_id)
        assert erased.redacted_fields == {"full_name"}
        assert erased.personal_fields == {"name"}  # as written

    @pytest.mark.parametrize("missing", [1, 2])
    def test_a_missing_link_in_the_chain_names_the_version_it_misses(
        self, url: str, master_key: MasterKey, missing: int
    ) -> None:
        """Without an upcaster from some version, reading raises EventDecodingError naming it."""
        registry = registry_of(Profile)
        present = 3 - missing
        upcaster(Profile, from_version=present, registry=registry)(lambda data: data)
        with EventStore(url, master_key=master_key, registry=registry_of(ProfileV1)) as writer:
            writer.append("profile-c1", [ProfileV1(customer_id="c1", name="Ada", plan="x")])

        with EventStore(url, master_key=master_key, registry=registry) as reader, \
                pytest.raises(EventDecodingError) as caught:
            list(reader.read_stream("profile-c1"))
        message = str(caught.value)
        assert f"'test.aggregates.Profile' schema version {missing}," in message
        assert f"from_version={missing})" in message
        assert "Ada" not in message

    @pytest.mark.parametrize("result", [[("plan", "basic")], None, "{}"])
    def test_an_upcaster_that_returns_no_dict_is_a_decoding_error(
        self, url: str, master_key: MasterKey, result: object
    ) -> None:
        """An upcaster returning anything but a dict raises EventDecodingError naming its type."""
        registry = registry_of(ProfileV2)
        upcaster(ProfileV2, from_version=1, registry=registry)(lambda data: result)
        with EventStore(url, master_key=master_key, registry=registry_of(ProfileV1)) as writer:
            writer.append("profile-c1", [ProfileV1(customer_id="c1", name="Ada", plan="x")])

        with EventStore(url, master_key=master_key, registry=registry) as reader, \
                pytest.raises(EventDecodingError, match=(
                    f"upcaster of 'test.aggregates.Profile' from version 1 returned "
                    f"{type(result).__name__}, not a dict")):
            list(reader.read_stream("profile-c1"))

    # Declarations that cannot be resolved fail when the class is defined

    def test_personal_data_without_a_subject_fails_at_definition(self) -> None:
        """A personal field in a model without any SubjectId field is refused."""
        with pytest.raises(ConfigurationError,
                           match=r"NoSubject\.name is personal data without a subject"):
            class NoSubject(Event, type_name="test.aggregates.bad.NoSubject"):
                name: Annotated[str, PersonalData()]
        assert "test.aggregates.bad.NoSubject" not in default_registry

        with pytest.raises(ConfigurationError,
                           match=r"NoSubjectState\.name is personal data without a subject"):
            class NoSubjectState(Aggregate, type_name="test.aggregates.bad.NoSubjectState"):
                name: Annotated[str, PersonalData()] = ""

    def test_personal_data_among_several_subjects_must_name_one(self) -> None:
        """With several SubjectId fields, a personal field without subject= is refused."""
        with pytest.raises(ConfigurationError, match=(
                r"TwoSubjects\.note: the model has several SubjectId fields "
                r"\(buyer_id, seller_id\); say which with PersonalData\(subject=...\)")):
            class TwoSubjects(Event, type_name="test.aggregates.bad.TwoSubjects"):
                buyer_id: SubjectId
                seller_id: SubjectId
                note: Annotated[str, PersonalData()]
        assert "test.aggregates.bad.TwoSubjects" not in default_registry

        with pytest.raises(ConfigurationError, match=(
                r"TwoSubjectsState\.note: the model has several SubjectId fields "
                r"\(buyer_id, seller_id\)")):
            class TwoSubjectsState(Aggregate, type_name="test.aggregates.bad.TwoSubjectsState"):
                buyer_id: SubjectId = ""
                seller_id: SubjectId = ""
                note: Annotated[str, PersonalData()] = ""

    @pytest.mark.parametrize("subject", ["owner_id", "plan"])
    def test_personal_data_naming_no_subject_field_fails_at_definition(
        self, subject: str
    ) -> None:
        """subject= naming a missing field, or one that is no SubjectId, is refused."""
        expected = (rf"\.name: PersonalData\(subject='{subject}'\) names no SubjectId field "
                    "of this model or an enclosing one")
        with pytest.raises(ConfigurationError, match=f"NamesUnknown{expected}"):
            class NamesUnknown(Event, type_name="test.aggregates.bad.NamesUnknown"):
                customer_id: SubjectId
                plan: str
                name: Annotated[str, PersonalData(subject=subject)]
        assert "test.aggregates.bad.NamesUnknown" not in default_registry

        with pytest.raises(ConfigurationError,
                           match=f"NamesUnknownState{expected}"):
            class NamesUnknownState(Aggregate, type_name="test.aggregates.bad.NamesUnknownState"):
                customer_id: SubjectId = ""
                plan: str = ""
                name: Annotated[str, PersonalData(subject=subject)] = ""

    def test_a_replacement_of_the_wrong_type_fails_at_definition(self) -> None:
        """A replacement that is not a valid value of its field's type is refused."""
        expected = r"\.age: the replacement 'unknown' is not a valid value of the field's type"
        with pytest.raises(ConfigurationError, match=f"BadReplacement{expected}"):
            class BadReplacement(Event, type_name="test.aggregates.bad.BadReplacement"):
                customer_id: SubjectId
                age: Annotated[int, PersonalData(replacement="unknown")]
        assert "test.aggregates.bad.BadReplacement" not in default_registry

        with pytest.raises(ConfigurationError,
                           match=f"BadReplacementState{expected}"):
            class BadReplacementState(Aggregate,
                                      type_name="test.aggregates.bad.BadReplacementState"):
                customer_id: SubjectId = ""
                age: Annotated[int, PersonalData(replacement="unknown")] = 0
