"""NATS JetStream for the relay: the broker contract, and what is JetStream's own: headers and
subjects, de-duplication by event id, filter subjects, long batches in order, streams declared
or refused, partial acknowledgement, and messages released on close.

Needs SHREDSTORE_TEST_NATS_URL (``nats://127.0.0.1:4222``, JetStream enabled); each test works
in a stream and subject prefix of its own, deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import nats
import nats.js.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from keyvault import MasterKey
from shredstore import Event, EventStore
from shredstore.errors import BrokerUnavailable, ConfigurationError, MessageTooLarge, RelayError
from shredstore.relay import Relay
from shredstore.relay.brokers import publisher_for, subscriber_for
from shredstore.relay.nats import NatsPublisher, NatsSubscriber
from tests.relay.broker_contract import BrokerContract, receive_all, sample_messages
from tests.relay.conftest import free_port

T = TypeVar("T")


def admin(url: str, operation: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """Run `operation` with a JetStream context of a connection of its own."""
    async def run() -> T:
        connection = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        try:
            return await operation(connection.jetstream(timeout=5))
        finally:
            await connection.close()

    return asyncio.run(run())


def delete_streams(url: str, *names: str) -> None:
    async def delete(js: JetStreamContext) -> None:
        for name in names:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)

    admin(url, delete)


def stored_count(url: str, stream: str) -> int:
    async def count(js: JetStreamContext) -> int:
        info = await js.stream_info(stream)
        return info.state.messages

    return admin(url, count)


def add_stream(url: str, **config: Any) -> None:
    async def add(js: JetStreamContext) -> None:
        await js.add_stream(StreamConfig(storage=StorageType.FILE, **config))

    admin(url, add)


class NatsBroker:
    """Publishers and subscribers of one test's stream (``T...``) and prefix (``t...``)."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.prefix = name
        self.stream = name.upper()
        self.others: list[str] = []  # further streams a test made

    def publisher(self, **options: Any) -> NatsPublisher:
        return NatsPublisher(self.url, stream=self.stream, prefix=self.prefix,
                             **{"timeout": 5.0, **options})

    def subscriber(self, name: str, **options: Any) -> NatsSubscriber:
        return NatsSubscriber(self.url, name, stream=self.stream, prefix=self.prefix,
                              **{"timeout": 5.0, **options})

    def unreachable_publisher(self) -> NatsPublisher:
        return NatsPublisher(f"nats://127.0.0.1:{free_port()}", stream=self.stream,
                             prefix=self.prefix, timeout=2)


@pytest.fixture
def nats_broker(nats_url: str, broker_name: str) -> Iterator[NatsBroker]:
    broker = NatsBroker(nats_url, broker_name)
    yield broker
    delete_streams(nats_url, broker.stream, *broker.others)  # its consumers go with it


class TestNats(BrokerContract):
    @pytest.fixture
    def broker(self, nats_broker: NatsBroker) -> NatsBroker:
        return nats_broker


def test_headers_and_subject_carry_the_routing_fields(nats_broker: NatsBroker) -> None:
    subscriber = nats_broker.subscriber("headers")
    publisher = nats_broker.publisher()
    try:
        sent = sample_messages(2, stream="order-7")
        publisher.publish(sent)
        got: list[Any] = receive_all(subscriber, 2)
        for delivery, message in zip(got, sent, strict=True):
            assert delivery.body == message.body
            assert delivery.subject == f"{nats_broker.prefix}.shop_OrderPlaced.order-7"
            headers = delivery.headers
            assert headers["Nats-Msg-Id"] == str(message.event_id)
            assert headers["Shredstore-Type"] == "shop.OrderPlaced"
            assert headers["Shredstore-Stream"] == "order-7"
            assert headers["Shredstore-Correlation-Id"] == "c-1"
            assert message.headers().items() <= headers.items()
    finally:
        publisher.close()
        subscriber.close()


