"""Catch-up subscriptions: the log from a position, in batches, then live.

A subscription reads by global position and nothing else decides what it sees: before each
read it takes the log's head, and reads every row up to that head. Appends are serialised and
commit in position order (invariant 4), so every row up to a committed head is visible: the
subscription never skips an event while writers run. Waiting for new events polls the head,
backing off while the log is quiet; on PostgreSQL a ``NOTIFY`` sent by each append's commit
wakes it at once. A notification is only a hint: order and completeness come from positions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from shredstore.errors import ConfigurationError
from shredstore.events import Event, RecordedEvent

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["Batch", "LogWaiter", "Subscription"]

_FIRST_WAIT = 0.01
"""Seconds of the first poll after the log went quiet; doubled up to `poll_interval`."""
_WAKE_CHECK = 0.2
"""How often a wait on PostgreSQL notifications looks at the stop flag (seconds)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Events read together, and the position everything up to which has now been read.

    `position` can be past the last event's: rows that the filters left out still count as
    read, so a checkpoint stored from it never makes a filtered reader scan them again.
    """

    events: list[RecordedEvent]
    position: int


class Subscription:
    """Events after `after` in log order: first what is there, then each new one as it is
    committed (``live=False``: stop once caught up). Filters: event `types` (classes or stored
    names) and a `stream_prefix`. Iterate it for events, or `batches()` for batches with their
    positions; `stop()` (from any thread) ends the iteration after the current batch."""

    def __init__(self, store: EventStore, *, after: int = 0,
                 types: Iterable[str | type[Event]] | None = None,
                 stream_prefix: str | None = None, batch_size: int = 500, live: bool = True,
                 poll_interval: float = 0.5) -> None:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ConfigurationError("after must be a position (an int >= 0)")
        if batch_size < 1 or poll_interval <= 0:
            raise ConfigurationError("batch_size must be >= 1 and poll_interval > 0")
        self._store = store
        self.position = after
        """Everything up to here has been delivered."""
        self._types = None if types is None else sorted(
            {kind if isinstance(kind, str) else kind.__event_type__ for kind in types})
        self._prefix = stream_prefix
        self._size = batch_size
        self._live = live
        self._poll = poll_interval
        self._stopped = threading.Event()
        self._waiter = LogWaiter(store, poll_interval)

    def __iter__(self) -> Iterator[RecordedEvent]:
        for batch in self.batches():
            yield from batch.events

    def batches(self) -> Iterator[Batch]:
        """Batches of at most `batch_size` events; an empty batch when the head moved past
        only filtered-out rows (so its position can be stored)."""
        wait = _FIRST_WAIT
        try:
            while not self._stopped.is_set():
                head = self._store.head().position
                if head > self.position:
                    yield from self._read_up_to(head)
                    wait = _FIRST_WAIT
                elif not self._live:
                    return
                else:
                    self._wait(wait)
                    wait = min(wait * 2, self._poll)
        finally:
            self.close()

    def stop(self) -> None:
        """End the iteration after the current batch (thread-safe, idempotent)."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def close(self) -> None:
        """Stop, and release the notification connection (PostgreSQL)."""
        self._stopped.set()
        self._waiter.close()

    def _read_up_to(self, head: int) -> Iterator[Batch]:
        pages = self._store.read_window(after=self.position, upto=head, types=self._types,
                                        stream_prefix=self._prefix, size=self._size)
        for events, last in pages:
            self.position = last
            yield Batch(events, last)
            if self._stopped.is_set():
                return
        if self.position < head:  # the rest up to the head was filtered out
            self.position = head
            yield Batch([], head)

    def _wait(self, seconds: float) -> None:
        self._waiter.wait(seconds, self._stopped)


class LogWaiter:
    """Waits for the log to grow: a pause of the given length, or on PostgreSQL until an
    append's ``NOTIFY`` arrives (at most `poll_interval`: a notification is only a hint)."""

    def __init__(self, store: EventStore, poll_interval: float) -> None:
        self._store = store
        self._poll = poll_interval
        self._listener: _Listener | None = None

    def wait(self, seconds: float, stopped: threading.Event) -> None:
        """Until the log may have grown (`seconds` pass, or a notification) or `stopped`."""
        channel = self._store.notify_channel
        if channel is None:
            stopped.wait(seconds)
            return
        if self._listener is None:
            self._listener = _Listener(self._store, channel)
        self._listener.wait(self._poll, stopped)

    def close(self) -> None:
        """Release the notification connection (PostgreSQL); idempotent."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None


class _Listener:
    """A connection of its own that LISTENs to the log's channel (PostgreSQL)."""

    def __init__(self, store: EventStore, channel: str) -> None:
        self._raw: Any = store.engine.raw_connection()
        self._conn = cast(Any, self._raw.driver_connection)
        self._raw.detach()  # never handed back to the pool in LISTEN state
        self._conn.autocommit = True
        self._conn.execute(f'LISTEN "{channel}"')

    def wait(self, seconds: float, stopped: threading.Event) -> None:
        """Until a notification arrives, `seconds` pass, or `stopped` is set."""
        deadline = time.monotonic() + seconds
        while not stopped.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in self._conn.notifies(timeout=min(left, _WAKE_CHECK), stop_after=1):
                return

    def close(self) -> None:
        self._raw.close()
