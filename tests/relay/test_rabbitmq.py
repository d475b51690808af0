"""RabbitMQ: the broker contract, and what is RabbitMQ's own (properties, routing keys,
publisher confirms, lost connections).

Needs the server named by SHREDSTORE_TEST_AMQP_URL (see conftest.py). Every test declares an
exchange and queues named after `broker_name`, deleted at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from shredstore.errors import BrokerUnavailable, ConfigurationError, RelayError
from shredstore.relay.brokers import publisher_for, subscriber_for
from shredstore.relay.message import Message
from shredstore.relay.rabbitmq import RabbitMQPublisher, RabbitMQSubscriber
from tests.relay.broker_contract import BrokerContract, receive_all, sample_messages
from tests.relay.conftest import free_port


class RabbitMQ:
    """The `broker` of the contract: publishers and subscribers on an exchange of the test's
    own, and the queues they declared, all deleted by `tear_down`."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.exchange = name
        self.queues: set[str] = set()
        self.opened: list[RabbitMQPublisher | RabbitMQSubscriber] = []

    def publisher(self, **options: Any) -> RabbitMQPublisher:
        options.setdefault("exchange", self.exchange)
        publisher = RabbitMQPublisher(options.pop("url", self.url), **options)
        self.opened.append(publisher)
        return publisher

    def subscriber(self, name: str, **options: Any) -> RabbitMQSubscriber:
        queue = self.queue(name)
        options.setdefault("exchange", self.exchange)
        subscriber = RabbitMQSubscriber(options.pop("url", self.url), queue, **options)
        self.opened.append(subscriber)
        return subscriber

    def unreachable_publisher(self) -> RabbitMQPublisher:
        return self.publisher(url=f"amqp://guest:guest@127.0.0.1:{free_port()}/", timeout=2)

    def queue(self, name: str) -> str:
        """The name of this test's queue `name` (deleted at teardown)."""
        self.queues.add(f"{self.exchange}-{name}")
        return f"{self.exchange}-{name}"

    def run(self, work: Any) -> Any:
        """Run ``work(channel)`` (a coroutine function) on a short connection of its own."""
        async def session() -> Any:
            connection = await aio_pika.connect(self.url, timeout=5)
            try:
                return await work(await connection.channel())
            finally:
                await connection.close()
        return asyncio.run(session())

    def fetch(self, queue: str, count: int, *,
              timeout: float = 10) -> list[AbstractIncomingMessage]:
        """`count` messages taken from `queue` as they are, with their AMQP properties."""
        async def take(channel: aio_pika.abc.AbstractChannel) -> list[AbstractIncomingMessage]:
            source = await channel.get_queue(queue)
            got: list[AbstractIncomingMessage] = []
            deadline = time.monotonic() + timeout
            while len(got) < count and time.monotonic() < deadline:
                message = await source.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                else:
                    got.append(message)
            return got
        got: list[AbstractIncomingMessage] = self.run(take)
        assert len(got) == count, f"fetched {len(got)} of {count} messages"
        return got

    def tear_down(self) -> None:
        for opened in self.opened:
            opened.close()
        assert not [thread.name for thread in threading.enumerate()
                    if thread.name.startswith("shredstore-rabbitmq")], "a loop thread is left"

        async def delete(channel: aio_pika.abc.AbstractChannel) -> None:
            for queue in sorted(self.queues):
                await channel.queue_delete(queue)
            await channel.exchange_delete(self.exchange)
        self.run(delete)


class TestRabbitMQ(BrokerContract):
    @pytest.fixture
    def broker(self, amqp_url: str, broker_name: str) -> Iterator[RabbitMQ]:
        rabbitmq = RabbitMQ(amqp_url, broker_name)
        yield rabbitmq
        rabbitmq.tear_down()


@pytest.fixture
def rabbitmq(amqp_url: str, broker_name: str) -> Iterator[RabbitMQ]:
    broker = RabbitMQ(amqp_url, broker_name)
    yield broker
    broker.tear_down()


def routed(message: Message, *, event_type: str, stream_id: str) -> Message:
    """`message`, routed as an event of `event_type` in `stream_id` (its body unchanged)."""
    return dataclasses.replace(message, event_type=event_type, stream_id=stream_id)