def test_a_batch_sent_again_is_stored_once(nats_broker: NatsBroker) -> None:
    subscriber = nats_broker.subscriber("once")
    publisher = nats_broker.publisher()
    try:
        sent = sample_messages(5)
        publisher.publish(sent)
        publisher.publish(sent)  # as the relay does after a failure: acknowledged, dropped
        publisher.publish(sent[2:4])
        assert stored_count(nats_broker.url, nats_broker.stream) == 5
        got = receive_all(subscriber, 5)
        assert [d.body for d in got] == [m.body for m in sent]
        assert subscriber.receive(0.3) is None
    finally:
        publisher.close()
        subscriber.close()


def test_a_filter_subject_selects_one_stream(nats_broker: NatsBroker) -> None:
    seven = nats_broker.subscriber("seven", filter_subject=f"{nats_broker.prefix}.*.order-7")
    publisher = nats_broker.publisher()
    try:
        mine = sample_messages(4, stream="order-7")
        others = sample_messages(4, stream="order-8")
        publisher.publish([m for pair in zip(mine, others, strict=True) for m in pair])
        assert [d.body for d in receive_all(seven, 4)] == [m.body for m in mine]
        assert seven.receive(0.3) is None
    finally:
        publisher.close()
        seven.close()


def test_a_long_batch_arrives_in_order(nats_broker: NatsBroker) -> None:
    subscriber = nats_broker.subscriber("long", batch=500)
    publisher = nats_broker.publisher(timeout=60)  # generous bounds: CI's machine is busy
    try:
        sent = sample_messages(3000)
        publisher.publish(sent)
        assert stored_count(nats_broker.url, nats_broker.stream) == 3000
        got = receive_all(subscriber, 3000, timeout=60)
        assert [d.body for d in got] == [m.body for m in sent]
    finally:
        publisher.close()
        subscriber.close()


def test_a_stream_of_other_subjects_is_refused(nats_broker: NatsBroker) -> None:
    add_stream(nats_broker.url, name=nats_broker.stream,
               subjects=[f"{nats_broker.prefix}-other.>"])
    publisher = nats_broker.publisher()
    try:
        with pytest.raises(ConfigurationError, match="do not cover"):
            publisher.publish(sample_messages(1))
    finally:
        publisher.close()
    with pytest.raises(ConfigurationError, match="do not cover"):
        nats_broker.subscriber("refused")


def test_a_stream_that_covers_the_prefix_is_used_as_it_is(nats_broker: NatsBroker) -> None:
    add_stream(nats_broker.url, name=nats_broker.stream,
               subjects=[f"{nats_broker.prefix}.>", f"{nats_broker.prefix}-more"])
    subscriber = nats_broker.subscriber("covered")
    publisher = nats_broker.publisher()
    try:
        sent = sample_messages(3)
        publisher.publish(sent)
        assert [d.body for d in receive_all(subscriber, 3)] == [m.body for m in sent]
    finally:
        publisher.close()
        subscriber.close()


def test_subjects_of_another_stream_are_refused(nats_broker: NatsBroker) -> None:
    owner = f"{nats_broker.stream}_OWNER"
    nats_broker.others.append(owner)
    add_stream(nats_broker.url, name=owner, subjects=[f"{nats_broker.prefix}.>"])
    publisher = nats_broker.publisher()
    try:
        with pytest.raises(ConfigurationError, match="overlap"):
            publisher.publish(sample_messages(1))
    finally:
        publisher.close()


def test_confirmed_counts_the_acknowledged_messages(nats_broker: NatsBroker) -> None:
    add_stream(nats_broker.url, name=nats_broker.stream, subjects=[f"{nats_broker.prefix}.>"],
               max_msgs=2, discard=DiscardPolicy.NEW)
    publisher = nats_broker.publisher()
    try:
        with pytest.raises(BrokerUnavailable, match=r"acknowledged 2 of 5.*maximum messages"
                           ) as caught:
            publisher.publish(sample_messages(5))
        assert caught.value.confirmed == 2
        with pytest.raises(BrokerUnavailable) as caught:  # connected again, still full
            publisher.publish(sample_messages(1, first=10))
        assert caught.value.confirmed == 0
    finally:
        publisher.close()
    assert stored_count(nats_broker.url, nats_broker.stream) == 2


