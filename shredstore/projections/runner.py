"""Running projections: checkpoints, exactly-once batches, live running, rebuilds.

Each projection has a row in ``shredstore_projections`` (its position, and its tables, which
the residue check scans). A batch of events is applied to a projection and its position moved
in one transaction of the read-model database, so a process that dies between events leaves
either the whole batch or none of it: on restart it resumes from its position and no event
takes effect twice. Moving the position is a compare-and-set, so two runners of the same
projection (say, after a deploy overlap) cannot both apply a batch.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from shredstore.errors import ConfigurationError, ProjectionError
from shredstore.events import RecordedEvent
from shredstore.projections.projection import Projection
from shredstore.projections.subscription import Batch, Subscription
from shredstore.storage.engine import WRITE, create_engine
from shredstore.storage.schema import CHECKPOINTS, install_checkpoints
from shredstore.system import SubjectErased

if TYPE_CHECKING:
    from shredstore.store import EventStore

# CHECKPOINTS: storage.schema's
__all__ = ["CHECKPOINTS", "ProjectionRunner", "read_models", "stop_on_signals"]

_log = logging.getLogger("shredstore.projections")



class ProjectionRunner:
    """Runs `projections` over `store`'s log, writing their tables and checkpoints to the
    read-model database (`engine`: a URL or Engine; default the store's own database).

    - `catch_up()` applies everything up to the current head and returns;
    - `run()` keeps going, live, until `stop()`; ``run(handle_signals=True)`` in a process's
      main thread stops on SIGTERM or SIGINT; `start()` runs it in a thread;
    - `rebuild(name)` drops a projection's tables and replays it from the start.

    A stop ends after the batch in hand is committed (or rolled back): nothing is half done.
    """

    def __init__(self, store: EventStore, projections: Sequence[Projection], *,
                 engine: str | URL | Engine | None = None, batch_size: int = 500,
                 poll_interval: float = 0.5) -> None:
        names = [projection.name for projection in projections]
        if not projections or any(not name for name in names) or len(set(names)) != len(names):
            raise ConfigurationError("projections need unique, non-empty names")
        for projection in projections:
            _check_forgets(projection)
        self._store = store
        self._owns_engine = engine is not None and not isinstance(engine, Engine)
        self._engine = store.engine if engine is None else create_engine(engine)
        self._projections = {projection.name: projection for projection in projections}
        self._batch_size = batch_size
        self._poll = poll_interval
        self._subscription: Subscription | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._positions = self._install()

    # --- running ------------------------------------------------------------------------------

    def catch_up(self, *, progress: Callable[[int, int], None] | None = None) -> int:
        """Apply every event up to the log's current head; the number of events applied."""
        self._stop.clear()
        return self._run(live=False, progress=progress)

    def run(self, *, handle_signals: bool = False) -> None:
        """Apply events as they are committed, until `stop()` (or, with `handle_signals`,
        SIGTERM/SIGINT). Raises `ProjectionError` if a handler fails."""
        self._stop.clear()
        restore = stop_on_signals(self.stop) if handle_signals else None
        try:
            self._run(live=True)
        finally:
            if restore is not None:
                restore()

    def start(self) -> threading.Thread:
        """`run()` in a daemon thread; `stop()` then `join()` to end it."""
        if self._thread is not None and self._thread.is_alive():
            raise ConfigurationError("this runner is already running")
        self._stop.clear()  # here, not in the thread: a stop() right after start() counts
        self._thread = threading.Thread(target=self._run_logged, name="shredstore-projections",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask a running runner to stop after its current batch (any thread, signal-safe)."""
        self._stop.set()
        subscription = self._subscription
        if subscription is not None:
            subscription.stop()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def positions(self) -> dict[str, int]:
        """Each projection's checkpoint, as stored."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(CHECKPOINTS.c.name, CHECKPOINTS.c.position)
                                .where(CHECKPOINTS.c.name.in_(self._projections)))
            return {name: int(position) for name, position in rows}

    def rebuild(self, name: str, *,
                progress: Callable[[int, int], None] | None = None) -> int:
        """Drop the projection's tables, re-create them, and replay it from the start;
        the number of events applied. Run it while no other runner runs this projection."""
        projection = self._projections.get(name)
        if projection is None:
            raise ConfigurationError(f"no projection named {name!r} in this runner")
        with self._write() as conn:
            for table in reversed(projection.tables):
                table.drop(conn, checkfirst=True)
            for table in projection.tables:
                table.create(conn, checkfirst=True)
            conn.execute(CHECKPOINTS.update().where(CHECKPOINTS.c.name == name)
                         .values(position=0, updated_at=datetime.now(UTC)))
        self._positions[name] = 0
        self._stop.clear()
        return self._run(live=False, progress=progress, only=name)

    def close(self) -> None:
        self.stop()
        if self._owns_engine:
            self._engine.dispose()

    # --- inside -------------------------------------------------------------------------------

    def _run_logged(self) -> None:
        try:
            self._run(live=True)
        except Exception:
            _log.exception("projection runner stopped by an error")
            raise

    def _run(self, *, live: bool, progress: Callable[[int, int], None] | None = None,
             only: str | None = None) -> int:
        names = [only] if only is not None else list(self._projections)
        start = min(self._positions[name] for name in names)
        head = self._store.head().position
        subscription = Subscription(self._store, after=start, batch_size=self._batch_size,
                                    live=live, poll_interval=self._poll)
        self._subscription = subscription
        if self._stop.is_set():  # stopped before the subscription existed
            subscription.stop()
        applied = 0
        try:
            for batch in subscription.batches():
                for name in names:
                    applied += self._apply(self._projections[name], batch)
                if progress is not None:
                    progress(batch.position, max(head, batch.position))
                if self._stop.is_set():
                    break
                if not live and batch.position >= head:
                    break
        finally:
            subscription.close()
            self._subscription = None
        return applied

    def _apply(self, projection: Projection, batch: Batch) -> int:
        """Apply the batch's new events to one projection and move its checkpoint, in one
        transaction; the number applied. A lost compare-and-set rolls it all back."""
        name, start = projection.name, self._positions[projection.name]
        if batch.position <= start:
            return 0
        wanted = projection.event_types
        events = [record for record in batch.events if record.position > start
                  and (record.event_type in wanted or isinstance(record.event, SubjectErased))]
        try:
            with self._write() as conn:
                # The checkpoint first: its row lock makes a concurrent runner of this
                # projection wait here, then find the position moved and apply nothing.
                moved = conn.execute(
                    CHECKPOINTS.update()
                    .where(CHECKPOINTS.c.name == name, CHECKPOINTS.c.position == start)
                    .values(position=batch.position, updated_at=datetime.now(UTC))).rowcount
                if moved != 1:
                    raise _LostCheckpoint
                for record in events:
                    _apply_one(projection, conn, record)
        except _LostCheckpoint:
            self._positions[name] = self._stored_position(name)
            _log.warning("projection %s was moved on by another runner; resuming from %d",
                         name, self._positions[name])
            return 0
        self._positions[name] = batch.position
        return len(events)

    def _stored_position(self, name: str) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(CHECKPOINTS.c.position)
                                    .where(CHECKPOINTS.c.name == name)).scalar_one())

    def _install(self) -> dict[str, int]:
        """Create the checkpoint table and the projections' tables; register each one."""
        now = datetime.now(UTC)
        with self._write() as conn:
            install_checkpoints(conn)
            for projection in self._projections.values():
                for table in projection.tables:
                    table.create(conn, checkfirst=True)
                tables = json.dumps(sorted(table.name for table in projection.tables))
                found = conn.execute(sa.select(CHECKPOINTS.c.tables)
                                     .where(CHECKPOINTS.c.name == projection.name)).first()
                if found is None:
                    conn.execute(CHECKPOINTS.insert().values(
                        name=projection.name, position=0, tables=tables, updated_at=now))
                elif found[0] != tables:
                    conn.execute(CHECKPOINTS.update()
                                 .where(CHECKPOINTS.c.name == projection.name)
                                 .values(tables=tables))
        return {name: self._stored_position(name) for name in self._projections}

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                yield conn

    def __enter__(self) -> ProjectionRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _LostCheckpoint(Exception):
    """Another runner moved the checkpoint first: this batch must not be applied."""


