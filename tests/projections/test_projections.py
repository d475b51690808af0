"""Subscriptions and projections in one process, on both backends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import EventStore, ProjectionError
from shredstore.projections import Projection, ProjectionRunner, Subscription, handles
from shredstore.system import SubjectErased
from tests.projections.directory import (
    CustomerDirectory,
    RedactingDirectory,
    directory,
    redacted_directory,
    rows,
)
from tests.shredding.events import ERASED_EMAIL, CustomerRegistered, Noted, PaymentSent


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        yield opened


def register(store: EventStore, *numbers: int) -> None:
    for n in numbers:
        store.append(f"customer-c{n}", [CustomerRegistered(
            customer_id=f"c{n}", name=f"Name {n}", email=f"c{n}@example.org",
            credit_limit=n)])


def test_a_subscription_reads_everything_in_order_then_stops_when_not_live(
        store: EventStore) -> None:
    register(store, *range(1, 8))
    store.append("notes", [Noted(text="plain")])
    positions = [record.position for record in Subscription(store, live=False, batch_size=3)]
    assert positions == list(range(1, 9))
    after_five = Subscription(store, after=5, live=False)
    assert [record.position for record in after_five] == [6, 7, 8]


def test_filters_by_type_and_stream_prefix_and_still_move_past_what_they_leave_out(
        store: EventStore) -> None:
    register(store, 1, 2)
    store.append("notes", [Noted(text="one"), Noted(text="two")])
    store.append("customer_x", [Noted(text="an underscore is not a wildcard")])
    typed = Subscription(store, types=[Noted], live=False)
    assert [record.position for record in typed] == [3, 4, 5]
    prefixed = Subscription(store, stream_prefix="customer-", live=False)
    batches = list(prefixed.batches())
    assert [r.stream_id for b in batches for r in b.events] == ["customer-c1", "customer-c2"]
    assert batches[-1].position == 5  # the notes were read past, not re-read next time
    assert prefixed.position == 5


def test_catch_up_applies_each_event_once_and_resumes_from_its_checkpoint(
        store: EventStore) -> None:
    register(store, 1, 2)
    with ProjectionRunner(store, [CustomerDirectory()], batch_size=2) as runner:
        assert runner.catch_up() == 2
        store.append("payments", [PaymentSent(payer_id="c1", payee_id="c2", payer_iban="X1",
                                              payee_name="Name 2", amount_cents=5)])
        assert runner.catch_up() == 1
        assert runner.catch_up() == 0
        assert runner.positions() == {"test-directory": 3}
    with ProjectionRunner(store, [CustomerDirectory()]) as again:  # a restart
        assert again.catch_up() == 0
    table = rows(store._engine, directory)
    assert [(r["customer_id"], r["payments"]) for r in table] == [("c1", 1), ("c2", 0)]


def test_erasure_reaches_every_projection_and_a_rebuild_stays_redacted(
        store: EventStore) -> None:
    register(store, 1, 2)
    with ProjectionRunner(store, [CustomerDirectory(), RedactingDirectory()]) as runner:
        runner.catch_up()
        store.erase_subject("c2", request_id="REQ-1")
        runner.catch_up()
        assert [r["customer_id"] for r in rows(store._engine, directory)] == ["c1"]
        redacted = rows(store._engine, redacted_directory)
        assert [(r["customer_id"], r["name"], r["email"]) for r in redacted] == [
            ("c1", "Name 1", "c1@example.org"), ("c2", "(erased)", None)]
        progress: list[tuple[int, int]] = []
        replayed = runner.rebuild("test-redacting-directory",
                                  progress=lambda done, total: progress.append((done, total)))
        assert replayed == 3  # 2 registrations, 1 erasure
        head = store.head().position
        assert progress[-1] == (head, head)
        rebuilt = rows(store._engine, redacted_directory)
        assert [(r["name"], r["email"]) for r in rebuilt] == [
            ("Name 1", "c1@example.org"), ("(erased)", None)]


def test_a_rebuild_after_erasure_writes_redacted_values_by_construction(
        store: EventStore) -> None:
    """Without its forget step, a replay still holds nothing of the erased subject."""

    class Replay(RedactingDirectory):
        name = "test-replay"

        def forget(self, conn: sa.Connection, subject_id: str) -> None:
            pass  # the replay alone must already be redacted

    register(store, 1)
    store.erase_subject("c1")
    with ProjectionRunner(store, [Replay()]) as runner:
        runner.catch_up()
    (row,) = rows(store._engine, redacted_directory)
    assert (row["name"], row["email"]) == ("[redacted]", ERASED_EMAIL)


def test_a_projection_that_keeps_personal_data_but_cannot_forget_is_refused(
        store: EventStore) -> None:
    class Forgetful(Projection):
        name = "test-forgetful"
        tables = (directory,)

    with pytest.raises(ProjectionError, match=r"test_directory\.name.*forget"):
        ProjectionRunner(store, [Forgetful()])


def test_a_failing_handler_rolls_back_its_batch_and_keeps_its_checkpoint(
        store: EventStore) -> None:
    class Fragile(CustomerDirectory):
        name = "test-fragile"

        @handles(PaymentSent)
        def paid(self, conn: sa.Connection, record: object) -> None:
            raise RuntimeError("boom")

    register(store, 1)
    store.append("payments", [PaymentSent(payer_id="c1", payee_id="c1", payer_iban="X",
                                          payee_name="Y", amount_cents=1)])
    with ProjectionRunner(store, [Fragile()]) as runner:
        with pytest.raises(ProjectionError, match="position 2") as raised:
            runner.catch_up()
        assert "Name 1" not in str(raised.value)
        assert runner.positions() == {"test-fragile": 0}
    assert rows(store._engine, directory) == []


def test_two_runners_of_one_projection_apply_each_event_once(store: EventStore) -> None:
    """The checkpoint is a compare-and-set: a runner that lost the race applies nothing."""
    register(store, 1)
    for n in range(5):
        store.append("payments", [PaymentSent(payer_id="c1", payee_id="c1", payer_iban="X",
                                              payee_name="Y", amount_cents=n)])
    first = ProjectionRunner(store, [CustomerDirectory()])
    second = ProjectionRunner(store, [CustomerDirectory()])  # both start at 0
    try:
        assert first.catch_up() == 6
        assert second.catch_up() == 0
    finally:
        first.close()
        second.close()
    (row,) = rows(store._engine, directory)
    assert row["payments"] == 5


def test_a_live_runner_applies_new_events_until_stopped(store: EventStore) -> None:
    with ProjectionRunner(store, [CustomerDirectory()], poll_interval=0.2) as runner:
        thread = runner.start()
        register(store, 1, 2, 3)
        deadline = time.monotonic() + 20
        while runner.positions()["test-directory"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runner.positions()["test-directory"] == 3
        runner.stop()
        runner.join(10)
        assert not thread.is_alive()
    assert len(rows(store._engine, directory)) == 3


def test_the_ledger_event_reaches_a_subscriber(store: EventStore) -> None:
    register(store, 1)
    store.erase_subject("c1", request_id="REQ-9")
    (ledger,) = [r for r in Subscription(store, live=False) if r.stream_id == "$erasures"]
    assert isinstance(ledger.event, SubjectErased)
    assert ledger.event.subject_id == "c1"


@pytest.mark.postgres
def test_on_postgresql_a_waiting_subscriber_is_woken_by_the_append(postgres_url: str) -> None:
    """It polls every 30 s here: delivery within seconds can only be the NOTIFY."""
    with EventStore(postgres_url) as store:
        subscription = Subscription(store, poll_interval=30)
        seen: list[float] = []

        def tail() -> None:
            for _ in subscription:
                seen.append(time.monotonic())
                subscription.stop()

        thread = threading.Thread(target=tail, daemon=True)
        thread.start()
        time.sleep(0.5)  # caught up (empty log) and waiting
        appended = time.monotonic()
        store.append("notes", [Noted(text="wake up")])
        thread.join(10)
        assert seen, "the subscriber was not woken"
        assert seen[0] - appended < 5
        assert not thread.is_alive()


def test_a_stop_right_after_start_is_not_lost(store: EventStore) -> None:
    """stop() may come before the thread has begun to wait: it still ends the runner."""
    with ProjectionRunner(store, [CustomerDirectory()], poll_interval=30) as runner:
        thread = runner.start()
        runner.stop()
        runner.join(5)
        assert not thread.is_alive()
