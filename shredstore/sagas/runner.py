"""Running sagas over the log: each event handled once per saga, its step committed whole.

`SagaRunner.handle(record)` takes one event through every saga with a handler for its type;
`catch_up()` feeds it the log from the runner's stored position, `fire_due()` fires the
deadlines that fell due, and `run()` does both until stopped. Each step is one transaction:
the saga's step event (expected version: the one loaded), what the handler emitted, the
event's marker in the idempotent consumers' table under the consumer name ``saga:{name}``
(for a deadline: the deadline's id), and the saga's deadlines as the step left them. A
redelivered event (or a deadline fired twice) finds its marker and has no second effect; two
runners stepping one saga at once conflict on its version, and the loser loads the saga again
and retries. The runner's position is stored after each batch: a crash makes it see some
events again, which their markers make harmless.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shredstore.causation import caused_by
from shredstore.errors import (
    ConfigurationError,
    SagaError,
    WrongExpectedVersion,
)
from shredstore.events import RecordedEvent, new_event_id
from shredstore.expected import ANY, NO_STREAM, ExpectedVersion
from shredstore.personal import REDACTED
from shredstore.projections.lease import LeasedPosition, insert_for
from shredstore.projections.runner import stop_on_signals
from shredstore.projections.subscription import Subscription
from shredstore.sagas.process import (
    Deadline,
    Handler,
    Saga,
    SagaOperation,
    SagaStatus,
    SagaStep,
    Step,
)
from shredstore.storage.engine import WRITE, translate_errors
from shredstore.storage.log import AppendResult
from shredstore.storage.schema import (
    PROCESSED,
    SAGA_DEADLINES,
    SAGA_RUNNERS,
    install_saga_runners,
)

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["SagaRunner", "SagaView"]

_log = logging.getLogger("shredstore.sagas")
_DONE = {"resume": "resumed", "cancel": "cancelled"}
_ATTEMPTS = 10
"""How often a step is tried again when another runner stepped the same saga first."""


class _AlreadyHandled(Exception):
    """The event's marker was stored meanwhile: the step is rolled back, not an error."""


S = TypeVar("S", bound=Saga)


class SagaView(Generic[S]):
    """A saga as loaded: its state, status and reason, the version of its stream, and its
    last step as recorded (its metadata carries the saga's correlation id)."""

    __slots__ = ("last_step", "reason", "state", "status", "version")

    def __init__(self, state: S, status: SagaStatus, reason: str, version: int,
                 last_step: RecordedEvent) -> None:
        self.state = state
        self.status = status
        self.reason = reason
        self.version = version
        self.last_step = last_step

    def __repr__(self) -> str:
        return (f"SagaView({type(self.state).__name__} {self.state.id!r}, {self.status}, "
                f"version {self.version})")