def test_no_stream_is_unavailable_until_there_is_one(nats_broker: NatsBroker) -> None:
    publisher = nats_broker.publisher(declare=False)
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="no JetStream stream") as caught:
            publisher.publish(sample_messages(3))
        assert caught.value.confirmed == 0
        assert time.monotonic() - started < 3
        declaring = nats_broker.publisher()
        declaring.publish([])  # nothing to send: does not even connect
        declaring.publish(sample_messages(1))
        declaring.close()
        publisher.publish(sample_messages(3, first=5))  # connects again
        assert stored_count(nats_broker.url, nats_broker.stream) == 4
    finally:
        publisher.close()


def test_a_missing_consumer_is_not_created_without_declare(nats_broker: NatsBroker) -> None:
    with pytest.raises(ConfigurationError, match="no consumer"):
        nats_broker.subscriber("absent", declare=False)
    nats_broker.subscriber("present").close()
    nats_broker.subscriber("present", declare=False).close()


def test_a_consumer_with_another_filter_is_refused(nats_broker: NatsBroker) -> None:
    nats_broker.subscriber("filtered").close()
    with pytest.raises(ConfigurationError, match="filters"):
        nats_broker.subscriber("filtered", filter_subject=f"{nats_broker.prefix}.*.order-7")


def test_close_releases_messages_fetched_and_not_handed_out(nats_broker: NatsBroker) -> None:
    subscriber = nats_broker.subscriber("released")
    publisher = nats_broker.publisher()
    try:
        sent = sample_messages(5)
        publisher.publish(sent)
        assert receive_all(subscriber, 1, ack=False)[0].body == sent[0].body  # 4 in its buffer
        subscriber.close()
        started = time.monotonic()
        subscriber = nats_broker.subscriber("released")
        assert [d.body for d in receive_all(subscriber, 5)] == [m.body for m in sent]
        assert time.monotonic() - started < 5  # not after ack_wait (30 s)
    finally:
        publisher.close()
        subscriber.close()


def test_settling_twice_and_after_close(nats_broker: NatsBroker) -> None:
    subscriber = nats_broker.subscriber("settled")
    publisher = nats_broker.publisher()
    try:
        publisher.publish(sample_messages(2))
        first, second = receive_all(subscriber, 2, ack=False)
        first.ack()
        with pytest.raises(RelayError, match="already"):
            first.ack()
        with pytest.raises(RelayError, match="already"):
            first.reject(requeue=True)
        assert subscriber.receive(0.3) is None
        subscriber.close()
        subscriber.close()
        with pytest.raises(BrokerUnavailable, match="closed"):
            second.ack()
        with pytest.raises(RelayError, match="closed"):
            subscriber.receive(0.1)
        publisher.close()
        publisher.close()
        with pytest.raises(RelayError, match="closed"):
            publisher.publish(sample_messages(1))
    finally:
        publisher.close()
        subscriber.close()


def test_a_lost_connection_is_reported_then_replaced(nats_broker: NatsBroker) -> None:
    subscriber = nats_broker.subscriber("lost")
    publisher = nats_broker.publisher()
    try:
        publisher.publish(sample_messages(1))
        publisher._loop.run(publisher._connection.close())  # type: ignore[union-attr]
        publisher.publish(sample_messages(1, first=2))  # connects again

        def cut() -> None:
            time.sleep(0.3)
            subscriber._loop.run(subscriber._connection.close())  # type: ignore[union-attr]

        receive_all(subscriber, 2)
        cutter = threading.Thread(target=cut)
        cutter.start()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):  # closed under a waiting fetch
            subscriber.receive(30.0)
        assert time.monotonic() - started < 10  # at the cut, not at the end of the wait
        cutter.join()
        publisher.publish(sample_messages(1, first=3))
        assert len(receive_all(subscriber, 1)) == 1  # connected again
    finally:
        publisher.close()
        subscriber.close()