def test_a_message_carries_its_properties_and_headers(rabbitmq: RabbitMQ) -> None:
    rabbitmq.subscriber("props").close()  # declares and binds the queue
    sent = sample_messages(2)
    rabbitmq.publisher().publish(sent)
    got = rabbitmq.fetch(rabbitmq.queue("props"), 2)
    for message, amqp in zip(sent, got, strict=True):
        assert amqp.body == message.body
        assert amqp.exchange == rabbitmq.exchange
        assert amqp.routing_key == "shop_OrderPlaced.order-1"
        assert amqp.message_id == str(message.event_id)
        assert amqp.type == "shop.OrderPlaced"
        assert amqp.correlation_id == "c-1"
        assert amqp.app_id == "shredstore"
        assert amqp.content_type == "application/json"
        assert amqp.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert amqp.headers == message.headers()
        assert amqp.headers["Shredstore-Correlation-Id"] == "c-1"


def test_binding_keys_route_by_type_and_by_stream(rabbitmq: RabbitMQ) -> None:
    by_type = rabbitmq.subscriber("by-type", bindings=("shop_OrderPlaced.*",))
    by_stream = rabbitmq.subscriber("by-stream", bindings=("*.order-7",))
    both = rabbitmq.subscriber("both", bindings=("shop_OrderPlaced.*", "*.order-7"))
    base = sample_messages(4)
    sent = [routed(base[0], event_type="shop.OrderPlaced", stream_id="order-7"),
            routed(base[1], event_type="shop.OrderPlaced", stream_id="order-8"),
            routed(base[2], event_type="shop.OrderShipped", stream_id="order-7"),
            routed(base[3], event_type="shop.OrderShipped", stream_id="order-8")]
    rabbitmq.publisher().publish(sent)
    assert [d.body for d in receive_all(by_type, 2)] == [sent[0].body, sent[1].body]
    assert [d.body for d in receive_all(by_stream, 2)] == [sent[0].body, sent[2].body]
    assert [d.body for d in receive_all(both, 3)] == [m.body for m in sent[:3]]
    for subscriber in (by_type, by_stream, both):
        assert subscriber.receive(0.2) is None


def test_thousands_of_messages_in_one_call_keep_their_order(rabbitmq: RabbitMQ) -> None:
    subscriber = rabbitmq.subscriber("many", prefetch=1000)
    sent = sample_messages(3000)
    rabbitmq.publisher(timeout=60).publish(sent)  # generous bounds: CI's machine is busy
    got = receive_all(subscriber, len(sent), timeout=60)
    assert [d.body for d in got] == [m.body for m in sent]


def test_a_very_long_stream_id_gets_a_valid_routing_key(rabbitmq: RabbitMQ) -> None:
    rabbitmq.subscriber("long", bindings=("shop_OrderPlaced.*",)).close()
    long_stream = "order-" + "7" * 400
    sent = [routed(message, event_type="shop.OrderPlaced", stream_id=long_stream)
            for message in sample_messages(2)]
    rabbitmq.publisher().publish(sent)
    got = rabbitmq.fetch(rabbitmq.queue("long"), 2)
    assert [m.body for m in got] == [m.body for m in sent]
    key = got[0].routing_key
    assert key is not None
    assert len(key.encode()) <= 255
    assert key.startswith("shop_OrderPlaced.order-777")
    assert key == got[1].routing_key  # deterministic
    assert "." not in key.removeprefix("shop_OrderPlaced.")  # still two words


def test_a_long_routing_key_is_cut_at_a_character_boundary(rabbitmq: RabbitMQ) -> None:
    rabbitmq.subscriber("wide").close()
    publisher = rabbitmq.publisher(route=lambda message: "é" * 200 + message.stream_id)
    sent = sample_messages(1, stream="a") + sample_messages(1, stream="b")
    publisher.publish(sent)
    keys = [m.routing_key for m in rabbitmq.fetch(rabbitmq.queue("wide"), 2)]
    assert all(key is not None and len(key.encode()) <= 255 for key in keys)
    assert keys[0] != keys[1]  # the hash of the whole key tells them apart
    assert all(key is not None and key.startswith("é" * 100) for key in keys)


