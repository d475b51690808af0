"""Process managers: a saga's state kept as sealed events of its own stream, each event handled
once, its step (state, emitted events, marker) committed whole; on every backend."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest
import sqlalchemy as sa

import shredstore.testing._tampering as tampering
from keyvault import MasterKey
from shredstore import (
    REDACTED,
    ConfigurationError,
    Event,
    EventStore,
    PersonalData,
    SubjectId,
    TamperedError,
)
from shredstore.sagas import Saga, SagaRunner, Step, handles


class OrderPlaced(Event, type_name="test.sagas.OrderPlaced"):
    order_id: str
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]
    amount: int


class PaymentRequested(Event, type_name="test.sagas.PaymentRequested"):
    order_id: str
    amount: int


class PaymentReceived(Event, type_name="test.sagas.PaymentReceived"):
    order_id: str


class ReceiptSent(Event, type_name="test.sagas.ReceiptSent"):
    order_id: str
    to: Annotated[str, PersonalData(subject="customer_id")]
    customer_id: SubjectId


class Broken(Exception):
    """What a failing handler raises."""


class Checkout(Saga, name="testcheckout"):
    customer_id: SubjectId = ""
    email: Annotated[str, PersonalData(subject="customer_id")] = ""
    amount: int = 0
    paid: bool = False

    @handles(OrderPlaced, correlate="order_id", start=True)
    def placed(self, event: OrderPlaced, step: Step) -> None:
        if event.amount < 0:
            raise Broken
        self.customer_id, self.email, self.amount = event.customer_id, event.email, event.amount
        step.emit(f"payment-{self.id}", PaymentRequested(order_id=self.id, amount=self.amount))

    @handles(PaymentReceived, correlate=lambda event: event.order_id)
    def received(self, event: PaymentReceived, step: Step) -> None:
        self.paid = True
        if self.email is not REDACTED:  # an erased customer gets no receipt, and no crash
            step.emit(f"mail-{self.id}", ReceiptSent(order_id=self.id, to=self.email,
                                                     customer_id=self.customer_id))
        step.complete()


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        yield opened


def place(store: EventStore, order: str = "7", amount: int = 30) -> None:
    store.append(f"order-{order}", [OrderPlaced(order_id=order, customer_id=f"c-{order}",
                                                email=f"ada{order}@example.org",
                                                amount=amount)])


def test_a_saga_starts_steps_and_completes_with_its_state_sealed(
        store: EventStore, any_url: str) -> None:
    runner = SagaRunner(store, [Checkout])
    place(store)
    assert runner.catch_up() == 1
    view = runner.load(Checkout, "7")
    assert view is not None
    assert (view.status, view.version, view.state.email, view.state.paid) == (
        "running", 1, "ada7@example.org", False)
    requested = next(store.read_stream("payment-7"))
    placed = next(store.read_stream("order-7"))
    assert requested.event == PaymentRequested(order_id="7", amount=30,
                                               event_id=requested.event_id)
    assert requested.metadata == {"correlation_id": str(placed.event_id),
                                  "causation_id": str(placed.event_id)}
    store.append("payment-7", [PaymentReceived(order_id="7")])
    assert runner.catch_up() == 1
    view = runner.load(Checkout, "7")
    assert view is not None
    assert (view.status, view.version, view.state.paid) == ("completed", 2, True)
    assert next(store.read_stream("mail-7")).event.to == "ada7@example.org"
    store.append("payment-7", [PaymentReceived(order_id="7")])  # a completed saga: ignored
    assert runner.catch_up() == 0
    with store.engine.connect() as conn:  # the saga's state is sealed like any event's
        stored = conn.execute(sa.text("SELECT payload, personal FROM shredstore_events "
                                      "WHERE stream_id = 'saga-testcheckout-7'")).all()
    assert stored
    assert all("ada7@example.org" not in f"{payload}{personal}" for payload, personal in stored)


def test_a_redelivered_event_has_no_second_effect(store: EventStore) -> None:
    runner = SagaRunner(store, [Checkout])
    place(store)
    record = next(store.read_stream("order-7"))
    assert runner.handle(record) == 1
    assert runner.handle(record) == 0
    again = SagaRunner(store, [Checkout], name="other")  # another runner, from position 0
    assert again.catch_up() == 0
    assert [r.version for r in store.read_stream("saga-testcheckout-7")] == [1]
    assert len(list(store.read_stream("payment-7"))) == 1


def test_an_event_for_a_saga_that_never_started_is_ignored(store: EventStore) -> None:
    runner = SagaRunner(store, [Checkout])
    store.append("payment-9", [PaymentReceived(order_id="9")])
    assert runner.catch_up() == 0
    assert runner.load(Checkout, "9") is None


def test_a_failing_handler_leaves_nothing_and_the_event_comes_again(store: EventStore) -> None:
    runner = SagaRunner(store, [Checkout])
    place(store, amount=-1)
    with pytest.raises(Broken):
        runner.catch_up()
    assert runner.load(Checkout, "7") is None
    assert list(store.read_stream("payment-7")) == []
    assert runner.position == 0
    with pytest.raises(Broken):  # the same event again: still not handled
        runner.catch_up()


def test_a_runner_resumes_from_its_position(store: EventStore) -> None:
    runner = SagaRunner(store, [Checkout])
    place(store, "1")
    place(store, "2")
    assert runner.catch_up() == 2
    position = runner.position
    assert position >= 2  # both orders (the saga's own appends come after)
    place(store, "3")
    resumed = SagaRunner(store, [Checkout])  # a restart
    assert resumed.position == position
    assert resumed.catch_up() == 1
    assert {r.stream_id for r in store.read_all() if r.stream_id.startswith("saga-")} == {
        "saga-testcheckout-1", "saga-testcheckout-2", "saga-testcheckout-3"}


def test_an_erased_customers_saga_reads_redacted_and_keeps_working(store: EventStore) -> None:
    runner = SagaRunner(store, [Checkout])
    place(store)
    runner.catch_up()
    store.erase_subject("c-7")
    view = runner.load(Checkout, "7")
    assert view is not None
    assert view.state.email is REDACTED
    store.append("payment-7", [PaymentReceived(order_id="7")])
    assert runner.catch_up() == 1
    view = runner.load(Checkout, "7")
    assert view is not None
    assert (view.status, view.state.paid, view.state.email) == ("completed", True, REDACTED)
    assert list(store.read_stream("mail-7")) == []


def test_runners_competing_for_one_event_take_one_step(store: EventStore) -> None:
    place(store)
    record = next(store.read_stream("order-7"))
    first, second = SagaRunner(store, [Checkout], name="a"), SagaRunner(store, [Checkout],
                                                                          name="b")
    assert first.handle(record) + second.handle(record) == 1
    assert len(list(store.read_stream("payment-7"))) == 1


def test_a_steps_group_rewritten_as_redacted_is_tampering_not_an_erasure(
        store: EventStore, any_url: str) -> None:
    """Saga steps may hold redacted groups (a state that outlived an erasure); an attacker
    with database access who rewrites a live subject's sealed group as a redacted one gets a
    TamperedError on read, never a redaction: the row's authenticator covers the column."""
    runner = SagaRunner(store, [Checkout])
    place(store)
    runner.catch_up()
    step = next(store.read_stream("saga-testcheckout-7"))
    engine = tampering.raw_engine(any_url)
    try:
        tampering.drop_triggers(engine)
        tampering.edit(engine, step.position, personal=json.dumps(
            [{"subject": "c-7", "paths": [["state", "email"]], "redacted": True}]))
    finally:
        engine.dispose()
    with pytest.raises(TamperedError):
        runner.load(Checkout, "7")
    assert ("forged", step.position) in [(f.kind, f.position) for f in store.verify().findings]


