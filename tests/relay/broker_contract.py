"""`BrokerContract`: what every broker must do for the relay and its consumers.

A subclass gives a `broker` fixture: an object with ``publisher()``, ``subscriber(name)``
(a durable consumer of everything that publisher sends; created before publishing) and
``unreachable_publisher()`` (one whose broker is down, with a short timeout). The RabbitMQ and
NATS JetStream test modules subclass it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest

from shredstore.errors import BrokerUnavailable
from shredstore.relay.brokers import Delivery, Publisher, Subscriber
from shredstore.relay.message import Message, to_message
from shredstore.storage.chain import StoredRow


class Broker(Protocol):
    def publisher(self) -> Publisher: ...
    def subscriber(self, name: str) -> Subscriber: ...
    def unreachable_publisher(self) -> Publisher: ...


def sample_messages(count: int, *, stream: str = "order-1", first: int = 1) -> list[Message]:
    """Messages of `count` made-up rows of `stream`, at positions from `first`."""
    return [to_message(StoredRow(
        position=first + n, stream_id=stream, version=first + n, event_id=uuid.uuid4(),
        event_type="shop.OrderPlaced", schema_version=1, recorded_at=datetime.now(UTC),
        metadata='{"correlation_id":"c-1"}', payload=f'{{"n":{first + n}}}', personal=None,
        prev_hash=b"", hash=b"")) for n in range(count)]


def receive_all(subscriber: Subscriber, count: int, *, timeout: float = 30,
                ack: bool = True) -> list[Delivery]:
    """`count` deliveries (acknowledged, unless not `ack`), failing after `timeout` s."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"received {len(got)} of {count} messages"
        delivery = subscriber.receive(0.5)
        if delivery is not None:
            got.append(delivery)
            if ack:
                delivery.ack()
    return got


class BrokerContract:
    @pytest.fixture
    def broker(self) -> Iterator[Any]:
        raise NotImplementedError("subclasses provide the broker to check")

    def test_messages_arrive_in_order_and_intact(self, broker: Broker) -> None:
        subscriber = broker.subscriber("orders")
        publisher = broker.publisher()
        try:
            sent = sample_messages(120)
            publisher.publish(sent[:1])
            publisher.publish(sent[1:])
            publisher.publish([])
            got = receive_all(subscriber, len(sent))
            assert [d.body for d in got] == [m.body for m in sent]
            assert subscriber.receive(0.3) is None  # each once
        finally:
            publisher.close()
            subscriber.close()

    def test_an_empty_queue_times_out_with_none(self, broker: Broker) -> None:
        subscriber = broker.subscriber("idle")
        try:
            started = time.monotonic()
            assert subscriber.receive(0.3) is None
            assert time.monotonic() - started < 5
        finally:
            subscriber.close()

    def test_unacknowledged_and_requeued_messages_come_again(self, broker: Broker) -> None:
        subscriber = broker.subscriber("retrying")
        publisher = broker.publisher()
        sent = sample_messages(3)
        try:
            publisher.publish(sent)
            first = receive_all(subscriber, 1, ack=False)[0]
            assert first.body == sent[0].body
            first.reject(requeue=True)
            again = receive_all(subscriber, 3, ack=False)
            assert sent[0].body in [d.body for d in again]
            for delivery in again:
                if delivery.body == sent[2].body:
                    delivery.reject(requeue=False)  # dropped
                else:
                    delivery.ack()
            assert subscriber.receive(1.0) is None
        finally:
            subscriber.close()
        # Received and never acknowledged: delivered again to the next subscriber of the name.
        publisher.publish(sample_messages(1, first=10))
        subscriber = broker.subscriber("retrying")
        try:
            pending = receive_all(subscriber, 1, ack=False)[0]
            subscriber.close()
            subscriber = broker.subscriber("retrying")
            assert receive_all(subscriber, 1)[0].body == pending.body
        finally:
            publisher.close()
            subscriber.close()

    def test_a_broker_that_is_down_confirms_nothing(self, broker: Broker) -> None:
        publisher = broker.unreachable_publisher()
        try:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable) as caught:
                publisher.publish(sample_messages(2))
            assert caught.value.confirmed == 0
            assert time.monotonic() - started < 20
            with pytest.raises(BrokerUnavailable):  # and again: no state left half-open
                publisher.publish(sample_messages(1))
        finally:
            publisher.close()