def test_errors_never_show_credentials() -> None:
    for url in (f"nats://relay:s3cret-pw@127.0.0.1:{free_port()}",
                f"nats://s3cret-pw@127.0.0.1:{free_port()}"):
        publisher = NatsPublisher(url, timeout=2)
        try:
            with pytest.raises(BrokerUnavailable) as caught:
                publisher.publish(sample_messages(1))
            assert "s3cret-pw" not in str(caught.value)
            assert "127.0.0.1" in str(caught.value)
        finally:
            publisher.close()


def test_the_broker_url_picks_nats(nats_broker: NatsBroker) -> None:
    for scheme in ("nats", "tls"):
        publisher = publisher_for(f"{scheme}://127.0.0.1:4222", prefix=nats_broker.prefix)
        assert isinstance(publisher, NatsPublisher)
        publisher.close()
    subscriber = subscriber_for(nats_broker.url, "chosen", stream=nats_broker.stream,
                                prefix=nats_broker.prefix)
    assert isinstance(subscriber, NatsSubscriber)
    subscriber.close()


@pytest.mark.parametrize("make", [
    lambda: NatsPublisher("amqp://127.0.0.1:5672/"),
    lambda: NatsPublisher("nats://127.0.0.1:notaport"),
    lambda: NatsPublisher("nats://127.0.0.1:4222", prefix="a..b"),
    lambda: NatsPublisher("nats://127.0.0.1:4222", prefix="a.*"),
    lambda: NatsPublisher("nats://127.0.0.1:4222", stream="A.B"),
    lambda: NatsPublisher("nats://127.0.0.1:4222", timeout=0),
    lambda: NatsPublisher("nats://127.0.0.1:4222", duplicate_window=-1),
    lambda: NatsPublisher("nats://127.0.0.1:4222", route="type.stream"),  # type: ignore[arg-type]
    lambda: NatsSubscriber("nats://127.0.0.1:4222", "two words"),
    lambda: NatsSubscriber("nats://127.0.0.1:4222", "x", batch=0),
    lambda: NatsSubscriber("nats://127.0.0.1:4222", "x", ack_wait=0),
    lambda: NatsSubscriber("nats://127.0.0.1:4222", "x", filter_subject="a.>.b"),
])
def test_options_that_cannot_work_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_a_route_that_gives_no_subject_is_refused(nats_broker: NatsBroker) -> None:
    publisher = nats_broker.publisher(route=lambda message: "has space.x")
    try:
        with pytest.raises(ConfigurationError, match="route"):
            publisher.publish(sample_messages(1))
    finally:
        publisher.close()


class Note(Event, type_name="test.nats.Note"):
    text: str


def test_a_message_over_max_payload_stops_the_relay_instead_of_looping(
        nats_broker: NatsBroker, sqlite_url: str) -> None:
    """The server's max_payload counts headers and body; a message over it would close the
    connection at every attempt. It is refused before anything of its batch is sent, naming
    the event, and the relay stops there: its checkpoint stays before the batch."""
    publisher = nats_broker.publisher()
    try:
        publisher.publish(sample_messages(1))  # connected: the server said its limit
        assert publisher._connection is not None
        limit = publisher._connection.max_payload
        fits = sample_messages(1, first=2)[0]
        body_only = dataclasses.replace(fits, body=b"x" * (limit - 10))  # headers tip it over
        with pytest.raises(MessageTooLarge) as caught:
            publisher.publish([fits, body_only])
        assert caught.value.index == 1
        assert caught.value.limit == limit
        assert caught.value.size > limit
        assert f"position {body_only.position}" in str(caught.value)
        assert stored_count(nats_broker.url, nats_broker.stream) == 1  # nothing of the batch
    finally:
        publisher.close()
    with EventStore(sqlite_url, master_key=MasterKey.generate()) as store:
        store.registry.register(Note)
        store.append("notes", [Note(text="small"), Note(text="y" * limit)])
        relay = Relay(store, nats_broker.publisher(), backoff=(0.01, 0.02))
        with pytest.raises(MessageTooLarge, match="position 2"):
            relay.relay_pending(retry_for=5)  # before: BrokerUnavailable, after 5 s of retries
        assert relay.retries == 0
        assert relay.position == 0
