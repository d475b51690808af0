"""NATS JetStream for the broker relay: a publisher with JetStream acknowledgements, and a
durable pull subscriber.

Both are synchronous fronts for nats-py, whose client is asyncio: each runs one connection on
a `LoopThread` of its own, and every call from the caller's thread is one coroutine on that
loop, bounded by the `timeout` option. Connections fail fast and are never re-established by
the client itself (``allow_reconnect=False``): a lost connection is dropped, reported as
`BrokerUnavailable`, and the next call connects again, so the relay's own retries and backoff
are the only ones.

Messages go to the subjects ``<prefix>.<route(message)>``, by default
``<prefix>.<type>.<stream>`` (`default_route`), stored by the JetStream stream `stream`, which
is declared (when missing) with the subjects ``<prefix>.>``, file storage and a de-duplication
window. A stream of that name that exists is used as it is, but only if its subjects cover
``<prefix>.>``: else `ConfigurationError`.

`NatsPublisher` pipelines a batch: one coroutine writes every message in order with
``publish_async`` (one connection writes in order, and JetStream stores in the order it
receives), each with the header ``Nats-Msg-Id`` set to the event id, then waits for every
acknowledgement. JetStream drops a message whose id it stored within the duplicate window and
acknowledges it as a duplicate, which counts as confirmed: a batch sent again after a failure
is stored once. Whatever goes wrong (no connection, a lost connection, no stream for the
subject, an API error, no answer within `timeout`) is `BrokerUnavailable`, whose ``confirmed``
counts the messages acknowledged from the first of the batch; the connection is then dropped,
and the next `publish` connects again. The publisher connects on its first `publish`.

`NatsSubscriber` reads the durable pull consumer `name` (explicit acknowledgement, every
message of the stream from the first, `ack_wait`, a filter subject): `receive` fetches up to
`batch` messages at a time, one fetch at a time, and hands them out one by one. A `Delivery`'s
acknowledgement, negative acknowledgement (requeue) and termination (drop) are requests that
JetStream answers, so none is lost on the way. On `close`, every message fetched and not yet
acknowledged or rejected is negatively acknowledged, so that the next subscriber of the name
gets it at once rather than after `ack_wait`; a message whose `close` could not release it
(the connection was gone) comes again after `ack_wait`.

Errors name the server by host and port, never the URL's credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    StorageType,
    StreamConfig,
)

from shredstore.errors import BrokerUnavailable, ConfigurationError, MessageTooLarge, RelayError
from shredstore.relay.brokers import (
    CLOSE_TIMEOUT,
    GRACE,
    ConfirmingPublisher,
    Delivery,
    Endpoint,
    LoopThread,
)
from shredstore.relay.message import Message, default_route

__all__ = ["NatsPublisher", "NatsSubscriber"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

# Everything nats-py and the transport under it raise for a broker that failed (TimeoutError,
# ConnectionError are OSErrors); ValueError and EOFError for replies it could not parse.
_FAILURES: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, EOFError, ValueError)
_CONNECT_TIMEOUT = 2  # seconds per connection attempt (nats-py wants whole seconds)
_POLL = 0.1  # seconds between looks at the connection while acknowledgements are awaited
_SUBJECTS_OVERLAP = 10065  # JetStream's error code: the subjects overlap another stream's
_DUPLICATE_WINDOW = 120.0  # seconds: the de-duplication window of a stream a subscriber declares
_MAX_NAME = 255
_NAME = re.compile(r"[^\s.*>/\\\x00-\x1f\x7f]+")
_WORD = re.compile(r"[^\s.*>\x00-\x1f\x7f]+")
_ACK, _NAK, _TERM = Msg.Ack.Ack, Msg.Ack.Nak, Msg.Ack.Term
_HEADER_LINE = b"NATS/1.0\r\n"  # what a message with headers begins with


class NatsPublisher(ConfirmingPublisher):
    """Publishes relayed events to a NATS JetStream stream, each acknowledged by JetStream.

    Each message goes to the subject ``<prefix>.<route(message)>`` (by default
    ``<prefix>.<type>.<stream>``, `default_route`), with the headers `Message.headers` and
    ``Nats-Msg-Id``, the event id, by which JetStream drops a message sent again within the
    stream's duplicate window. Unless `declare` is false, the stream `stream` is declared on
    connecting: created with the subjects ``<prefix>.>``, file storage and
    `duplicate_window` seconds if it is missing, used as it is if it covers those subjects,
    `ConfigurationError` if it does not. With `declare` false, the stream must exist.

    `publish` returns once JetStream acknowledged every message, and waits at most `timeout`
    seconds for the connection and as long again for the acknowledgements; see
    `Publisher.publish` for what its `BrokerUnavailable` means.
    """

    def __init__(self, url: str, *, stream: str = "SHREDSTORE", prefix: str = "shredstore",
                 route: Callable[[Message], str] = default_route, timeout: float = 10.0,
                 declare: bool = True, duplicate_window: float = 120.0) -> None:
        endpoint = _NatsEndpoint(url)
        self._stream = _name(stream, "stream name")
        self._prefix = _prefix(prefix)
        if not callable(route):
            raise ConfigurationError("route is a function from a Message to a subject's end")
        self._route = route
        self._timeout = _positive(timeout, "timeout")
        self._declare = bool(declare)
        self._duplicate_window = _positive(duplicate_window, "duplicate_window")
        self._connection: Client | None = None
        self._js: JetStreamContext | None = None
        self._rejection: BaseException | None = None  # see _connect
        super().__init__(endpoint, patience=2 * self._timeout + GRACE)

    broker = "NATS"

    def _outgoing(self, message: Message) -> tuple[str, bytes, dict[str, str]]:
        return self._subject(message), message.body, _headers(message)

    def _subject(self, message: Message) -> str:
        end = self._route(message)
        if not isinstance(end, str) or not _is_subject(end, wildcards=False):
            raise ConfigurationError(
                f"route gave no valid NATS subject for event {message.event_id} (dot-separated "
                "non-empty words without spaces, '*' or '>')")
        return f"{self._prefix}.{end}"

    async def _send(self, outgoing: list[tuple[str, bytes, dict[str, str]]]
                    ) -> tuple[int, str | None]:
        """Publish on the loop: (how many were acknowledged from the first, why not all)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                js = await self._connect()
        except ConfigurationError:
            await self._disconnect()
            raise
        except _FAILURES as error:
            await self._disconnect()
            return 0, self._endpoint.failure("could not connect", error, self._timeout)
        _check_sizes(outgoing, self._connection)
        deadline = loop.time() + self._timeout
        self._rejection = None
        acks: list[asyncio.Future[PubAck]] = []
        problem: BaseException | str | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for subject, body, headers in outgoing:
                    acks.append(await js.publish_async(subject, body, headers=headers))
                await self._acknowledged(acks)
        except _FAILURES as error:
            problem = error
        except asyncio.CancelledError:
            if _cancelled():
                raise
            problem = "the connection closed"  # nats-py cancels what waits on a closed one
        confirmed = 0
        while confirmed < len(acks) and _succeeded(acks[confirmed]):
            confirmed += 1
        if problem is None and confirmed < len(acks):
            problem = _why(acks[confirmed], self._connection, self._rejection)
        for ack in acks:  # none is awaited any more: retrieve or cancel each
            if ack.done() and not ack.cancelled():
                ack.exception()
            else:
                ack.cancel()
        if confirmed == len(outgoing):
            return confirmed, None
        await self._disconnect()
        return confirmed, self._endpoint.failure(
            f"acknowledged {confirmed} of {len(outgoing)} messages",
            problem or "not acknowledged", self._timeout)

    async def _acknowledged(self, acks: list[asyncio.Future[PubAck]]) -> None:
        """Wait until every acknowledgement came, one failed, or the connection closed."""
        pending: set[asyncio.Future[PubAck]] = set(acks)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=_POLL,
                                               return_when=asyncio.FIRST_EXCEPTION)
            if any(not _succeeded(ack) for ack in done):
                return
            connection = self._connection
            if connection is None or connection.is_closed or self._rejection is not None:
                return

    async def _connect(self) -> JetStreamContext:
        if (self._js is not None and self._connection is not None
                and self._connection.is_connected):
            return self._js
        await self._disconnect()
        self._connection = connection = Client()
        self._rejection = None

        def rejected(error: Exception) -> None:
            # nats-py 2.16 raises a JetStream error answering publish_async in its reply
            # handler (APIError.from_error raises) instead of failing the future, which thus
            # never completes: the error comes here. Replies arrive in the order JetStream
            # stored the stream's messages, so every earlier future is complete by now.
            if isinstance(error, nats.js.errors.APIError) and self._connection is connection:
                self._rejection = error

        await _open(connection, self._endpoint, self._timeout, rejected)
        js = connection.jetstream(timeout=self._timeout)
        if self._declare:
            await _declare_stream(js, self._stream, self._prefix, self._duplicate_window)
        self._js = js
        return js

    async def _disconnect(self) -> None:
        connection = self._connection
        self._connection = self._js = None
        await _close(connection)