def _apply_one(projection: Projection, conn: Connection, record: RecordedEvent) -> None:
    try:
        if isinstance(record.event, SubjectErased):
            projection.forget(conn, record.event.subject_id)
        else:
            projection.handle(conn, record)
    except Exception as error:
        raise ProjectionError(
            f"projection {projection.name} failed on the event at position {record.position} "
            f"({record.event_type}): {type(error).__name__}; its batch was rolled back and "
            "its checkpoint did not move") from error


def _check_forgets(projection: Projection) -> None:
    """Refuse a projection that keeps personal columns and cannot forget a subject."""
    personal = projection.personal()
    if personal and not projection.forgets():
        shown = ", ".join(f"{column.table.name}.{column.name}" for column in personal)
        raise ProjectionError(
            f"projection {projection.name} keeps personal data ({shown}) but does not say how "
            "it forgets an erased subject: override forget() (delete_rows or redact_columns)")


def read_models(engine: Engine) -> dict[str, tuple[int, list[str]]]:
    """Every projection registered in a read-model database: (position, its tables)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(CHECKPOINTS.name):
            return {}
        rows = conn.execute(sa.select(CHECKPOINTS.c.name, CHECKPOINTS.c.position,
                                      CHECKPOINTS.c.tables))
        return {name: (int(position), list(json.loads(tables)))
                for name, position, tables in rows}


def stop_on_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Install SIGTERM/SIGINT handlers that call `stop`; return what restores the old ones."""
    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    old: dict[int, Any] = {}
    for number in (signal.SIGTERM, signal.SIGINT):
        old[number] = signal.signal(number, handler)

    def restore() -> None:
        for number, previous in old.items():
            signal.signal(number, previous)

    return restore