class MailingSaga(Saga, name="testmailing"):
    """A careless saga: correlated by a customer's e-mail address (a stream id in plain text,
    which no erasure can take back)."""

    @handles(OrderPlaced, correlate="email", start=True)
    def placed(self, event: OrderPlaced, step: Step) -> None:
        step.complete()


def test_the_residue_check_finds_a_saga_correlated_by_personal_data(store: EventStore) -> None:
    runner = SagaRunner(store, [MailingSaga])
    place(store)
    runner.catch_up()
    receipt = store.erase_subject("c-7", verify_residue=True)
    assert receipt.residue is not None
    assert not receipt.residue.clean
    assert [f.to_dict() for f in receipt.residue.findings] == [{
        "projection": "event log", "table": "shredstore_events", "column": "stream_id",
        "rows": 1}]
    assert "ada7@example.org" not in receipt.to_json()


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_runners_of_one_name_take_turns_and_fail_over(store: EventStore) -> None:
    """One runner of a name runs at a time: the other waits, takes over when the first
    stops (it releases the lease), and when a holder dies (its lease expires)."""
    first = SagaRunner(store, [Checkout], name="turns", poll_interval=0.02,
                       lease=timedelta(seconds=30))
    second = SagaRunner(store, [Checkout], name="turns", poll_interval=0.02,
                        lease=timedelta(seconds=30))
    threads = [threading.Thread(target=runner.run) for runner in (first, second)]
    threads[0].start()
    try:
        assert wait_until(lambda: first.active)
        threads[1].start()
        time.sleep(0.3)
        assert not second.active  # the lease is the first's
        place(store, "1")
        assert wait_until(lambda: (runner_view := first.load(Checkout, "1")) is not None
                          and runner_view.status == "running")
        first.stop()
        threads[0].join(10)
        assert wait_until(lambda: second.active)  # released at stop: taken at once
        place(store, "2")
        assert wait_until(lambda: second.load(Checkout, "2") is not None)
    finally:
        first.stop()
        second.stop()
        for thread in threads:
            if thread.is_alive() or thread.ident is not None:
                thread.join(10)
    # A holder that died keeps its lease until it expires; then another takes over.
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE shredstore_saga_runners SET owner = 'dead', "
                             "lease_until = :until WHERE name = 'turns'"),
                     {"until": datetime.now(UTC) + timedelta(seconds=0.5)})
    third = SagaRunner(store, [Checkout], name="turns", poll_interval=0.02)
    thread = threading.Thread(target=third.run)
    thread.start()
    try:
        time.sleep(0.2)
        assert not third.active
        assert wait_until(lambda: third.active, 5.0)
    finally:
        third.stop()
        thread.join(10)


def test_partitioned_runners_divide_the_sagas_between_them(store: EventStore) -> None:
    """Two runners, partitions 0 and 1 of 2: each saga is stepped by exactly one of them,
    both get some, and together they take every step."""
    for n in range(20):
        place(store, str(n))
        store.append(f"payment-{n}", [PaymentReceived(order_id=str(n))])
    first = SagaRunner(store, [Checkout], partition=(0, 2))
    second = SagaRunner(store, [Checkout], partition=(1, 2))
    took = (first.catch_up(), second.catch_up())
    assert sum(took) == 40
    assert all(steps > 0 for steps in took)
    assert all((view := first.load(Checkout, str(n))) is not None
               and view.status == "completed" for n in range(20))
    assert first.position > 0
    assert second.position > 0
    with pytest.raises(ConfigurationError):
        SagaRunner(store, [Checkout], partition=(2, 2))