class NatsSubscriber:
    """Reads the durable JetStream pull consumer `name` of the stream `stream`, with explicit
    acknowledgements.

    Unless `declare` is false, the stream is declared as `NatsPublisher` declares it, and the
    consumer is created if it is missing: durable, every message of the stream from the
    first, explicit acknowledgement, redelivery after `ack_wait` seconds without one, and
    only the subjects `filter_subject` matches (by default ``<prefix>.>``, everything the
    publisher sends; ``<prefix>.shop_OrderPlaced.*`` for a type, ``<prefix>.*.order-7`` for a
    stream, with the default route). A consumer of that name that exists is used as it is,
    but only if it is a pull consumer with that filter subject: else `ConfigurationError`.
    With `declare` false, the consumer must exist.

    `receive` fetches up to `batch` messages at a time and hands them out one by one. Every
    call to the server waits at most `timeout` seconds. It connects on construction
    (`BrokerUnavailable` if it cannot); when the connection is lost, the call that finds out
    raises `BrokerUnavailable`, and the next one connects again. Messages received and not
    acknowledged are redelivered: at once after `close`, after `ack_wait` otherwise.
    """

    def __init__(self, url: str, name: str, *, stream: str = "SHREDSTORE",
                 prefix: str = "shredstore", filter_subject: str | None = None,
                 ack_wait: float = 30.0, batch: int = 100, timeout: float = 10.0,
                 declare: bool = True) -> None:
        self._endpoint = _NatsEndpoint(url)
        self._name = _name(name, "consumer name")
        self._stream = _name(stream, "stream name")
        self._prefix = _prefix(prefix)
        if filter_subject is None:
            filter_subject = f"{self._prefix}.>"
        if not isinstance(filter_subject, str) or not _is_subject(filter_subject,
                                                                  wildcards=True):
            raise ConfigurationError(
                "filter_subject is a NATS subject such as shredstore.*.order-7 (dot-separated "
                "non-empty words without spaces; '*' a word, '>' the last)")
        self._filter_subject = filter_subject
        self._ack_wait = _positive(ack_wait, "ack_wait")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigurationError("batch is a whole number of messages, at least 1")
        self._batch = batch
        self._timeout = _positive(timeout, "timeout")
        self._declare = bool(declare)
        self._connection: Client | None = None
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._buffer: deque[Msg] = deque()  # fetched, not yet handed out
        self._unsettled: dict[int, _NatsDelivery] = {}  # handed out, not acked or rejected
        self._lock = threading.Lock()
        self._closed = False
        self._loop = LoopThread(f"shredstore-nats-{self._name}")
        try:
            self._call(self._guarded(self._subscribed, "could not subscribe"),
                       self._timeout + GRACE)
        except BaseException:
            self._forget()
            self._loop.close()
            raise

    def receive(self, timeout: float) -> Delivery | None:
        """The next message, or None if none came within `timeout` seconds.

        Raises `BrokerUnavailable` if the server cannot be reached, or the connection was
        lost (the next call connects again), and `RelayError` once the subscriber is closed.
        """
        with self._lock:
            if self._closed:
                raise RelayError("the NATS subscriber is closed")
            if not self._buffer:
                wait = max(float(timeout), 0.01)  # nats-py refuses a fetch without a timeout
                self._buffer.extend(self._call(self._fetch(wait),
                                               wait + 2 * self._timeout + GRACE))
            if not self._buffer:
                return None
            delivery = _NatsDelivery(self, self._buffer.popleft())
            self._unsettled[id(delivery)] = delivery
            return delivery

    def close(self) -> None:
        """Release every message received and not acknowledged (JetStream delivers it again at
        once), disconnect and stop the loop thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = [delivery.message for delivery in self._unsettled.values()]
            held.extend(self._buffer)
            self._unsettled.clear()
            self._buffer.clear()
            with contextlib.suppress(BrokerUnavailable):
                self._loop.run(self._release(held), self._timeout + GRACE)
            self._forget()
            self._loop.close()

    def _settle(self, delivery: _NatsDelivery, payload: bytes, doing: str) -> None:
        """Acknowledge (+ACK), requeue (-NAK) or drop (+TERM) a delivery, and wait until
        JetStream has; `RelayError` for a delivery acknowledged or rejected already."""
        with self._lock:
            if self._closed:
                raise BrokerUnavailable(
                    f"cannot {doing} the message: the NATS subscriber is closed (JetStream "
                    "delivers it again)")
            if id(delivery) not in self._unsettled:
                raise RelayError("the message was already acknowledged or rejected")
            self._call(self._request(delivery.message, payload, doing), self._timeout + GRACE)
            del self._unsettled[id(delivery)]

    def _call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        try:
            return self._loop.run(coroutine, timeout)
        except BrokerUnavailable:  # dropped already, unless the loop itself did not answer
            self._forget()
            raise

    def _forget(self) -> None:
        with contextlib.suppress(BrokerUnavailable):
            self._loop.run(self._drop(), CLOSE_TIMEOUT + 1)

    async def _fetch(self, timeout: float) -> list[Msg]:
        async def fetch() -> list[Msg]:
            subscription = await self._subscribed()
            try:
                return await subscription.fetch(self._batch, timeout=timeout)
            except TimeoutError:  # nats-py's, FetchTimeoutError, asyncio's: nothing came
                return []

        return await self._guarded(fetch, "could not fetch messages")

    async def _request(self, message: Msg, payload: bytes, doing: str) -> None:
        async def request() -> None:
            await self._subscribed()
            assert self._connection is not None  # noqa: S101 (set by _subscribed)
            await self._connection.request(message.reply, payload, timeout=self._timeout)

        await self._guarded(
            request, f"could not {doing} the message (JetStream delivers it again)")

    async def _release(self, held: list[Msg]) -> None:
        """Negatively acknowledge `held`, and whatever the last fetch's request still brought
        in; never raises (what is not released comes again after `ack_wait`)."""
        connection, subscription = self._connection, self._subscription
        if connection is None or subscription is None or not connection.is_connected:
            return
        try:
            async with asyncio.timeout(self._timeout):
                if subscription.pending_bytes:  # arrived after a fetch returned
                    with contextlib.suppress(TimeoutError):  # nothing more came
                        held.extend(await subscription.fetch(subscription.pending_msgs,
                                                             timeout=0.1))
                replies = await asyncio.gather(
                    *(connection.request(message.reply, _NAK, timeout=self._timeout)
                      for message in held if message.reply),
                    return_exceptions=True)
        except _FAILURES as error:
            _log.debug("NATS subscriber %s: could not release its messages: %s", self._name,
                       self._endpoint.describe(error))
            return
        except asyncio.CancelledError:
            if _cancelled():
                raise
            return  # the connection closed under it
        failed = sum(isinstance(reply, BaseException) for reply in replies)
        if failed:
            _log.debug("NATS subscriber %s: could not release %d of its messages", self._name,
                       failed)

    async def _guarded(self, operation: Callable[[], Awaitable[T]], doing: str) -> T:
        """`operation`, or `BrokerUnavailable` (the connection dropped) if it fails."""
        try:
            return await operation()
        except (ConfigurationError, BrokerUnavailable):
            await self._drop()
            raise
        except _FAILURES as error:
            await self._drop()
            raise BrokerUnavailable(
                self._endpoint.failure(doing, error, self._timeout)) from None
        except asyncio.CancelledError:
            if _cancelled():
                raise
            # nats-py cancels what waits on a connection that closes under it
            await self._drop()
            raise BrokerUnavailable(self._endpoint.failure(
                doing, "the connection closed", self._timeout)) from None

    async def _subscribed(self) -> JetStreamContext.PullSubscription:
        """The pull subscription, connecting (again) if there is none."""
        if (self._subscription is not None and self._connection is not None
                and self._connection.is_connected):
            return self._subscription
        await self._drop()
        try:
            async with asyncio.timeout(self._timeout):
                self._connection = connection = Client()
                await _open(connection, self._endpoint, self._timeout)
                js = connection.jetstream(timeout=self._timeout)
                if self._declare:
                    await _declare_stream(js, self._stream, self._prefix, _DUPLICATE_WINDOW)
                await self._declare_consumer(js)
                self._subscription = await js.pull_subscribe_bind(durable=self._name,
                                                                  stream=self._stream)
        except ConfigurationError:
            await self._drop()
            raise
        except _FAILURES as error:
            await self._drop()
            raise BrokerUnavailable(
                self._endpoint.failure("could not subscribe", error, self._timeout)) from None
        return self._subscription

    async def _declare_consumer(self, js: JetStreamContext) -> None:
        try:
            info = await js.consumer_info(self._stream, self._name)
        except nats.js.errors.NotFoundError:
            if not self._declare:
                raise ConfigurationError(
                    f"NATS has no consumer {self._name!r} of the stream {self._stream!r} (or "
                    "no such stream), and the subscriber does not declare it") from None
            config = ConsumerConfig(
                name=self._name, durable_name=self._name, ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL, ack_wait=self._ack_wait,
                filter_subject=self._filter_subject)
            try:
                await js.add_consumer(self._stream, config)
            except nats.js.errors.BadRequestError as error:
                raise ConfigurationError(
                    f"NATS refused the consumer {self._name!r} of the stream "
                    f"{self._stream!r}: {error.description}") from None
            return
        existing = info.config
        if existing.deliver_subject:
            raise ConfigurationError(
                f"the NATS consumer {self._name!r} of the stream {self._stream!r} is a push "
                "consumer; the subscriber reads a pull consumer")
        if self._declare and (existing.filter_subject or ">") != self._filter_subject:
            raise ConfigurationError(
                f"the NATS consumer {self._name!r} of the stream {self._stream!r} filters "
                f"{existing.filter_subject or '>'!r}, not {self._filter_subject!r}: delete it, "
                "or name another consumer")

    async def _drop(self) -> None:
        connection = self._connection
        self._connection = self._subscription = None
        await _close(connection)


class _NatsDelivery:
    """One message received by a `NatsSubscriber` (a `Delivery`)."""

    __slots__ = ("_subscriber", "message")

    def __init__(self, subscriber: NatsSubscriber, message: Msg) -> None:
        self._subscriber = subscriber
        self.message = message

    @property
    def body(self) -> bytes:
        """The message's body, as published."""
        return self.message.data

    @property
    def subject(self) -> str:
        """The subject it was published to."""
        return self.message.subject

    @property
    def headers(self) -> dict[str, str]:
        """Its headers: the ``Shredstore-*`` routing fields and ``Nats-Msg-Id``."""
        return dict(self.message.headers or {})

    def ack(self) -> None:
        """The message took effect: JetStream drops it (once it answered). `BrokerUnavailable`
        if it cannot be told (then it is delivered again)."""
        self._subscriber._settle(self, _ACK, "acknowledge")

    def reject(self, *, requeue: bool) -> None:
        """The message did not take effect: redeliver it at once (`requeue`, a negative
        acknowledgement), or never again (``requeue=False``, terminated)."""
        self._subscriber._settle(self, _NAK if requeue else _TERM,
                                 "requeue" if requeue else "drop")


