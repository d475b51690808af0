"""The consumer side: open relayed messages through the store, take each one effect once.

`open_message` turns a message body back into a `RecordedEvent` through a store opened on the
sending store's database and key vault, with its master key: the row's authenticator is
checked (a message altered in the broker raises `TamperedError`) and its sealed fields are
opened or, where the subject was erased since (even after the message was sent), redacted.
Without the master key a consumer sees what `read_message` gives: the event's type, stream,
version, position, time, metadata and plain fields, and the ids of the subjects it names,
never a personal value.

`RelayConsumer` runs a handler once per event however often the broker delivers it: the
handler's writes and the event's de-duplication marker (`IdempotentConsumer`) commit in one
transaction, and the message is acknowledged only after that commit.

`Inbox` copies relayed events into a service's own event store, where its sagas and projections
read them: each event is appended with its own event id (an append of an event id already
stored is a retry, which stores nothing), so a redelivery has no second effect either. Two
services that share a key vault talk this way through a broker (examples/relay_services.py).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from shredstore.errors import MessageFormatError, TamperedError
from shredstore.events import RecordedEvent
from shredstore.projections.consumer import Handler, IdempotentConsumer
from shredstore.projections.runner import stop_on_signals
from shredstore.relay.brokers import Delivery, Subscriber
from shredstore.relay.message import read_message

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["Inbox", "RelayConsumer", "open_message"]

_log = logging.getLogger("shredstore.relay")


def open_message(store: EventStore, body: bytes) -> RecordedEvent:
    """The recorded event a relayed message carries, opened as a read of `store` opens it
    (see the module). `MessageFormatError` for a body that is not a relayed event."""
    (record,) = store.open_stored([read_message(body)])
    return record


class _Consumer(ABC):
    """A loop over a subscriber's deliveries; `handle` is the subclass's."""

    def __init__(self, store: EventStore, subscriber: Subscriber) -> None:
        self._store = store
        self._subscriber = subscriber
        self._stop = threading.Event()
        self.handled = 0
        """Events that took effect through this process."""
        self.duplicates = 0
        """Deliveries of events that had taken effect already (acknowledged, not handled)."""

    @abstractmethod
    def handle(self, delivery: Delivery) -> bool:
        """Take one delivery (see the subclasses)."""

    def _open(self, delivery: Delivery) -> RecordedEvent:
        """The delivery's event; a message that is not a relayed event, or fails
        authentication, is rejected without requeue (dead-lettered, where the queue has one)
        and the error raised."""
        try:
            return open_message(self._store, delivery.body)
        except (MessageFormatError, TamperedError):
            delivery.reject(requeue=False)
            raise

    def _done(self, delivery: Delivery, first: bool) -> bool:
        delivery.ack()
        if first:
            self.handled += 1
        else:
            self.duplicates += 1
        return first

    def run(self, *, poll: float = 0.5, handle_signals: bool = False) -> None:
        """Handle deliveries as they come until `stop()` (or, with `handle_signals`, SIGTERM
        or SIGINT). An error ends it (see `handle`): run it under a supervisor that restarts
        it, as any consumer service."""
        self._stop.clear()
        restore = stop_on_signals(self.stop) if handle_signals else None
        try:
            while not self._stop.is_set():
                delivery = self._subscriber.receive(poll)
                if delivery is not None:
                    self.handle(delivery)
        finally:
            if restore is not None:
                restore()

    def stop(self) -> None:
        """End `run` after the delivery in hand; thread-safe."""
        self._stop.set()


class RelayConsumer(_Consumer):
    """Feeds `subscriber`'s messages, opened through `store`, to `handler` through
    `consumer` (an `IdempotentConsumer` in the service's own database): each event takes
    effect once. ``handler(conn, record)`` writes through `conn`, in the marker's
    transaction."""

    def __init__(self, store: EventStore, subscriber: Subscriber, consumer: IdempotentConsumer,
                 handler: Handler) -> None:
        super().__init__(store, subscriber)
        self._consumer = consumer
        self._handler = handler

    def handle(self, delivery: Delivery) -> bool:
        """Take one delivery: True if its handler ran, False for a duplicate; acknowledged
        after the commit. A message that is not a relayed event, or fails authentication, is
        rejected without requeue and the error raised; a handler that raises rejects it for
        redelivery, and the error propagates."""
        record = self._open(delivery)
        try:
            first = self._consumer.handle(record, self._handler)
        except BaseException:
            delivery.reject(requeue=True)
            raise
        return self._done(delivery, first)


class Inbox(_Consumer):
    """Appends `subscriber`'s events to `store` (see the module), each to the stream
    ``stream(record)`` (default: the stream it came from), with its metadata, its
    correlation and causation ids, and its own event id.

    `store` opens the messages: it must share the sending store's key vault. An event whose
    subject was erased (its personal fields read as redacted) is not copied: acknowledged,
    counted in `skipped`, and logged with its position only. `handled` counts the events
    that are in the store once their delivery was taken (appended then, or found appended:
    the store tells a retry from a first append only by storing nothing).
    """

    def __init__(self, store: EventStore, subscriber: Subscriber, *,
                 stream: Callable[[RecordedEvent], str] | None = None) -> None:
        super().__init__(store, subscriber)
        self._stream = stream
        self.skipped = 0
        """Events not copied because their subject was erased."""

    def handle(self, delivery: Delivery) -> bool:
        """Take one delivery: True once its event is in the store (appended now, or found
        appended by an earlier delivery), False if it was skipped; acknowledged after the
        append committed. Errors as `RelayConsumer.handle`."""
        record = self._open(delivery)
        if record.redacted_fields:
            _log.warning("inbox: the event at position %d of the sender's log names an erased "
                         "subject: not copied", record.position)
            self.skipped += 1
            delivery.ack()
            return False
        stream = record.stream_id if self._stream is None else self._stream(record)
        try:
            self._store.append(stream, [record.event], metadata=dict(record.metadata))
        except BaseException:
            delivery.reject(requeue=True)
            raise
        return self._done(delivery, True)