def test_a_refused_message_counts_only_those_confirmed_before_it(rabbitmq: RabbitMQ) -> None:
    queue = rabbitmq.queue("full")
    exchange = rabbitmq.exchange

    async def full_queue(channel: aio_pika.abc.AbstractChannel) -> None:
        topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC,
                                               durable=True)
        declared = await channel.declare_queue(
            queue, durable=True,
            arguments={"x-max-length": 5, "x-overflow": "reject-publish"})
        await declared.bind(topic, "#")
    rabbitmq.run(full_queue)
    publisher = rabbitmq.publisher()
    with pytest.raises(BrokerUnavailable, match="confirmed 5 of 8") as caught:
        publisher.publish(sample_messages(8))
    assert caught.value.confirmed == 5

    async def purge(channel: aio_pika.abc.AbstractChannel) -> None:
        await (await channel.get_queue(queue)).purge()
    rabbitmq.run(purge)
    publisher.publish(sample_messages(3))  # connects again
    assert len(rabbitmq.fetch(queue, 3)) == 3


def test_a_missing_exchange_without_declare_is_unavailable(rabbitmq: RabbitMQ) -> None:
    publisher = rabbitmq.publisher(declare=False)
    with pytest.raises(BrokerUnavailable, match="no exchange") as caught:
        publisher.publish(sample_messages(2))
    assert caught.value.confirmed == 0
    with pytest.raises(BrokerUnavailable, match="no queue"):
        rabbitmq.subscriber("absent", declare=False)


def test_a_broker_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        publisher = RabbitMQPublisher(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable, match=r"no answer within 0\.5 s") as caught:
                publisher.publish(sample_messages(1))
            assert caught.value.confirmed == 0
            assert time.monotonic() - started < 3
        finally:
            publisher.close()
        with pytest.raises(BrokerUnavailable, match=r"no answer within 0\.5 s"):
            RabbitMQSubscriber(f"amqp://guest:guest@127.0.0.1:{port}/", "q", timeout=0.5)


def test_a_password_never_appears_in_an_error(rabbitmq: RabbitMQ) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    parts = urlsplit(rabbitmq.url)
    host = f"{parts.hostname}:{parts.port or 5672}"
    refused = f"amqp://guest:{password}@{host}/"  # the server refuses this login
    down = f"amqp://guest:{password}@127.0.0.1:{free_port()}/"
    errors: list[BrokerUnavailable] = []
    for url in (refused, down):
        publisher = RabbitMQPublisher(url, timeout=3)
        try:
            with pytest.raises(BrokerUnavailable) as caught:
                publisher.publish(sample_messages(1))
            errors.append(caught.value)
        finally:
            publisher.close()
        with pytest.raises(BrokerUnavailable) as caught:
            RabbitMQSubscriber(url, rabbitmq.queue("never"), timeout=3)
        errors.append(caught.value)
    assert "ACCESS_REFUSED" in str(errors[0])
    for error in errors:
        assert password not in str(error)
        assert password not in repr(error.args)
        assert error.__cause__ is None


def test_publisher_for_and_subscriber_for_choose_rabbitmq(rabbitmq: RabbitMQ) -> None:
    publisher = publisher_for(rabbitmq.url, exchange=rabbitmq.exchange, timeout=5)
    try:
        assert isinstance(publisher, RabbitMQPublisher)
    finally:
        publisher.close()
    subscriber = subscriber_for(rabbitmq.url, rabbitmq.queue("chosen"),
                                exchange=rabbitmq.exchange)
    try:
        assert isinstance(subscriber, RabbitMQSubscriber)
    finally:
        subscriber.close()


def test_closing_is_idempotent_and_final(rabbitmq: RabbitMQ) -> None:
    subscriber = rabbitmq.subscriber("closing")
    publisher = rabbitmq.publisher()
    publisher.publish(sample_messages(1))
    delivery = receive_all(subscriber, 1, ack=False)[0]
    subscriber.close()
    subscriber.close()
    with pytest.raises(BrokerUnavailable, match="closed"):
        delivery.ack()
    with pytest.raises(RelayError, match="closed"):
        subscriber.receive(0.1)
    publisher.close()
    publisher.close()
    with pytest.raises(RelayError, match="closed"):
        publisher.publish(sample_messages(1))
    again = rabbitmq.subscriber("closing")  # the unacknowledged message went back
    first = receive_all(again, 1, ack=False)[0]
    assert first.body == delivery.body
    first.ack()
    with pytest.raises(RelayError, match="already"):
        first.ack()