class _NatsEndpoint(Endpoint):
    """A NATS URL (``nats://user:password@host`` or ``nats://token@host``), named in errors
    without its credentials."""

    __slots__ = ()

    def __init__(self, url: str) -> None:
        super().__init__(url, broker="NATS", ports={"nats": 4222, "tls": 4222},
                         example="nats://127.0.0.1:4222", token=True)

    def failure(self, doing: str, error: BaseException | str, timeout: float) -> str:
        if isinstance(error, nats.js.errors.NoStreamResponseError):
            error = "no JetStream stream takes the subject (or JetStream is not enabled)"
        return super().failure(doing, error, timeout)


async def _open(connection: Client, endpoint: Endpoint, timeout: float,
                on_error: Callable[[Exception], None] | None = None) -> None:
    """Connect `connection` to the server: two quick attempts, no reconnection later.
    `on_error` sees the errors nats-py reports asynchronously (the caller gets the rest)."""

    async def error_cb(error: Exception) -> None:
        _log.debug("%s: %s", endpoint.where, endpoint.describe(error))
        if on_error is not None:
            on_error(error)

    await connection.connect(
        endpoint.url, error_cb=error_cb, allow_reconnect=False,
        # max_reconnect_attempts=0 would retry forever; 1 allows two attempts in all.
        max_reconnect_attempts=1, reconnect_time_wait=0,
        connect_timeout=min(_CONNECT_TIMEOUT, max(1, int(timeout))),
        flush_timeout=timeout)


