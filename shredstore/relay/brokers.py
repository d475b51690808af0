"""The broker interface: what the relay needs of a broker, and what a consumer needs.

A broker is added by writing a `Publisher` (and, for consumers, a `Subscriber`) and naming its
URL scheme in `publisher_for` and `subscriber_for`. Both are small and synchronous; a broker
whose client is asynchronous (aio-pika, nats-py) runs it on a `LoopThread`. RabbitMQ
(`shredstore.relay.rabbitmq`) and NATS JetStream (`shredstore.relay.nats`) are the two that
ship; docs/relay.md shows how a Kafka publisher would look.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from shredstore.errors import BrokerUnavailable, ConfigurationError, MessageTooLarge, RelayError
from shredstore.relay.message import Message

__all__ = ["CLOSE_TIMEOUT", "GRACE", "ConfirmingPublisher", "Delivery", "Endpoint", "LoopThread",
           "Publisher", "Subscriber", "publisher_for", "shown_url", "subscriber_for"]

CLOSE_TIMEOUT = 3.0
"""Seconds to close a connection politely before giving up on it."""
GRACE = 5.0
"""Seconds beyond an operation's own bound before the caller stops waiting for the loop."""

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


class Endpoint:
    """A broker's URL, and how to name it in errors without its credentials: ``where`` is
    the broker's kind, host and port; `describe` and `failure` blank out the password (and,
    where `token`, a user name without password: a NATS token)."""

    __slots__ = ("_secrets", "url", "where")

    def __init__(self, url: str, *, broker: str, ports: Mapping[str, int], example: str,
                 token: bool = False) -> None:
        if not isinstance(url, str):
            raise ConfigurationError(f"a {broker} URL is a string such as {example}")
        try:
            parts = urlsplit(url)
        except ValueError:
            raise ConfigurationError(f"the {broker} URL is malformed") from None
        if parts.scheme not in ports:
            schemes = " or ".join(f"{scheme}://" for scheme in ports)
            raise ConfigurationError(f"a {broker} URL starts with {schemes}, such as {example}")
        try:
            port = parts.port or ports[parts.scheme]
        except ValueError:
            raise ConfigurationError(f"the {broker} URL's port is not a port number") from None
        self.url = url
        self.where = f"{broker} at {parts.hostname or 'localhost'}:{port}"
        secret = parts.password if parts.password is not None else \
            (parts.username or "") if token else ""
        self._secrets = sorted({text for text in (secret, unquote(secret)) if text}, key=len,
                               reverse=True)

    def describe(self, error: BaseException | str) -> str:
        """The error's kind and text, without the credentials."""
        text = str(error)
        for secret in self._secrets:
            text = text.replace(secret, "******")
        if isinstance(error, str):
            return text
        return f"{type(error).__name__}: {text}" if text else type(error).__name__

    def failure(self, doing: str, error: BaseException | str, timeout: float) -> str:
        """What went wrong, for `BrokerUnavailable`."""
        why = (f"no answer within {timeout:g} s" if isinstance(error, TimeoutError)
               else self.describe(error))
        return f"{self.where}: {doing}: {why}"


class ConfirmingPublisher(ABC):
    """The synchronous front of the shipped publishers: one connection on a `LoopThread`,
    one batch at a time. A subclass gives `_outgoing` (a message as its client sends it),
    `_send` (a batch, on the loop: how many were confirmed from the first, and why not all,
    or None) and `_disconnect` (drop the connection, on the loop); `patience` bounds how long
    the caller waits for `_send` (its own timeouts, and `GRACE`)."""

    broker = "the broker"

    def __init__(self, endpoint: Endpoint, *, patience: float) -> None:
        self._endpoint = endpoint
        self._patience = patience
        self._lock = threading.Lock()
        self._closed = False
        self._loop = LoopThread(f"shredstore-{type(self).__name__}")

    def publish(self, messages: Sequence[Message]) -> None:
        """Send `messages` in order; return once the broker confirmed each one.

        Raises `BrokerUnavailable` (``confirmed``: how many, from the first, were confirmed)
        if it cannot, `MessageTooLarge` (nothing sent) if one is larger than the broker
        accepts, and `RelayError` once the publisher is closed.
        """
        with self._lock:
            if self._closed:
                raise RelayError(f"the {self.broker} publisher is closed")
            if not messages:
                return
            outgoing = [self._outgoing(message) for message in messages]
            try:
                confirmed, failure = self._loop.run(self._send(outgoing), self._patience)
            except BrokerUnavailable:  # the loop itself did not answer: assume nothing
                self._forget()
                raise
            except MessageTooLarge as error:
                big = messages[error.index]
                raise MessageTooLarge(
                    f"event {big.event_id} at position {big.position} is {error.size} bytes "
                    f"as a {self.broker} message, more than the server accepts "
                    f"({error.limit}): the relay cannot skip it and keep order; raise the "
                    "server's limit and start it again", index=error.index, size=error.size,
                    limit=error.limit) from None
            if failure is not None:
                raise BrokerUnavailable(failure, confirmed=confirmed)

    def close(self) -> None:
        """Disconnect and stop the loop thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._forget()
            self._loop.close()

    def _forget(self) -> None:
        """Drop the connection from the caller's thread, whatever state it is in."""
        with contextlib.suppress(BrokerUnavailable):
            self._loop.run(self._disconnect(), CLOSE_TIMEOUT + 1)

    @abstractmethod
    def _outgoing(self, message: Message) -> Any:
        """`message` as the client sends it (checked here, in the caller's thread)."""

    @abstractmethod
    async def _send(self, outgoing: list[Any]) -> tuple[int, str | None]:
        """Publish a batch on the loop: (confirmed from the first, why not all or None); or,
        before sending anything, `MessageTooLarge` (with the message's index in the batch)."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Drop the connection (on the loop)."""


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