class SagaRunner:
    """Runs `sagas` over `store`'s log (see the module). `name` keeps apart the positions
    of runners that run different sets of sagas. With ``partition=(index, count)`` the runner
    takes only the sagas whose id hashes to `index` of `count` (its own position and lease):
    `count` runners, one per index, divide the work."""

    def __init__(self, store: EventStore, sagas: Sequence[type[Saga]], *,
                 name: str = "sagas", batch_size: int = 100,
                 poll_interval: float = 0.5, lease: timedelta = timedelta(seconds=10),
                 partition: tuple[int, int] = (0, 1)) -> None:
        names = [saga.__saga_name__ for saga in sagas]
        if not sagas or len(set(names)) != len(names):
            raise ConfigurationError("a saga runner needs sagas with distinct names")
        if not name or batch_size < 1 or poll_interval <= 0 or lease.total_seconds() <= 0:
            raise ConfigurationError(
                "a runner needs a name, batch_size >= 1, poll_interval > 0 and a lease > 0")
        index, count = partition
        if not 0 <= index < count:
            raise ConfigurationError("partition is (index, count) with 0 <= index < count")
        self._partition = partition
        self._store = store
        self._name = name if count == 1 else f"{name}#{index}of{count}"
        self._position = LeasedPosition(store.engine, SAGA_RUNNERS, self._name, lease=lease)
        self.active = False
        """Whether this runner held its name's lease at its last pass (`run`)."""
        self._batch_size = batch_size
        self._poll = poll_interval
        self._by_type: dict[str, list[tuple[type[Saga], Handler]]] = {}
        self._sagas = {saga.__saga_name__: saga for saga in sagas}
        for saga in sagas:
            if store.registry.find(saga.__step_class__.__event_type__) is None:
                store.registry.register(saga.__step_class__)
            for event_type, handlers in saga.__handlers__.items():
                self._by_type.setdefault(event_type, []).extend(
                    (saga, handler) for handler in handlers)
        self._stop = threading.Event()
        self._subscription: Subscription | None = None
        self._writer = store.engine.execution_options(**WRITE)
        with self._write() as conn:
            install_saga_runners(conn)

    # --- handling -------------------------------------------------------------------------

    def handle(self, record: RecordedEvent) -> int:
        """Take `record` through every saga that handles its type (or apply an operator's
        `SagaOperation` for one of this runner's sagas); the steps taken."""
        if isinstance(record.event, SagaOperation):
            return self._apply_operation(record, record.event)
        return sum(self._step(saga, handler, record)
                   for saga, handler in self._by_type.get(record.event_type, ()))

    def _apply_operation(self, record: RecordedEvent, operation: SagaOperation) -> int:
        saga = self._sagas.get(operation.saga)
        if saga is None or not self._mine(saga, operation.saga_id):
            return 0  # another runner's saga
        try:
            self._operate(saga, operation.saga_id, operation.action, marker=record.event_id)
        except SagaError as refused:
            _log.warning("operator's %s of saga %s %r not applied: %s", operation.action,
                         operation.saga, operation.saga_id, refused)
            self._operate_refused(saga, record)
            return 0
        except _AlreadyHandled:
            return 0
        return 1

    def load(self, saga: type[S], saga_id: str) -> SagaView[S] | None:
        """The saga `saga_id` as its last step left it; None if it never started."""
        last = next(self._store.read_stream(saga.stream_of(saga_id), backwards=True,
                                            limit=1), None)
        if last is None:
            return None
        step = last.event
        if not isinstance(step, SagaStep):
            raise SagaError(f"stream {saga.stream_of(saga_id)!r} does not hold saga steps")
        return SagaView(getattr(step, "state"), step.status, step.reason,  # noqa: B009
                        last.version, last)

    def _step(self, saga: type[Saga], handler: Handler, record: RecordedEvent) -> bool:
        saga_id = _saga_id(saga, handler, record)
        if saga_id is None or not self._mine(saga, saga_id):
            return False
        consumer = f"saga:{saga.__saga_name__}"
        for _ in range(_ATTEMPTS):
            if self._handled(consumer, record):
                return False
            loaded = self.load(saga, saga_id)
            if (loaded.status != "running" if loaded is not None else not handler.start):
                return False  # ended, or never started and this event does not start it
            try:
                self._commit(saga, handler, record, consumer=consumer,
                             state=(saga(id=saga_id) if loaded is None
                                    else loaded.state.model_copy(deep=True)),
                             version=NO_STREAM if loaded is None else loaded.version)
            except WrongExpectedVersion as conflict:
                if conflict.stream_id != saga.stream_of(saga_id):
                    raise
                continue  # another runner stepped this saga first: load it again
            except _AlreadyHandled:
                return False
            return True
        raise SagaError(f"saga {saga.__saga_name__} {saga_id!r}: another runner kept stepping "
                        f"it first; {_ATTEMPTS} attempts made")

    def _commit(self, saga: type[Saga], handler: Handler, record: RecordedEvent, *,
                consumer: str, state: Saga, version: int | ExpectedVersion) -> None:
        """Run the handler on `state` and commit its step (see the module)."""
        step = Step()
        with caused_by(record):
            handler.method(state, record.event, step)
            self._save_step(saga, state, step, version=version, marker=_Marker(
                consumer, record.event_id, record.position, record.event_type))

    def _save_step(self, saga: type[Saga], state: Saga, step: Step, *,
                   version: int | ExpectedVersion, marker: _Marker,
                   fired: UUID | None = None) -> None:
        """The step event, what the step emitted and its bookkeeping, in one transaction."""
        stream = saga.stream_of(state.id)
        if stream in step.emitted:
            raise ConfigurationError(
                f"saga {saga.__saga_name__}: a handler cannot emit to its own stream")
        entry = saga.__step_class__(handled_event_id=marker.event_id,
                                    handled_type=marker.kind, status=step.status,
                                    reason=step.reason, state=state)
        streams: dict[str, Any] = {stream: ([entry], version)}
        streams.update((target, (events, ANY)) for target, events in step.emitted.items())
        self._store.append_many(streams, in_transaction=_Bookkeeping(
            saga.__saga_name__, state.id, step, marker, fired))

    # --- operators --------------------------------------------------------------------------

    def resume(self, saga: type[S], saga_id: str) -> SagaView[S]:
        """Run a failed saga again: its `resumed` hook sends again what it was waiting for
        (an orchestration: the compensation that kept failing). `SagaError` unless failed."""
        return self._operate(saga, saga_id, "resume", marker=new_event_id())

    def cancel(self, saga: type[S], saga_id: str) -> SagaView[S]:
        """End a running or failed saga as ``cancelled``: later events and its deadlines are
        ignored (nothing is compensated: cancel is the operator's decision to stop)."""
        return self._operate(saga, saga_id, "cancel", marker=new_event_id())

    def _operate_refused(self, saga: type[Saga], record: RecordedEvent) -> None:
        """Mark a refused operator's request handled, so that it is not tried again."""
        with self._write() as conn:
            _mark(conn, _Marker(f"saga:{saga.__saga_name__}", record.event_id,
                                record.position, "operator:refused"))

    def _operate(self, saga: type[S], saga_id: str, action: str, *,
                 marker: UUID) -> SagaView[S]:
        for _ in range(_ATTEMPTS):
            loaded = self.load(saga, saga_id)
            allowed = ("failed",) if action == "resume" else ("running", "failed")
            if loaded is None or loaded.status not in allowed:
                now = "not started" if loaded is None else loaded.status
                raise SagaError(f"saga {saga.__saga_name__} {saga_id!r} is {now}: only a "
                                f"{' or '.join(allowed)} saga can be {_DONE[action]}")
            state = loaded.state.model_copy(deep=True)
            step = Step()
            try:
                with caused_by(loaded.last_step):
                    if action == "resume":
                        state.resumed(step)
                    else:
                        step.status, step.reason = "cancelled", "cancelled by an operator"
                    self._save_step(saga, state, step, version=loaded.version, marker=_Marker(
                        f"saga:{saga.__saga_name__}", marker, 0, f"operator:{action}"))
            except WrongExpectedVersion:
                continue
            view = self.load(saga, saga_id)
            assert view is not None  # noqa: S101 - it was just stored
            return view
        raise SagaError(f"saga {saga.__saga_name__} {saga_id!r}: another runner kept stepping "
                        f"it first; {_ATTEMPTS} attempts made")

    # --- deadlines --------------------------------------------------------------------------

    def fire_due(self, *, now: datetime | None = None, limit: int = 100) -> int:
        """Fire the deadlines of this runner's sagas that are due by `now` (default: now),
        each once, across runners and restarts; the number fired."""
        now = now if now is not None else datetime.now(UTC)
        with translate_errors(), self._store.engine.connect() as conn:
            due = conn.execute(sa.select(SAGA_DEADLINES).where(
                SAGA_DEADLINES.c.due_at <= now,
                SAGA_DEADLINES.c.saga.in_(list(self._sagas)))
                .order_by(SAGA_DEADLINES.c.due_at)
                .limit(limit * self._partition[1])).all()  # the partition's share of them
        return sum(self._fire(self._sagas[row.saga], Deadline(
            row.id, row.name, row.saga_id, _aware(row.due_at))) for row in due
            if self._mine(self._sagas[row.saga], row.saga_id))

    def _mine(self, saga: type[Saga], saga_id: str) -> bool:
        """Whether the saga `saga_id` is in this runner's partition."""
        index, count = self._partition
        if count == 1:
            return True
        digest = hashlib.blake2b(f"{saga.__saga_name__}\0{saga_id}".encode(),
                                 digest_size=8).digest()
        return int.from_bytes(digest, "big") % count == index

    def deadlines(self, saga: type[Saga], saga_id: str) -> dict[str, datetime]:
        """The pending deadlines of the saga `saga_id`, by name."""
        with translate_errors(), self._store.engine.connect() as conn:
            rows = conn.execute(sa.select(SAGA_DEADLINES.c.name, SAGA_DEADLINES.c.due_at).where(
                SAGA_DEADLINES.c.saga == saga.__saga_name__,
                SAGA_DEADLINES.c.saga_id == saga_id)).all()
        return {name: _aware(due_at) for name, due_at in rows}

    def _fire(self, saga: type[Saga], deadline: Deadline) -> bool:
        handler = saga.__deadlines__.get(deadline.name)
        marker = _Marker(f"saga:{saga.__saga_name__}", deadline.id, 0,
                         f"deadline:{deadline.name}")
        for _ in range(_ATTEMPTS):
            loaded = self.load(saga, deadline.saga_id)
            if loaded is None or loaded.status != "running" or handler is None:
                if handler is None:
                    _log.warning("saga %s has no handler of deadline %r: dropped",
                                 saga.__saga_name__, deadline.name)
                return self._drop(deadline)
            state = loaded.state.model_copy(deep=True)
            step = Step()
            try:
                # What it emits continues the saga's correlation, caused by its last step.
                with caused_by(loaded.last_step):
                    handler(state, deadline, step)
                    self._save_step(saga, state, step, version=loaded.version, marker=marker,
                                    fired=deadline.id)
            except WrongExpectedVersion as conflict:
                if conflict.stream_id != saga.stream_of(deadline.saga_id):
                    raise
                continue
            except _AlreadyHandled:
                return False
            return True
        raise SagaError(f"saga {saga.__saga_name__} {deadline.saga_id!r}: another runner kept "
                        f"stepping it first; {_ATTEMPTS} attempts made")

    def _drop(self, deadline: Deadline) -> bool:
        with self._write() as conn:
            conn.execute(SAGA_DEADLINES.delete().where(SAGA_DEADLINES.c.id == deadline.id))
        return False

    def _handled(self, consumer: str, record: RecordedEvent) -> bool:
        with translate_errors(), self._store.engine.connect() as conn:
            return conn.execute(sa.select(PROCESSED.c.position).where(
                PROCESSED.c.consumer == consumer,
                PROCESSED.c.event_id == record.event_id)).first() is not None

    # --- running ----------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Every event up to here has been taken through the runner's sagas."""
        return self._position.position()

    def catch_up(self) -> int:
        """Handle every event up to the log's current head; the steps taken."""
        self._stop.clear()
        return self._pass()

    def run(self, *, handle_signals: bool = False) -> None:
        """Handle events as they come and fire deadlines as they fall due, until `stop()`
        (from another thread; with `handle_signals`, in the main thread, SIGTERM or SIGINT):
        a pass over the new events and the due deadlines, then a pause of `poll_interval`.
        A stop ends after the step in hand: nothing is half done.

        Runners of one name take turns: each pass needs the name's lease, which the runner
        holding it renews, and releases when it stops; the others wait, and one takes over
        once a holder that died lets it expire (`lease`). `catch_up` needs no lease."""
        self._stop.clear()
        restore = stop_on_signals(self.stop) if handle_signals else None
        try:
            while not self._stop.is_set():
                self.active = self._position.hold()
                if self.active:
                    self._pass()
                    if not self._stop.is_set():
                        self.fire_due()
                self._stop.wait(self._poll)
        finally:
            self._position.release()
            self.active = False
            if restore is not None:
                restore()

    def stop(self) -> None:
        """End `run` after the event in hand (from any thread)."""
        self._stop.set()
        if self._subscription is not None:
            self._subscription.stop()

    def _pass(self) -> int:
        """Every event from the stored position up to the log's head, in batches, the
        position stored after each; the steps taken."""
        head = self._store.head().position
        subscription = Subscription(self._store, after=self.position,
                                    types=[*self._by_type, SagaOperation],
                                    batch_size=self._batch_size, live=False,
                                    poll_interval=self._poll)
        self._subscription = subscription
        taken = 0
        try:
            for batch in subscription.batches():
                for record in batch.events:
                    taken += self.handle(record)
                    if self._stop.is_set():
                        return taken  # the position stays: the rest comes again
                self._position.advance(batch.position)
                if self._stop.is_set() or batch.position >= head:
                    break
        finally:
            subscription.close()
            self._subscription = None
        return taken

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with translate_errors(), self._writer.connect() as conn, conn.begin():
            yield conn


