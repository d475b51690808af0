"""The broker interface: what the relay needs of a broker, and what a consumer needs.

A broker is added by writing a `Publisher` (and, for consumers, a `Subscriber`) and naming its
URL scheme in `publisher_for` and `subscriber_for`. Both are small and synchronous; a broker
whose client is asynchronous (aio-pika, nats-py) runs it on a `LoopThread`. RabbitMQ
(`shredstore.relay.rabbitmq`) and NATS JetStream (`shredstore.relay.nats`) are the two that
ship; docs/relay.md shows how a Kafka publisher would look.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from shredstore.errors import BrokerUnavailable, ConfigurationError
from shredstore.relay.message import Message

__all__ = ["Delivery", "LoopThread", "Publisher", "Subscriber", "publisher_for", "shown_url",
           "subscriber_for"]

T = TypeVar("T")


class Publisher(Protocol):
    """Sends messages to a broker, in order, and says when the broker has them."""

    def publish(self, messages: Sequence[Message]) -> None:
        """Send `messages` in their order and return once the broker confirmed every one
        (stored it: publisher confirms, JetStream acknowledgements). Anything else raises
        `BrokerUnavailable`, whose `confirmed` counts the messages confirmed from the first:
        the relay sends the rest again. Connects on first use, and again after a failure."""

    def close(self) -> None:
        """Disconnect; idempotent."""


class Delivery(Protocol):
    """One message as a consumer received it."""

    @property
    def body(self) -> bytes: ...

    def ack(self) -> None:
        """The message took effect: the broker drops it."""

    def reject(self, *, requeue: bool) -> None:
        """The message did not take effect: redeliver it (`requeue`), or drop it (or
        dead-letter it, where the broker is configured so)."""


class Subscriber(Protocol):
    """Receives the messages of one durable consumer (a queue, a JetStream consumer)."""

    def receive(self, timeout: float) -> Delivery | None:
        """The next message, or None if none came within `timeout` seconds. Raises
        `BrokerUnavailable` when the broker cannot be reached."""

    def close(self) -> None:
        """Disconnect; idempotent. Messages received and not acknowledged are redelivered."""


class LoopThread:
    """An asyncio event loop in a daemon thread of its own, for a broker client that is
    asynchronous behind a synchronous `Publisher` or `Subscriber`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the loop and wait for its result (at most `timeout` seconds:
        then it is cancelled and `BrokerUnavailable` raised)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise BrokerUnavailable(f"the broker did not answer within {timeout:g} s") from None

    def close(self) -> None:
        """Stop the loop and its thread; idempotent."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


def publisher_for(url: str, **options: Any) -> Publisher:
    """The publisher for a broker URL: ``amqp://``/``amqps://`` (RabbitMQ) or
    ``nats://``/``tls://`` (NATS JetStream); `options` go to its constructor."""
    scheme = _scheme(url)
    if scheme in ("amqp", "amqps"):
        from shredstore.relay.rabbitmq import RabbitMQPublisher  # noqa: PLC0415 (optional)
        return RabbitMQPublisher(url, **options)
    from shredstore.relay.nats import NatsPublisher  # noqa: PLC0415 (optional client)
    return NatsPublisher(url, **options)


def subscriber_for(url: str, name: str, **options: Any) -> Subscriber:
    """The subscriber for a broker URL (as `publisher_for`), as the durable consumer `name`
    (a queue on RabbitMQ, a durable JetStream consumer on NATS)."""
    scheme = _scheme(url)
    if scheme in ("amqp", "amqps"):
        from shredstore.relay.rabbitmq import RabbitMQSubscriber  # noqa: PLC0415 (optional)
        return RabbitMQSubscriber(url, name, **options)
    from shredstore.relay.nats import NatsSubscriber  # noqa: PLC0415 (optional client)
    return NatsSubscriber(url, name, **options)


def shown_url(url: str) -> str:
    """`url` as it may be printed or logged: a password, or a NATS token (a user name without
    password), replaced by ``***``."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    hidden = f"{user}:***" if colon else "***"
    return parts._replace(netloc=f"{hidden}@{host}").geturl()


_SCHEMES = ("amqp", "amqps", "nats", "tls")


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            "a broker URL starts with amqp:// or amqps:// (RabbitMQ) or nats:// or tls:// "
            "(NATS JetStream), such as amqp://guest:guest@127.0.0.1:5672/")
    return scheme