@pytest.mark.parametrize(("make", "complaint"), [
    (lambda: RabbitMQPublisher("http://127.0.0.1/"), "amqp://"),
    (lambda: RabbitMQPublisher("amqp://127.0.0.1:port/"), "port"),
    (lambda: RabbitMQPublisher("amqp://[::1/"), "malformed"),
    (lambda: RabbitMQPublisher("amqp://127.0.0.1/", exchange=""), "exchange"),
    (lambda: RabbitMQPublisher("amqp://127.0.0.1/", timeout=0), "timeout"),
    (lambda: RabbitMQPublisher("amqp://127.0.0.1/", route=cast(Any, "type")), "route"),
    (lambda: RabbitMQSubscriber("amqp://127.0.0.1/", ""), "queue name"),
    (lambda: RabbitMQSubscriber("amqp://127.0.0.1/", "q" * 256), "queue name"),
    (lambda: RabbitMQSubscriber("amqp://127.0.0.1/", "q", bindings="#"), "bindings"),
    (lambda: RabbitMQSubscriber("amqp://127.0.0.1/", "q", prefetch=-1), "prefetch"),
])
def test_options_that_cannot_work_are_configuration_errors(make: Any, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        make()


def test_a_route_that_returns_no_string_is_a_configuration_error(rabbitmq: RabbitMQ) -> None:
    publisher = rabbitmq.publisher(route=lambda message: message.position)
    with pytest.raises(ConfigurationError, match="route returned a int"):
        publisher.publish(sample_messages(1))


class Proxy:
    """A TCP relay to the broker whose connections the test can cut (a lost connection)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.flowing = threading.Event()  # cleared: bytes are held back (a stalled network)
        self.flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.flowing.wait()
                target.sendall(data)
        except OSError:
            return  # the proxy was cut, or a side closed: this direction is done

    def cut(self) -> None:
        """Drop every connection made so far (new ones are relayed)."""
        with self._lock:
            cut, self._sockets = self._sockets, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.flowing.set()
        self.cut()


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[tuple[Proxy, str]]:
    parts = urlsplit(amqp_url)
    relay = Proxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{relay.port}"
    yield relay, urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    relay.close()


def publish_as_the_relay_does(publisher: RabbitMQPublisher, messages: list[Message]) -> None:
    """Publish; after a `BrokerUnavailable`, send again once what was not confirmed."""
    try:
        publisher.publish(messages)
    except BrokerUnavailable as error:
        publisher.publish(messages[error.confirmed:])


def test_a_lost_connection_is_reported_and_then_restored(
        rabbitmq: RabbitMQ, proxy: tuple[Proxy, str]) -> None:
    relay, url = proxy
    subscriber = rabbitmq.subscriber("lost", url=url)
    publisher = rabbitmq.publisher(url=url, timeout=3)
    sent = sample_messages(4)
    publisher.publish(sent[:2])
    held = receive_all(subscriber, 2, ack=False)
    relay.cut()
    with pytest.raises(BrokerUnavailable, match="lost the connection"):
        receive_all(subscriber, 1)
    with pytest.raises(BrokerUnavailable, match="closed"):
        held[0].ack()  # its channel is gone: the broker delivers it again
    publish_as_the_relay_does(publisher, sent[2:])  # connects again
    got = receive_all(subscriber, 4)  # connects again; the two held come first
    assert sorted(d.body for d in got) == sorted(m.body for m in sent)
    assert [d.body for d in got[:2]] == [m.body for m in sent[:2]]


def test_a_stalled_connection_times_out_and_confirms_nothing_more(
        rabbitmq: RabbitMQ, proxy: tuple[Proxy, str]) -> None:
    relay, url = proxy
    rabbitmq.subscriber("stalled").close()
    publisher = rabbitmq.publisher(url=url, timeout=1)
    sent = sample_messages(5)
    publisher.publish(sent[:2])
    relay.flowing.clear()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=r"confirmed 0 of 3 messages: no answer within 1 s"
                       ) as caught:
        publisher.publish(sent[2:])
    assert caught.value.confirmed == 0
    assert time.monotonic() - started < 4
    relay.cut()  # what it held back never reaches the broker
    relay.flowing.set()
    publish_as_the_relay_does(publisher, sent[2:])
    bodies = [m.body for m in rabbitmq.fetch(rabbitmq.queue("stalled"), 5)]
    assert bodies[:2] == [m.body for m in sent[:2]]
    assert set(bodies) == {m.body for m in sent}