async def _declare_stream(js: JetStreamContext, stream: str, prefix: str,
                          duplicate_window: float) -> None:
    """Create the stream `stream` for ``<prefix>.>`` if it is missing; `ConfigurationError` if
    it exists and does not cover those subjects."""
    wanted = f"{prefix}.>"
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        config = StreamConfig(name=stream, subjects=[wanted], storage=StorageType.FILE,
                              duplicate_window=duplicate_window)
        try:
            await js.add_stream(config)
            return
        except nats.js.errors.BadRequestError as error:
            if error.err_code == _SUBJECTS_OVERLAP:
                raise ConfigurationError(
                    f"NATS cannot create the stream {stream!r}: the subjects {wanted!r} "
                    "overlap another stream's") from None
            try:
                info = await js.stream_info(stream)  # created meanwhile by another?
            except nats.js.errors.NotFoundError:
                raise ConfigurationError(
                    f"NATS refused the stream {stream!r}: {error.description}") from None
    subjects = info.config.subjects or []
    if not any(_covers(pattern, wanted) for pattern in subjects):
        raise ConfigurationError(
            f"the NATS stream {stream!r} exists with the subjects {subjects!r}, which do not "
            f"cover {wanted!r}: use another stream name or prefix")


async def _close(connection: Client | None) -> None:
    """Close `connection` if there is one, giving up after a while; never raises."""
    if connection is None or connection.is_closed:
        return
    # AssertionError: nats-py's way of saying that a connection never got far enough to close
    with contextlib.suppress(*_FAILURES, AssertionError):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connection.close()
    await asyncio.sleep(0)  # let its cancelled tasks finish


