"""`Relay`: every event of the log to a broker, in commit order, at least once, still sealed.

The log itself is the outbox. A relay reads the stored rows after its checkpoint (a position in
``shredstore_relays``, one row per relay name), publishes them as they are stored (personal
fields sealed: `shredstore.relay.message`), and moves the checkpoint only after the broker
confirmed every message up to it. There is no second copy of the data and nothing to clean up.

- **Order.** Rows are read by global position, which never skips a committed event
  (invariant 4), and published in that order over one connection; a failed publish is retried
  from its first unconfirmed message, so a stream's events are first delivered in order (a
  retry may deliver some again: consumers drop duplicates by event id).
- **Faults.** A broker that is down or does not confirm means retries with exponential backoff
  (with jitter), for as long as it takes: nothing is skipped. A relay that dies resumes from
  its checkpoint; what it had sent since is sent again.
- **One active relay per name.** Each pass needs the name's lease, renewed with every
  checkpoint it stores; the other relays of the name wait and one takes over within a lease's
  length of a holder's death. A relay that lost its lease (paused for longer than the lease)
  stops publishing at its next checkpoint: the one that took over continues from the stored
  checkpoint, so nothing is lost, and what both sent is a duplicate.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from shredstore.errors import BrokerUnavailable, ConfigurationError, RelayError
from shredstore.projections.lease import LeasedPosition
from shredstore.projections.runner import stop_on_signals
from shredstore.projections.subscription import LogWaiter
from shredstore.relay.brokers import Publisher
from shredstore.relay.message import Message, to_message
from shredstore.storage.engine import WRITE, translate_errors
from shredstore.storage.schema import RELAYS, install_relays

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["Relay"]

_log = logging.getLogger("shredstore.relay")

_FIRST_WAIT = 0.01
"""Seconds of the first poll after the log went quiet; doubled up to `poll_interval`."""


class Relay:
    """Publishes `store`'s log through `publisher` (see the module). `name` keeps apart the
    checkpoints of relays to different brokers or destinations; relays that share a name share
    one checkpoint and take turns (one active at a time)."""

    def __init__(self, store: EventStore, publisher: Publisher, *, name: str = "default",
                 batch_size: int = 500, poll_interval: float = 0.5,
                 lease: timedelta = timedelta(seconds=10),
                 backoff: tuple[float, float] = (0.1, 5.0)) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ConfigurationError("a relay needs a name of 1 to 200 characters")
        if batch_size < 1 or poll_interval <= 0 or lease.total_seconds() <= 0:
            raise ConfigurationError("a relay needs batch_size >= 1, poll_interval > 0 and a "
                                     "lease > 0")
        if not 0 < backoff[0] <= backoff[1]:
            raise ConfigurationError("backoff is (first, longest) pause in seconds, "
                                     "0 < first <= longest")
        self._store = store
        self._publisher = publisher
        self._batch = batch_size
        self._poll = poll_interval
        self._backoff = backoff
        self._stop = threading.Event()
        with translate_errors(), store.engine.execution_options(**WRITE).connect() as conn, \
                conn.begin():
            install_relays(conn)
        self._checkpoint = LeasedPosition(store.engine, RELAYS, name, lease=lease)
        self.active = False
        """Whether this relay held its name's lease at its last pass (`run`)."""
        self.published = 0
        """Messages this relay had confirmed by the broker (retries counted once each)."""
        self.retries = 0
        """Publishes that failed and were tried again."""
        self._retry_for: float | None = None

    @property
    def name(self) -> str:
        return self._checkpoint.name

    @property
    def position(self) -> int:
        """The checkpoint: the broker confirmed every event up to this position."""
        return self._checkpoint.position()

    def relay_pending(self, *, retry_for: float | None = None) -> int:
        """Publish everything up to the log's current head, once, and return how many events
        were published; `RelayError` if another relay of this name is active. A broker that
        stays unavailable for `retry_for` seconds (None: retry until stopped) ends it with
        `BrokerUnavailable`; the checkpoint keeps what was confirmed."""
        self._stop.clear()
        if not self._checkpoint.hold():
            raise RelayError(f"another relay named {self.name!r} is running (it holds the "
                             "lease); stop it, or wait for its lease to expire")
        self._retry_for = retry_for
        try:
            return self._pass()
        finally:
            self._retry_for = None
            self._checkpoint.release()

    def run(self, *, handle_signals: bool = False) -> None:
        """Publish events as they are committed, until `stop()` (from another thread; with
        `handle_signals`, in the main thread, SIGTERM or SIGINT). Waits its turn while another
        relay of this name is active. A stop ends after the batch in hand."""
        self._stop.clear()
        restore = stop_on_signals(self.stop) if handle_signals else None
        waiter = LogWaiter(self._store, self._poll)
        wait = _FIRST_WAIT
        try:
            while not self._stop.is_set():
                self.active = self._checkpoint.hold()
                if not self.active:
                    self._stop.wait(self._poll)
                    continue
                if self._pass():
                    wait = _FIRST_WAIT
                else:
                    waiter.wait(wait, self._stop)
                    wait = min(wait * 2, self._poll)
        finally:
            waiter.close()
            self._checkpoint.release()
            self.active = False
            if restore is not None:
                restore()

    def stop(self) -> None:
        """End `run` (or a retrying `relay_pending`) after the batch in hand; thread-safe."""
        self._stop.set()

    def _pass(self) -> int:
        """Publish from the checkpoint up to the head as it is now; the events published.
        Returns early when stopped or when the lease was lost."""
        head = self._store.head().position
        after = self._checkpoint.position()
        published = 0
        for page in self._store.stored_window(after=after, upto=head, size=self._batch):
            if not self._publish([to_message(row) for row in page]):
                break
            published += len(page)
            if not self._checkpoint.advance(page[-1].position, fenced=True):
                _log.warning("relay %s: another process took the lease over; this one waits",
                             self.name)
                self.active = False
                break
            if self._stop.is_set():
                break
        return published

    def _publish(self, messages: Sequence[Message]) -> bool:
        """Publish `messages`, retrying from the first unconfirmed one with backoff until the
        broker confirmed them all (True) or the relay was stopped or lost its lease (False)."""
        pending = messages
        pause = self._backoff[0]
        retry_for = self._retry_for
        give_up = None if retry_for is None else time.monotonic() + retry_for
        while True:
            try:
                self._publisher.publish(pending)
            except BrokerUnavailable as error:
                confirmed = max(0, min(error.confirmed, len(pending)))
                self.published += confirmed
                pending = pending[confirmed:]
                if retry_for is not None and confirmed:  # progress: the broker is back
                    give_up = time.monotonic() + retry_for
                elif give_up is not None and time.monotonic() >= give_up:
                    raise
                self.retries += 1
                _log.warning("relay %s: %s; %d message(s) to send again in %.1f s",
                             self.name, error, len(pending), pause)
                if self._stop.wait(pause * random.uniform(0.5, 1.0)):  # noqa: S311 (jitter)
                    return False
                pause = min(pause * 2, self._backoff[1])
                if not self._checkpoint.hold():
                    self.active = False
                    return False
                continue
            self.published += len(pending)
            return True
