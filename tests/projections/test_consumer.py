"""Idempotent consumers: every delivery of an event after the first is recognised and skipped.

The consumer's own effect is a row in `consumer_effects`, written by the handler through the
consumer's connection. That table has no unique constraint on purpose: only the consumer's
markers can keep a duplicate delivery from writing a second row.

The process test starts this module as a child (``python -m tests.projections.test_consumer
URL NAME WORKER``): it reads every event of the store, says it is ready, waits for ``go`` on
stdin, then delivers all of them to the consumer and prints how many it handled.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from shredstore import EventStore
from shredstore.causation import current_cause
from shredstore.errors import ConfigurationError, StorageError
from shredstore.events import RecordedEvent
from shredstore.projections.consumer import IdempotentConsumer
from shredstore.storage.engine import create_engine
from tests.processes import ROOT, Child, emit
from tests.shredding.events import Noted

WORKER = "tests.projections.test_consumer"
TIMEOUT = 60.0
"""The longest the process test waits for its children, in seconds."""

effects_metadata = sa.MetaData()
EFFECTS = sa.Table(
    "consumer_effects",
    effects_metadata,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("consumer", sa.Text(), nullable=False),
    sa.Column("event_id", sa.Uuid(), nullable=False),
)


class HandlerFailed(Exception):
    """What the failing handler raises."""


def record_effect(conn: Connection, record: RecordedEvent, *, consumer: str = "c") -> None:
    """The consumer's own write: one row per call, in the consumer's transaction."""
    conn.execute(EFFECTS.insert().values(consumer=consumer, event_id=record.event_id))


def effect_then_fail(conn: Connection, record: RecordedEvent) -> None:
    """Writes its effect, then fails: the effect must not survive."""
    record_effect(conn, record)
    raise HandlerFailed("the handler failed after writing")


def effects(engine: Engine, consumer: str | None = None) -> list[uuid.UUID]:
    """The event ids of the stored effects (of one consumer), one entry per row."""
    query = sa.select(EFFECTS.c.event_id).order_by(EFFECTS.c.id)
    if consumer is not None:
        query = query.where(EFFECTS.c.consumer == consumer)
    with engine.connect() as conn:
        return list(conn.scalars(query))


def recorded_notes(url: str, count: int) -> list[RecordedEvent]:
    """`count` events appended to a store at `url`, as read back from the log."""
    with EventStore(url) as store:
        store.append("notes", [Noted(text=f"note {n}") for n in range(count)])
        return list(store.read_all())


@pytest.fixture
def engine(any_url: str) -> Iterator[Engine]:
    """An engine on the test's database, with the consumer's own table created."""
    engine = create_engine(any_url)
    effects_metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_a_redelivered_event_takes_effect_once(any_url: str, engine: Engine) -> None:
    """Delivering the same event three times runs the handler once: one effect row, and
    `handle` answers True, then False, False."""
    first, second = recorded_notes(any_url, 2)
    with IdempotentConsumer(any_url, "c") as consumer:
        assert [consumer.handle(first, record_effect) for _ in range(3)] == [True, False, False]
        assert consumer.is_processed(first.event_id)
        assert not consumer.is_processed(second.event_id)
        assert consumer.handle(second, record_effect)
        assert not consumer.handle(first, record_effect)
    assert effects(engine) == [first.event_id, second.event_id]


def test_the_handler_runs_caused_by_the_handled_event(any_url: str, engine: Engine) -> None:
    """The handler runs inside `caused_by(record)`: an event it appends (to another store;
    on SQLite not to this database, which the consumer's transaction holds) carries the
    record's correlation id (its id: the record starts the correlation) and its id as the
    cause."""
    (first,) = recorded_notes(any_url, 1)
    seen: list[dict[str, str] | None] = []
    with IdempotentConsumer(any_url, "c") as consumer:
        assert consumer.handle(first, lambda conn, record: seen.append(current_cause()))
    assert seen == [{"correlation_id": str(first.event_id),
                     "causation_id": str(first.event_id)}]
    assert current_cause() is None


def test_a_failing_handler_leaves_no_marker_and_no_effect(any_url: str, engine: Engine) -> None:
    """A handler that raises after writing keeps neither its write nor the marker, and the
    error reaches the caller unchanged; the next delivery takes effect, once."""
    (record,) = recorded_notes(any_url, 1)
    with IdempotentConsumer(any_url, "c") as consumer:
        with pytest.raises(HandlerFailed, match="failed after writing"):
            consumer.handle(record, effect_then_fail)
        assert not consumer.is_processed(record.event_id)
        assert effects(engine) == []
        assert consumer.handle(record, record_effect)
        assert not consumer.handle(record, record_effect)
        assert not consumer.handle(record, effect_then_fail)  # processed: not called at all
    assert effects(engine) == [record.event_id]


def test_a_caught_database_error_is_not_reported_as_processed_on_postgres(
    postgres_url: str
) -> None:
    """On PostgreSQL a failed statement aborts the transaction and COMMIT then rolls back
    silently: a handler that caught such an error gets a StorageError, not True."""
    (record,) = recorded_notes(postgres_url, 1)

    def swallowing(conn: Connection, record: RecordedEvent) -> None:
        with contextlib.suppress(sa.exc.DBAPIError):
            conn.exec_driver_sql("SELECT 1 / 0")

    with IdempotentConsumer(postgres_url, "c") as consumer:
        with pytest.raises(StorageError, match="aborted the transaction"):
            consumer.handle(record, swallowing)
        assert not consumer.is_processed(record.event_id)
        assert consumer.handle(record, lambda conn, r: None)


def test_consumers_with_different_names_each_process_an_event_once(
    any_url: str, engine: Engine
) -> None:
    """Markers belong to a consumer name: two consumers of one event both take effect once."""
    (record,) = recorded_notes(any_url, 1)
    with (IdempotentConsumer(any_url, "email") as email,
          IdempotentConsumer(any_url, "ledger") as ledger):
        for _ in range(2):
            email.handle(record, lambda conn, r: record_effect(conn, r, consumer="email"))
            ledger.handle(record, lambda conn, r: record_effect(conn, r, consumer="ledger"))
    assert effects(engine, "email") == [record.event_id]
    assert effects(engine, "ledger") == [record.event_id]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=12))
def test_any_sequence_of_deliveries_has_one_effect_per_succeeded_event(
    any_url: str, engine: Engine, deliveries: list[tuple[int, bool]]
) -> None:
    """For any order of deliveries, some failing: the handler runs until its first success
    per event and never after, so each event that ever succeeded has exactly one effect."""
    with EventStore(any_url) as store:
        records = list(store.read_all())
        if not records:
            store.append("notes", [Noted(text=f"note {n}") for n in range(4)])
            records = list(store.read_all())
    name = f"c-{uuid.uuid4().hex}"  # a fresh consumer per example: no markers yet
    done: set[int] = set()
    with IdempotentConsumer(engine, name) as consumer:
        for index, fails in deliveries:
            def handler(conn: Connection, record: RecordedEvent, fails: bool = fails) -> None:
                record_effect(conn, record, consumer=name)
                if fails:
                    raise HandlerFailed("fails on purpose")
            if index in done:
                assert consumer.handle(records[index], handler) is False
            elif fails:
                with pytest.raises(HandlerFailed):
                    consumer.handle(records[index], handler)
            else:
                assert consumer.handle(records[index], handler) is True
                done.add(index)
    assert sorted(map(str, effects(engine, name))) == sorted(
        str(records[index].event_id) for index in done)


def test_forget_before_prunes_only_older_markers_of_this_consumer(
    any_url: str, engine: Engine
) -> None:
    """Pruning removes this consumer's markers processed before the moment and no others;
    an event whose marker was pruned is handled again."""
    (record,) = recorded_notes(any_url, 1)
    with (IdempotentConsumer(any_url, "c") as consumer,
          IdempotentConsumer(any_url, "other") as other):
        consumer.handle(record, record_effect)
        other.handle(record, lambda conn, r: record_effect(conn, r, consumer="other"))
        # Moments in zones east and west of UTC: compared as they are written, without
        # conversion to UTC, the first would prune and the second would not.
        east, west = timezone(timedelta(hours=5)), timezone(timedelta(hours=-5))
        assert consumer.forget_before(datetime.now(east) - timedelta(hours=1)) == 0
        assert consumer.is_processed(record.event_id)
        assert consumer.forget_before(datetime.now(west) + timedelta(minutes=1)) == 1
        assert not consumer.is_processed(record.event_id)
        assert other.is_processed(record.event_id)
        assert consumer.handle(record, record_effect)
        with pytest.raises(ConfigurationError, match="aware"):
            consumer.forget_before(datetime.now())  # naive on purpose
    assert effects(engine, "c") == [record.event_id, record.event_id]


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_a_consumer_needs_a_name(sqlite_url: str, name: object) -> None:
    """A consumer without a usable name is refused before it touches the database."""
    with pytest.raises(ConfigurationError, match="consumer name"):
        IdempotentConsumer(sqlite_url, name)  # type: ignore[arg-type]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_create_false_refuses_a_database_without_the_table(any_url: str) -> None:
    """``create=False`` names the missing table instead of creating it; once created by a
    consumer opened with the default, it opens."""
    with pytest.raises(ConfigurationError, match="shredstore_processed"):
        IdempotentConsumer(any_url, "c", create=False)
    IdempotentConsumer(any_url, "c").close()
    IdempotentConsumer(any_url, "c", create=False).close()


def test_a_shared_engine_is_used_and_left_open(any_url: str, engine: Engine) -> None:
    """An engine passed in is the one used, and `close()` does not dispose of it."""
    (record,) = recorded_notes(any_url, 1)
    consumer = IdempotentConsumer(engine, "c")
    assert consumer.handle(record, record_effect)
    pool = engine.pool
    consumer.close()
    consumer.close()
    assert engine.pool is pool  # dispose() would have replaced the pool
    with pytest.raises(ConfigurationError, match="closed"):
        consumer.handle(record, record_effect)
    assert effects(engine) == [record.event_id]


@pytest.mark.processes
def test_processes_delivering_the_same_events_at_once_take_effect_once_each(
    any_url: str, engine: Engine
) -> None:
    """Four processes deliver the same 200 events at the same moment, in different orders
    (two of them in the same order, racing on every event): each event has one effect."""
    processes, count = 4, 200
    records = recorded_notes(any_url, count)
    IdempotentConsumer(any_url, "racer").close()  # the table exists before the race
    deadline = time.monotonic() + TIMEOUT
    children = [Child(WORKER, any_url, "racer", str(n), name=f"worker{n}")
                for n in range(processes)]
    try:
        for child in children:
            assert child.message(deadline).get("ready") is True, child.describe()
        for child in children:
            child.send("go")
        answers = [child.message(deadline) for child in children]
        for child in children:
            child.wait_exit(deadline)
    finally:
        for child in children:
            child.kill()
    assert [answer["delivered"] for answer in answers] == [count] * processes, answers
    assert sum(answer["handled"] for answer in answers) == count, answers
    stored = effects(engine, "racer")
    assert len(stored) == count
    assert set(stored) == {record.event_id for record in records}


def test_the_code_in_the_consumers_page_runs(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Python block of docs/consumers.md runs, in order, in one namespace."""
    text = (ROOT / "docs" / "consumers.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the page shows Python code"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs.consumers"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"consumers.md block {number}", "exec", dont_inherit=True)
        exec(code, namespace)  # noqa: S102


# The child's side of the process test


def _in_order_of(worker: int, records: list[RecordedEvent]) -> list[RecordedEvent]:
    """Workers 0 and 1 deliver in log order, 2 backwards, 3 from the middle on."""
    if worker == 2:
        return records[::-1]
    if worker == 3:
        middle = len(records) // 2
        return records[middle:] + records[:middle]
    return records


def _child(argv: Sequence[str]) -> int:
    url, name, worker = argv
    with EventStore(url, create=False) as store:
        records = _in_order_of(int(worker), list(store.read_all()))
    with IdempotentConsumer(url, name, create=False) as consumer:
        emit({"ready": True})
        if sys.stdin.readline().strip() != "go":
            print("expected 'go'", file=sys.stderr)
            return 3
        handled = sum(consumer.handle(
            record, lambda conn, r: record_effect(conn, r, consumer=name))
            for record in records)
    emit({"handled": handled, "delivered": len(records)})
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
