"""`append(..., in_transaction=)`: the caller's own rows commit with the events, or neither
does (the hook that tracking rows, outboxes and sagas are built on), on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keyvault import MasterKey
from shredstore import (
    NO_STREAM,
    AppendResult,
    Event,
    EventStore,
    PersonalData,
    SubjectId,
    WrongExpectedVersion,
)

TRACKING = sa.Table(
    "app_tracking", sa.MetaData(),
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("stream_id", sa.Text, nullable=False),
)


class Joined(Event, type_name="test.unit_of_work.Joined"):
    member_id: SubjectId
    name: Annotated[str, PersonalData(subject="member_id")]


class Pinged(Event, type_name="test.unit_of_work.Pinged"):
    number: int


class Failed(Exception):
    """What the test's hook raises: it must reach the caller unchanged."""


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        with opened.engine.begin() as conn:
            TRACKING.create(conn)
        yield opened


def track(conn: Connection, result: AppendResult) -> None:
    conn.execute(TRACKING.insert(), [{"position": position, "stream_id": result.stream_id}
                                     for position in result.positions])


def tracked(store: EventStore) -> list[tuple[int, str]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            sa.select(TRACKING.c.position, TRACKING.c.stream_id).order_by(TRACKING.c.position))]


@pytest.mark.parametrize("events", [
    [Pinged(number=1), Pinged(number=2)],
    [Joined(member_id="m-1", name="Member One"), Pinged(number=3)],  # a new subject's key too
], ids=["plain", "personal"])
def test_the_callers_rows_commit_with_the_events(store: EventStore, events: list[Event]
                                                 ) -> None:
    """The hook sees the append's positions and its rows are there after the commit."""
    result = store.append("s", events, in_transaction=track)
    assert tracked(store) == [(position, "s") for position in result.positions]
    assert [r.position for r in store.read_stream("s")] == list(result.positions)


@pytest.mark.parametrize("events", [
    [Pinged(number=1)],
    [Joined(member_id="m-2", name="Member Two")],
], ids=["plain", "personal"])
def test_a_failing_hook_leaves_neither_events_nor_rows(store: EventStore,
                                                       events: list[Event]) -> None:
    """What the hook raises aborts the whole append and reaches the caller as it is."""
    def fail(conn: Connection, result: AppendResult) -> None:
        track(conn, result)
        raise Failed

    with pytest.raises(Failed):
        store.append("s", events, in_transaction=fail)
    assert tracked(store) == []
    assert list(store.read_stream("s")) == []
    assert store.stream_version("s") == 0
    assert store.append("s", events, in_transaction=track).positions == (1,)
    assert tracked(store) == [(1, "s")]


def test_no_hook_runs_for_an_append_that_writes_nothing(store: EventStore) -> None:
    """A version mismatch runs no hook; a retry of a committed append neither (its rows
    committed with the first run)."""
    calls: list[AppendResult] = []

    def count(conn: Connection, result: AppendResult) -> None:
        calls.append(result)
        track(conn, result)

    events = [Pinged(number=1)]
    store.append("s", events, expected_version=NO_STREAM, in_transaction=count)
    with pytest.raises(WrongExpectedVersion):
        store.append("s", [Pinged(number=2)], expected_version=NO_STREAM, in_transaction=count)
    again = store.append("s", events, expected_version=NO_STREAM, in_transaction=count)
    assert again.positions == (1,)
    assert len(calls) == 1
    assert tracked(store) == [(1, "s")]
