"""The relay's mechanism, on every backend, with a publisher in memory: commit order, the
checkpoint moved only after confirmation, retries from the first unconfirmed message, one
active relay per name; and the consumer side: messages opened through the store (sealed in
the broker, redacted after erasure, tampering refused), each taking effect once."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import (
    NO_STREAM,
    REDACTED,
    ConfigurationError,
    Event,
    EventStore,
    PersonalData,
    SubjectId,
    TamperedError,
)
from shredstore.erasure import SubjectErased
from shredstore.errors import BrokerUnavailable, MessageFormatError, RelayError
from shredstore.projections import IdempotentConsumer
from shredstore.relay import (
    FORMAT,
    Inbox,
    Message,
    Relay,
    RelayConsumer,
    default_route,
    open_message,
    publisher_for,
    read_message,
)

SECRET_EMAIL = "ada.secret@example.org"  # noqa: S105 (a personal value, not a password)


class CustomerRegistered(Event, type_name="test.relay.CustomerRegistered"):
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]
    plan: str


class PlanChanged(Event, type_name="test.relay.PlanChanged"):
    plan: str


class MemoryPublisher:
    """A broker in memory: keeps what it confirmed; `fail_after(n)` makes the next publish
    confirm only n messages and fail (once)."""

    def __init__(self) -> None:
        self.confirmed: list[Message] = []
        self.attempts = 0
        self._fail: int | None = None
        self.closed = False
        self.on_publish: list[object] = []

    def fail_after(self, count: int) -> None:
        self._fail = count

    def publish(self, messages: Sequence[Message]) -> None:
        self.attempts += 1
        if self._fail is not None:
            count, self._fail = self._fail, None
            self.confirmed.extend(messages[:count])
            raise BrokerUnavailable("the broker went away", confirmed=count)
        self.confirmed.extend(messages)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        opened.registry.register(CustomerRegistered)
        opened.registry.register(PlanChanged)
        yield opened


def register(store: EventStore, count: int, *, first: int = 0) -> None:
    for n in range(first, first + count):
        store.append(f"customer-{n}", [CustomerRegistered(
            customer_id=f"c{n}", email=f"{n}.{SECRET_EMAIL}", plan="basic")],
            expected_version=NO_STREAM)


def test_every_event_is_published_in_commit_order_and_the_checkpoint_follows(
        store: EventStore) -> None:
    register(store, 7)
    publisher = MemoryPublisher()
    relay = Relay(store, publisher, batch_size=3)
    assert relay.relay_pending() == 7
    assert [m.position for m in publisher.confirmed] == list(range(1, 8))
    assert relay.position == 7
    assert publisher.attempts == 3  # pages of 3, 3 and 1
    register(store, 2, first=7)
    assert relay.relay_pending() == 2  # resumes from the checkpoint
    assert [m.position for m in publisher.confirmed] == list(range(1, 10))
    assert Relay(store, MemoryPublisher(), name="audit").relay_pending() == 9  # its own
    assert Relay(store, MemoryPublisher()).relay_pending() == 0  # the same name: shared


def test_messages_carry_the_sealed_row_and_never_a_personal_value(store: EventStore) -> None:
    register(store, 1)
    store.append("customer-0", [PlanChanged(plan="pro")], expected_version=1,
                 metadata={"correlation_id": "corr-1", "causation_id": "cause-1"})
    publisher = MemoryPublisher()
    Relay(store, publisher).relay_pending()
    first, second = publisher.confirmed
    assert SECRET_EMAIL.encode() not in first.body
    assert b"secret" not in first.body
    body = json.loads(first.body)
    assert body["format"] == FORMAT
    assert body["stream_id"] == "customer-0"
    assert body["version"] == 1
    assert body["event_type"] == "test.relay.CustomerRegistered"
    assert json.loads(body["payload"]) == {"customer_id": "c0", "plan": "basic"}
    assert body["personal"] is not None
    assert body["mac"] is not None
    assert (second.correlation_id, second.causation_id) == ("corr-1", "cause-1")
    headers = second.headers()
    assert headers["Shredstore-Correlation-Id"] == "corr-1"
    assert headers["Shredstore-Stream"] == "customer-0"
    assert default_route(second) == "test_relay_PlanChanged.customer-0"


def test_a_message_opens_through_the_store_and_reads_redacted_after_erasure(
        store: EventStore) -> None:
    register(store, 2)
    publisher = MemoryPublisher()
    Relay(store, publisher).relay_pending()
    record = open_message(store, publisher.confirmed[0].body)
    assert isinstance(record.event, CustomerRegistered)
    assert record.event.email == f"0.{SECRET_EMAIL}"
    assert record.position == 1
    assert record.stream_id == "customer-0"
    store.erase_subject("c0")
    # The copy sent before the erasure: redacted when opened now; the other subject is not.
    assert open_message(store, publisher.confirmed[0].body).event.email is REDACTED
    assert open_message(store, publisher.confirmed[1].body).event.email == f"1.{SECRET_EMAIL}"
    # The erasure travels too: the ledger event follows in the log.
    Relay(store, publisher).relay_pending()
    erased = open_message(store, publisher.confirmed[-1].body)
    assert isinstance(erased.event, SubjectErased)
    assert erased.event.subject_id == "c0"


def _altered(body: bytes, **changes: object) -> bytes:
    data = json.loads(body)
    data.update(changes)
    return json.dumps(data).encode()


def test_a_message_altered_in_the_broker_is_refused_never_redacted(store: EventStore) -> None:
    register(store, 1)
    publisher = MemoryPublisher()
    Relay(store, publisher).relay_pending()
    body = publisher.confirmed[0].body
    data = json.loads(body)
    personal = json.loads(data["personal"])
    personal[0]["redacted"] = True  # an attacker passing a value off as erased
    forgeries = [
        _altered(body, payload=json.dumps({"customer_id": "c0", "plan": "gold"})),
        _altered(body, stream_id="customer-9"),
        _altered(body, position=5),
        _altered(body, personal=json.dumps(personal)),
        _altered(body, personal=None, mac=None),   # stripped
        _altered(body, mac=base64.b64encode(b"\x02" + bytes(32)).decode()),
    ]
    for forged in forgeries:
        with pytest.raises(TamperedError):
            open_message(store, forged)
    store.erase_subject("c0")
    for forged in forgeries:  # also once the subject's key is gone
        with pytest.raises(TamperedError):
            open_message(store, forged)


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"format": "other"}',
    json.dumps({"format": FORMAT, "position": "1"}).encode(),
    json.dumps({"format": FORMAT, "position": True}).encode(),
])
def test_what_is_not_a_relayed_event_is_a_format_error(body: bytes) -> None:
    with pytest.raises(MessageFormatError) as caught:
        read_message(body)
    assert "not json" not in str(caught.value).lower() or body == b"not json"


def test_a_broker_that_fails_midway_gets_the_rest_again_in_order(store: EventStore) -> None:
    register(store, 6)
    publisher = MemoryPublisher()
    publisher.fail_after(2)
    relay = Relay(store, publisher, backoff=(0.01, 0.02))
    assert relay.relay_pending() == 6
    assert [m.position for m in publisher.confirmed] == [1, 2, 3, 4, 5, 6]
    assert relay.retries == 1
    assert relay.published == 6
    assert relay.position == 6


class DownPublisher(MemoryPublisher):
    def publish(self, messages: Sequence[Message]) -> None:
        self.attempts += 1
        raise BrokerUnavailable("connection refused")


def test_a_broker_that_stays_down_moves_nothing(store: EventStore) -> None:
    register(store, 3)
    publisher = DownPublisher()
    relay = Relay(store, publisher, backoff=(0.01, 0.05))
    stopper = threading.Timer(0.5, relay.stop)
    stopper.start()
    relay.run()
    stopper.join()
    assert publisher.attempts >= 3  # retried with backoff
    assert relay.position == 0


def test_run_publishes_as_events_are_committed(store: EventStore) -> None:
    publisher = MemoryPublisher()
    relay = Relay(store, publisher, poll_interval=0.05)
    worker = threading.Thread(target=relay.run)
    worker.start()
    try:
        register(store, 3)
        deadline = time.monotonic() + 10
        while len(publisher.confirmed) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert relay.active
    finally:
        relay.stop()
        worker.join(10)
    assert [m.position for m in publisher.confirmed] == [1, 2, 3]


def test_one_relay_per_name_is_active_and_another_takes_over(store: EventStore) -> None:
    register(store, 2)
    first = Relay(store, MemoryPublisher(), lease=timedelta(seconds=30))
    assert first._checkpoint.hold()  # as a running relay holds it
    second_publisher = MemoryPublisher()
    second = Relay(store, second_publisher, lease=timedelta(seconds=30))
    with pytest.raises(RelayError, match="another relay named 'default'"):
        second.relay_pending()
    assert second_publisher.confirmed == []
    # The holder died: its lease runs out, and the other takes over.
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE shredstore_relays SET lease_until = :past"),
                     {"past": "2000-01-01 00:00:00"} if store.engine.dialect.name == "sqlite"
                     else {"past": "2000-01-01T00:00:00+00:00"})
    assert second.relay_pending() == 2
    # The first lost its lease: it cannot move the checkpoint any more.
    assert not first._checkpoint.advance(99, fenced=True)
    assert second.position == 2


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="broker URL"):
        publisher_for("http://example.org")


def test_a_consumer_takes_each_event_once_and_forgets_erased_subjects(
        store: EventStore, tmp_path: Path) -> None:
    register(store, 2)
    publisher = MemoryPublisher()
    Relay(store, publisher).relay_pending()
    store.erase_subject("c1")
    Relay(store, publisher).relay_pending()
    deliveries = [FakeDelivery(m.body) for m in publisher.confirmed]
    deliveries.insert(1, FakeDelivery(publisher.confirmed[0].body))  # redelivered

    engine = sa.create_engine(f"sqlite:///{tmp_path}/service.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id TEXT PRIMARY KEY, email TEXT)"))

    def handler(conn: sa.Connection, record: object) -> None:
        event = getattr(record, "event", None)
        if isinstance(event, CustomerRegistered):
            email = None if event.email is REDACTED else event.email
            conn.execute(sa.text("INSERT INTO customers VALUES (:id, :email)"),
                         {"id": event.customer_id, "email": email})
        elif isinstance(event, SubjectErased):
            conn.execute(sa.text("DELETE FROM customers WHERE id = :id"),
                         {"id": event.subject_id})

    with IdempotentConsumer(engine, "customers") as consumer:
        relay_consumer = RelayConsumer(store, FakeSubscriber(deliveries), consumer, handler)
        for delivery in deliveries:
            relay_consumer.handle(delivery)
    assert all(d.acked for d in deliveries)
    assert (relay_consumer.handled, relay_consumer.duplicates) == (3, 1)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, email FROM customers")).all()
    assert rows == [("c0", f"0.{SECRET_EMAIL}")]  # c1 registered redacted, then forgotten
    engine.dispose()


def test_a_consumer_rejects_a_forged_message_and_requeues_a_failed_handler(
        store: EventStore, tmp_path: Path) -> None:
    register(store, 1)
    publisher = MemoryPublisher()
    Relay(store, publisher).relay_pending()
    body = publisher.confirmed[0].body
    forged = FakeDelivery(_altered(body, payload='{"customer_id":"c0","plan":"gold"}'))
    engine = sa.create_engine(f"sqlite:///{tmp_path}/service.db")

    def failing(conn: sa.Connection, record: object) -> None:
        raise RuntimeError("handler failed")

    with IdempotentConsumer(engine, "x") as consumer:
        relay_consumer = RelayConsumer(store, FakeSubscriber([]), consumer, failing)
        with pytest.raises(TamperedError):
            relay_consumer.handle(forged)
        assert forged.rejected == [False]
        genuine = FakeDelivery(body)
        with pytest.raises(RuntimeError):
            relay_consumer.handle(genuine)
        assert genuine.rejected == [True]
        assert not consumer.is_processed(
            read_message(body).event_id)
    engine.dispose()


class FakeDelivery:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.acked = False
        self.rejected: list[bool] = []

    def ack(self) -> None:
        self.acked = True

    def reject(self, *, requeue: bool) -> None:
        self.rejected.append(requeue)


class FakeSubscriber:
    def __init__(self, deliveries: list[FakeDelivery]) -> None:
        self._deliveries = list(deliveries)

    def receive(self, timeout: float) -> FakeDelivery | None:
        return self._deliveries.pop(0) if self._deliveries else None

    def close(self) -> None:
        """Nothing to release: the deliveries are in memory."""


def test_an_inbox_copies_events_into_a_store_sharing_the_vault_once(tmp_path: Path) -> None:
    master = MasterKey.generate()
    vault = f"sqlite:///{tmp_path / 'vault.db'}"
    with EventStore(f"sqlite:///{tmp_path / 'orders.db'}", vault_url=vault,
                    master_key=master) as orders, \
            EventStore(f"sqlite:///{tmp_path / 'payments.db'}", vault_url=vault,
                       master_key=master) as payments:
        for store in (orders, payments):
            store.registry.register(CustomerRegistered)
            store.registry.register(PlanChanged)
        register(orders, 2)
        orders.append("customer-0", [PlanChanged(plan="pro")], expected_version=1,
                      metadata={"correlation_id": "corr-1"})
        publisher = MemoryPublisher()
        Relay(orders, publisher).relay_pending()
        orders.erase_subject("c1")
        bodies = [m.body for m in publisher.confirmed]
        deliveries = [FakeDelivery(body) for body in [*bodies, bodies[0], bodies[2]]]
        inbox = Inbox(payments, FakeSubscriber([]))
        for delivery in deliveries:
            inbox.handle(delivery)
        assert all(d.acked for d in deliveries)
        assert inbox.skipped == 1  # c1 was erased before the copy: not copied
        copied = list(payments.read_all())
        assert [(r.stream_id, r.version) for r in copied] == [("customer-0", 1),
                                                              ("customer-0", 2)]
        originals = list(orders.read_stream("customer-0"))
        assert [r.event_id for r in copied] == [r.event_id for r in originals]
        assert copied[0].event.email == f"0.{SECRET_EMAIL}"
        assert copied[1].metadata["correlation_id"] == "corr-1"
        orders.erase_subject("c0")  # one vault: the copy is shredded with the original
        assert next(iter(payments.read_all())).event.email is REDACTED


def test_relay_pending_gives_up_on_a_broker_that_stays_down(store: EventStore) -> None:
    register(store, 2)
    publisher = DownPublisher()
    relay = Relay(store, publisher, backoff=(0.01, 0.05))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        relay.relay_pending(retry_for=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert publisher.attempts >= 3
    assert relay.position == 0
    assert Relay(store, MemoryPublisher()).relay_pending() == 2  # the lease was released


def test_of_two_running_relays_one_publishes_and_the_other_takes_over(
        store: EventStore) -> None:
    publishers = [MemoryPublisher(), MemoryPublisher()]
    relays = [Relay(store, publisher, poll_interval=0.05, lease=timedelta(seconds=1))
              for publisher in publishers]
    threads = [threading.Thread(target=relay.run) for relay in relays]
    for thread in threads:
        thread.start()
    try:
        register(store, 5)
        wait = time.monotonic() + 10
        while sum(len(p.confirmed) for p in publishers) < 5 and time.monotonic() < wait:
            time.sleep(0.02)
        counts = sorted(len(p.confirmed) for p in publishers)
        assert counts == [0, 5]  # exactly one is active
        active = next(n for n, p in enumerate(publishers) if p.confirmed)
        relays[active].stop()  # it stops (or dies: then its lease runs out)
        threads[active].join(10)
        register(store, 3, first=5)
        other = publishers[1 - active]
        wait = time.monotonic() + 10
        while len(other.confirmed) < 3 and time.monotonic() < wait:
            time.sleep(0.02)
        assert [m.position for m in other.confirmed] == [6, 7, 8]
    finally:
        for relay in relays:
            relay.stop()
        for thread in threads:
            thread.join(10)