def _saga_id(saga: type[Saga], handler: Handler, record: RecordedEvent) -> str | None:
    """The id of the saga `record` belongs to; None (and a warning) where it has none."""
    event = record.event
    if not isinstance(event, handler.event_type):
        return None  # an older schema the class no longer reads, or an unknown type
    saga_id = handler.correlate(event)
    if saga_id is REDACTED or not isinstance(saga_id, str | int) or saga_id == "":
        _log.warning("saga %s: event at position %d has no usable correlation id; ignored",
                     saga.__saga_name__, record.position)
        return None
    return str(saga_id)


class _Marker(NamedTuple):
    """What a step handled: its marker's consumer and id, its log position (0 for a deadline)
    and its kind (the event's type, or ``deadline:{name}``)."""

    consumer: str
    event_id: UUID
    position: int
    kind: str


@dataclass(frozen=True, slots=True)
class _Bookkeeping:
    """A step's own rows, written by `__call__` in its transaction (`in_transaction`)."""

    saga: str
    saga_id: str
    step: Step
    marker: _Marker
    fired: UUID | None

    def __call__(self, conn: Connection, _results: dict[str, AppendResult]) -> None:
        """The handled event's marker (`_AlreadyHandled` if another runner stored it first:
        the step then rolls back), the fired deadline removed, the deadlines the step set or
        cancelled, and all of the saga's deadlines once it ended."""
        step = self.step
        if not _mark(conn, self.marker):
            raise _AlreadyHandled
        this = (SAGA_DEADLINES.c.saga == self.saga, SAGA_DEADLINES.c.saga_id == self.saga_id)
        if self.fired is not None and conn.execute(SAGA_DEADLINES.delete().where(
                SAGA_DEADLINES.c.id == self.fired).returning(SAGA_DEADLINES.c.id)
                ).first() is None:
            raise _AlreadyHandled  # fired (or cancelled) meanwhile
        if step.status != "running":
            conn.execute(SAGA_DEADLINES.delete().where(*this))
            return
        names = {*step.cancelled, *step.scheduled}
        if names:
            conn.execute(SAGA_DEADLINES.delete().where(*this,
                                                       SAGA_DEADLINES.c.name.in_(names)))
        if step.scheduled:
            conn.execute(SAGA_DEADLINES.insert(), [
                {"id": new_event_id(), "saga": self.saga, "saga_id": self.saga_id,
                 "name": name, "due_at": due_at} for name, due_at in step.scheduled.items()])


def _mark(conn: Connection, marker: _Marker) -> bool:
    """Store the handled event's marker; False if it was there already (stored by another
    runner: the caller's step must roll back)."""
    return conn.execute(insert_for(conn)(PROCESSED).values(
        consumer=marker.consumer, event_id=marker.event_id, position=marker.position,
        processed_at=datetime.now(UTC)).on_conflict_do_nothing()
        .returning(PROCESSED.c.position)).first() is not None  # (rowcount: -1 on psycopg)


def _aware(moment: datetime) -> datetime:
    """A stored time as UTC (SQLite hands it back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
