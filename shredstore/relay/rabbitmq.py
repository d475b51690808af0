"""RabbitMQ for the broker relay: a publisher with publisher confirms, and a queue subscriber.

Both are synchronous fronts for aio-pika, whose client is asyncio: each runs one connection on
a `LoopThread` of its own, and every call from the caller's thread is one coroutine on that
loop, bounded by the `timeout` option.

`RabbitMQPublisher` sends to a durable topic exchange over a channel in confirm mode. A batch
is pipelined, not sent one round trip at a time: the publishes start as tasks in the batch's
order, and aiormq writes each under the channel's lock, which asyncio hands over first come,
first served, so the broker receives the batch in order; then the publisher waits for every
confirmation. Whatever goes wrong (no connection, a lost connection or channel, a negative
acknowledgement, no answer within `timeout`) is `BrokerUnavailable`, whose ``confirmed``
counts the messages confirmed from the first of the batch; the connection is then dropped
(closed in the background: a failed connection may never answer), and the next `publish`
connects again. The publisher connects on its first `publish`.

`RabbitMQSubscriber` consumes a durable queue, bound to the exchange, with manual
acknowledgements and a prefetch limit. The consumer callback runs on the loop thread and puts
each delivery in a thread-safe queue; `receive` takes from it in the caller's thread, and a
`Delivery` acknowledges or rejects on the loop. Messages received and not acknowledged go back
to the queue when the channel closes: on `close`, or when the connection is lost.

Errors name the broker by host and port, never the URL's credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelInvalidStateError,
    MessageProcessError,
)

from shredstore.errors import BrokerUnavailable, ConfigurationError, RelayError
from shredstore.relay.brokers import (
    CLOSE_TIMEOUT,
    GRACE,
    ConfirmingPublisher,
    Delivery,
    Endpoint,
    LoopThread,
)
from shredstore.relay.message import Message, default_route

__all__ = ["RabbitMQPublisher", "RabbitMQSubscriber"]

_MAX_SHORT_STRING = 255  # AMQP's limit in UTF-8 bytes: routing keys, names, short properties
_HASH_CHARS = 32  # hex digits of SHA-256 that end a shortened routing key (128 bits)
_FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, TimeoutError)


class RabbitMQPublisher(ConfirmingPublisher):
    """Publishes relayed events to a RabbitMQ topic exchange, with publisher confirms.

    Each message goes to the durable topic exchange `exchange` (declared on connecting, unless
    `declare` is false: then it must exist) with the routing key ``route(message)``, by default
    ``<type>.<stream>`` (`default_route`). It is persistent, ``application/json``, its
    ``message_id`` the event id, its ``type`` the event type, its ``correlation_id`` the
    correlation id, its ``app_id`` ``shredstore``, and its headers `Message.headers`.

    AMQP limits a routing key to 255 bytes (UTF-8). A longer one is shortened
    deterministically: its first 222 bytes (cut at a character boundary), ``~``, and the
    first 32 hex digits of the SHA-256 of the whole key. The same key always becomes the same
    shortened key, and its leading words are kept, so ``shop_OrderPlaced.*`` still matches an
    event of a stream whose id is too long; a binding on the stream itself cannot match it.
    The ``type`` and ``correlation_id`` properties have the same limit: a longer value is
    left out of the properties (the headers still carry it in full).

    `publish` returns once the broker confirmed every message, and waits at most `timeout`
    seconds in all; see `Publisher.publish` for what its `BrokerUnavailable` means.
    """

    def __init__(self, url: str, *, exchange: str = "shredstore",
                 route: Callable[[Message], str] = default_route, timeout: float = 10.0,
                 declare: bool = True) -> None:
        endpoint = _endpoint(url)
        self._exchange_name = _short_name(exchange, "exchange")
        if not callable(route):
            raise ConfigurationError("route is a function from a Message to a routing key")
        self._route = route
        self._timeout = _positive(timeout, "timeout")
        self._declare = bool(declare)
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._closing: set[asyncio.Future[None]] = set()  # connections being closed
        super().__init__(endpoint, patience=self._timeout + GRACE)

    broker = "RabbitMQ"

    def _outgoing(self, message: Message) -> tuple[str, aio_pika.Message]:
        key = self._route(message)
        if not isinstance(key, str):
            raise ConfigurationError(
                f"route returned a {type(key).__name__}, not a routing key (str)")
        return _shortened_routing_key(key), _amqp_message(message)

    async def _send(self, outgoing: list[tuple[str, aio_pika.Message]]) -> tuple[int, str | None]:
        """Publish on the loop: (how many were confirmed from the first, why not all)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        try:
            async with asyncio.timeout_at(deadline):
                exchange = await self._connect()
        except _FAILURES as error:
            self._drop()
            return 0, self._endpoint.failure(
                f"could not connect to the exchange {self._exchange_name!r}", error,
                self._timeout)
        # Started in order, each task reaches the channel lock (FIFO) before any other runs.
        # aiormq's own publish, without waiting for each frame to be written before the next
        # takes the lock (``wait=False``): the confirms are what is awaited.
        assert self._channel is not None  # noqa: S101 (set by _connect)
        channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
        tasks = [asyncio.ensure_future(channel.basic_publish(
                     message.body, exchange=exchange.name, routing_key=key,
                     properties=message.properties, mandatory=False, wait=False))
                 for key, message in outgoing]
        try:
            await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()),
                               return_when=asyncio.FIRST_EXCEPTION)
            failed = next((n for n, task in enumerate(tasks)
                           if task.done() and not _succeeded(task)), None)
            earlier = [task for task in tasks[:failed] if not task.done()]
            if failed is not None and earlier:  # those before the failure may still be confirmed
                await asyncio.wait(earlier, timeout=max(0.0, deadline - loop.time()))
            confirmed = 0
            while confirmed < len(tasks) and _succeeded(tasks[confirmed]):
                confirmed += 1
            why = None if confirmed == len(tasks) else _why(tasks[confirmed])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if why is None:
            return confirmed, None
        self._drop()
        return confirmed, self._endpoint.failure(
            f"confirmed {confirmed} of {len(tasks)} messages", why, self._timeout)

    async def _connect(self) -> AbstractExchange:
        if (self._exchange is not None and self._connection is not None
                and self._channel is not None and not self._connection.is_closed
                and self._connection.connected.is_set() and not self._channel.is_closed):
            return self._exchange
        self._drop()
        self._connection = await aio_pika.connect(self._endpoint.url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await _exchange(self._channel, self._exchange_name, self._declare)
        return self._exchange

    def _drop(self) -> None:
        """Forget the connection, and close it in the background (on the loop): a connection
        that failed may take its time to answer, and `publish` does not wait for it."""
        connection = self._connection
        self._connection = self._channel = self._exchange = None
        if connection is not None:
            closing = asyncio.ensure_future(_close(connection))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _disconnect(self) -> None:
        self._drop()
        if self._closing:
            await asyncio.wait(set(self._closing))  # each gives up after CLOSE_TIMEOUT


class RabbitMQSubscriber:
    """Consumes the durable queue `name` with manual acknowledgements.

    The queue is declared durable and bound to the durable topic exchange `exchange` with
    each key of `bindings` (``#``, everything, by default; ``shop_OrderPlaced.*`` for a type,
    ``*.order-7`` for a stream, with the default route), unless `declare` is false: then the
    queue must exist, and is consumed as it is. At most `prefetch` messages are received and
    not yet acknowledged (0: no limit). Every call to the broker waits at most `timeout`
    seconds.

    It connects on construction (`BrokerUnavailable` if it cannot). When the connection is
    lost, `receive` raises `BrokerUnavailable` once, and the next `receive` connects again;
    the messages received and not acknowledged are redelivered.
    """

    def __init__(self, url: str, name: str, *, exchange: str = "shredstore",
                 bindings: Sequence[str] = ("#",), prefetch: int = 100, timeout: float = 10.0,
                 declare: bool = True) -> None:
        self._endpoint = _endpoint(url)
        self._name = _short_name(name, "queue name")
        self._exchange_name = _short_name(exchange, "exchange")
        if isinstance(bindings, str) or not isinstance(bindings, Sequence):
            raise ConfigurationError("bindings is a sequence of binding keys, such as ('#',)")
        self._bindings = tuple(_short_name(key, "binding key", empty=True) for key in bindings)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) \
                or not 0 <= prefetch <= 65535:
            raise ConfigurationError("prefetch is a whole number from 0 (no limit) to 65535")
        self._prefetch = prefetch
        self._timeout = _positive(timeout, "timeout")
        self._declare = bool(declare)
        self._connection: AbstractConnection | None = None
        self._inbox: queue.Queue[tuple[int, AbstractIncomingMessage | str]] = queue.Queue()
        self._generation = 0  # of the connection; deliveries of an older one are stale
        self._broken = False
        self._closed = False
        self._lock = threading.Lock()
        self._loop = LoopThread(f"shredstore-rabbitmq-{self._name}")
        try:
            self._open()
        except BaseException:
            self._forget()
            self._loop.close()
            raise

    def receive(self, timeout: float) -> Delivery | None:
        """The next message, or None if none came within `timeout` seconds.

        Raises `BrokerUnavailable` if the broker cannot be reached, or the connection was lost
        (the next call connects again), and `RelayError` once the subscriber is closed.
        """
        with self._lock:
            if self._closed:
                raise RelayError("the RabbitMQ subscriber is closed")
            if self._broken:
                self._open()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    generation, item = self._inbox.get(
                        timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    return None
                if generation != self._generation:
                    continue  # from a connection since replaced: the broker redelivers it
                if isinstance(item, str):
                    self._broken = True
                    raise BrokerUnavailable(item)
                return _RabbitMQDelivery(self, item)

    def close(self) -> None:
        """Disconnect and stop the loop thread; idempotent. Messages received and not
        acknowledged go back to the queue."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._generation += 1
            self._forget()
            self._loop.close()
            self._drain()

    def _settle(self, operation: Coroutine[Any, Any, None], doing: str) -> None:
        """Run an acknowledgement on the loop (the caller's thread waits)."""
        if self._closed:
            operation.close()
            raise BrokerUnavailable(
                f"cannot {doing} the message: the RabbitMQ subscriber is closed (the broker "
                "delivers it again)")
        try:
            self._loop.run(operation, self._timeout)
        except MessageProcessError:
            raise RelayError("the message was already acknowledged or rejected") from None
        except ChannelInvalidStateError:
            raise BrokerUnavailable(
                f"{self._endpoint.where}: could not {doing} the message: the channel it came "
                "by is closed (the broker delivers it again)") from None
        except _FAILURES as error:
            raise BrokerUnavailable(self._endpoint.failure(
                f"could not {doing} the message (the broker delivers it again)", error,
                self._timeout)) from None

    def _open(self) -> None:
        """Connect (again), from the caller's thread; `BrokerUnavailable` if it cannot."""
        self._generation += 1
        self._drain()
        self._forget()
        self._loop.run(self._consume(self._generation), self._timeout + GRACE)
        self._broken = False

    def _forget(self) -> None:
        with contextlib.suppress(BrokerUnavailable):
            self._loop.run(self._drop(), CLOSE_TIMEOUT + 1)

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._inbox.get_nowait()

    async def _consume(self, generation: int) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._subscribe(generation)
        except _FAILURES as error:
            await self._drop()
            raise BrokerUnavailable(
                self._endpoint.failure("could not subscribe", error, self._timeout)) from None

    async def _subscribe(self, generation: int) -> None:
        inbox = self._inbox
        where = self._endpoint.where

        def lost(_sender: object, error: BaseException | None = None) -> None:
            if generation == self._generation:
                reason = "" if error is None else f" ({self._endpoint.describe(error)})"
                inbox.put((generation, f"lost the connection to {where}{reason}"))

        async def deliver(message: AbstractIncomingMessage) -> None:
            inbox.put((generation, message))

        self._connection = connection = await aio_pika.connect(self._endpoint.url)
        connection.close_callbacks.add(lost)
        channel = await connection.channel(publisher_confirms=False)
        channel.close_callbacks.add(lost)
        await channel.set_qos(prefetch_count=self._prefetch)
        if self._declare:
            exchange = await _exchange(channel, self._exchange_name, declare=True)
            amqp_queue = await channel.declare_queue(self._name, durable=True)
            for key in self._bindings:
                await amqp_queue.bind(exchange, routing_key=key)
        else:
            amqp_queue = await channel.get_queue(self._name, ensure=True)
        await amqp_queue.consume(deliver, no_ack=False)

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        await _close(connection)


class _RabbitMQDelivery:
    """One message received by a `RabbitMQSubscriber` (a `Delivery`)."""

    __slots__ = ("_message", "_subscriber")

    def __init__(self, subscriber: RabbitMQSubscriber, message: AbstractIncomingMessage) -> None:
        self._subscriber = subscriber
        self._message = message

    @property
    def body(self) -> bytes:
        """The message's body, as published."""
        return self._message.body

    def ack(self) -> None:
        """The message took effect: RabbitMQ drops it. `BrokerUnavailable` if the connection
        it came by is gone (then it is delivered again)."""
        self._subscriber._settle(self._message.ack(), "acknowledge")

    def reject(self, *, requeue: bool) -> None:
        """The message did not take effect: redeliver it (`requeue`), or drop it (or
        dead-letter it, where the queue is configured so)."""
        self._subscriber._settle(self._message.reject(requeue=requeue), "reject")


def _shortened_routing_key(key: str) -> str:
    """`key` if AMQP takes it (at most 255 bytes in UTF-8); else its first 222 bytes (cut at a
    character boundary), ``~`` and 32 hex digits of the SHA-256 of the whole key."""
    encoded = key.encode("utf-8", "surrogatepass")
    if len(encoded) <= _MAX_SHORT_STRING:
        return key
    digest = hashlib.sha256(encoded).hexdigest()[:_HASH_CHARS]
    prefix = encoded[:_MAX_SHORT_STRING - 1 - _HASH_CHARS].decode("utf-8", "ignore")
    return f"{prefix}~{digest}"


def _endpoint(url: str) -> Endpoint:
    return Endpoint(url, broker="RabbitMQ", ports={"amqp": 5672, "amqps": 5671},
                    example="amqp://guest:guest@127.0.0.1:5672/")


async def _exchange(channel: AbstractChannel, name: str, declare: bool) -> AbstractExchange:
    if declare:
        return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    return await channel.get_exchange(name, ensure=True)


async def _close(connection: AbstractConnection | None) -> None:
    """Close `connection` if there is one, giving up after a while; never raises."""
    if connection is None:
        return
    with contextlib.suppress(*_FAILURES):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connection.close()


def _amqp_message(message: Message) -> aio_pika.Message:
    return aio_pika.Message(
        message.body,
        headers=dict(message.headers()),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(message.event_id),
        type=_short(message.event_type),
        correlation_id=_short(message.correlation_id),
        app_id="shredstore",
    )


def _succeeded(task: asyncio.Future[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def _why(task: asyncio.Future[Any]) -> BaseException | str:
    if not task.done():
        return TimeoutError()
    if task.cancelled():
        return "the publish was cancelled (the channel closed)"
    return task.exception() or "not confirmed"


def _short(value: str | None) -> str | None:
    if value is None or len(value.encode("utf-8", "surrogatepass")) > _MAX_SHORT_STRING:
        return None
    return value


def _short_name(value: object, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty) \
            or len(value.encode("utf-8", "surrogatepass")) > _MAX_SHORT_STRING:
        raise ConfigurationError(
            f"a RabbitMQ {what} is a {'' if empty else 'non-empty '}string of at most "
            f"{_MAX_SHORT_STRING} bytes")
    return value


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{what} is a number of seconds greater than 0")
    return float(value)