def _check_sizes(outgoing: list[tuple[str, bytes, dict[str, str]]],
                 connection: Client | None) -> None:
    """`MessageTooLarge` for the first message whose headers and body are more than the
    server's ``max_payload`` (which counts both): the server would close the connection on
    it, and the relay would send it again for ever."""
    if connection is None:
        return
    limit = connection.max_payload
    for index, (_, body, headers) in enumerate(outgoing):
        size = len(body) + len(_HEADER_LINE) + 2 + sum(
            len(name.encode()) + len(value.encode()) + 4 for name, value in headers.items())
        if size > limit:
            raise MessageTooLarge("larger than max_payload", index=index, size=size,
                                  limit=limit)


def _headers(message: Message) -> dict[str, str]:
    headers = message.headers()
    headers["Nats-Msg-Id"] = str(message.event_id)
    return headers


def _cancelled() -> bool:
    """Whether the running task itself was cancelled (not merely something it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _why(future: asyncio.Future[Any], connection: Client | None,
         rejection: BaseException | None) -> BaseException | str:
    if not future.done():
        if rejection is not None:
            return rejection
        if connection is None or connection.is_closed:
            return "the connection closed"
        return TimeoutError()
    if future.cancelled():
        return "the publish was cancelled"
    return future.exception() or "not acknowledged"


def _covers(pattern: str, subject: str) -> bool:
    """Whether every subject `subject` matches (it may hold wildcards) matches `pattern`."""
    wanted, have = pattern.split("."), subject.split(".")
    for n, word in enumerate(wanted):
        if word == ">":
            return len(have) > n
        if n >= len(have) or have[n] == ">" or (word not in ("*", have[n])):
            return False
    return len(have) == len(wanted)


def _is_subject(subject: str, *, wildcards: bool) -> bool:
    words = subject.split(".")
    for n, word in enumerate(words):
        if wildcards and (word == "*" or (word == ">" and n == len(words) - 1)):
            continue
        if not _WORD.fullmatch(word):
            return False
    return True


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_NAME or not _NAME.fullmatch(value):
        raise ConfigurationError(
            f"a NATS {what} is a non-empty string of at most {_MAX_NAME} characters without "
            "spaces, '.', '*', '>', '/' or '\\'")
    return value


def _prefix(value: object) -> str:
    if not isinstance(value, str) or not _is_subject(value, wildcards=False):
        raise ConfigurationError(
            "a NATS subject prefix is dot-separated non-empty words without spaces, '*' or "
            "'>', such as shredstore")
    return value


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{what} is a number of seconds greater than 0")
    return float(value)
