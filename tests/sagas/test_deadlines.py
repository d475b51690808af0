"""Saga deadlines: stored with the step that set them, fired once (across runners and
restarts), cancelled by a step or by the saga's end; on every backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from keyvault import MasterKey
from shredstore import ConfigurationError, Event, EventStore
from shredstore.sagas import Deadline, Saga, SagaRunner, Step, handles, on_deadline
from tests.sagas.test_process import OrderPlaced, PaymentReceived


class OrderCancelled(Event, type_name="test.deadlines.OrderCancelled"):
    order_id: str


class Payment(Saga, name="testpayment"):
    reminders: int = 0

    @handles(OrderPlaced, correlate="order_id", start=True)
    def placed(self, event: OrderPlaced, step: Step) -> None:
        step.schedule("remind", after=timedelta(minutes=5))
        step.schedule("cancel", after=timedelta(minutes=15))

    @handles(PaymentReceived, correlate="order_id")
    def paid(self, event: PaymentReceived, step: Step) -> None:
        step.cancel("cancel")

    @on_deadline("remind")
    def remind(self, deadline: Deadline, step: Step) -> None:
        self.reminders += 1

    @on_deadline("cancel")
    def cancel(self, deadline: Deadline, step: Step) -> None:
        step.emit(f"order-{self.id}", OrderCancelled(order_id=self.id))
        step.fail("payment not received in time")


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        yield opened


def place(store: EventStore, order: str = "7") -> None:
    store.append(f"order-{order}", [OrderPlaced(order_id=order, customer_id=f"c-{order}",
                                                email="ada@example.org", amount=5)])


def later(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def test_a_deadline_fires_once_when_due_and_ends_the_saga(store: EventStore) -> None:
    runner = SagaRunner(store, [Payment])
    place(store)
    runner.catch_up()
    assert set(runner.deadlines(Payment, "7")) == {"remind", "cancel"}
    assert runner.fire_due() == 0  # nothing due yet
    assert runner.fire_due(now=later(6)) == 1
    assert runner.fire_due(now=later(6)) == 0
    view = runner.load(Payment, "7")
    assert view is not None
    assert (view.state.reminders, view.status) == (1, "running")
    assert runner.fire_due(now=later(16)) == 1
    view = runner.load(Payment, "7")
    assert view is not None
    assert (view.status, view.reason) == ("failed", "payment not received in time")
    placed, cancelled = list(store.read_stream("order-7"))
    assert cancelled.event_type == "test.deadlines.OrderCancelled"
    steps = list(store.read_stream(Payment.stream_of("7")))
    # What a deadline emits continues the saga's correlation, caused by its previous step.
    assert cancelled.metadata == {"correlation_id": str(placed.event_id),
                                  "causation_id": str(steps[-2].event_id)}
    assert runner.deadlines(Payment, "7") == {}


def test_a_step_cancels_a_deadline(store: EventStore) -> None:
    runner = SagaRunner(store, [Payment])
    place(store)
    store.append("payment-7", [PaymentReceived(order_id="7")])
    runner.catch_up()
    assert set(runner.deadlines(Payment, "7")) == {"remind"}
    assert runner.fire_due(now=later(60)) == 1  # the reminder only
    view = runner.load(Payment, "7")
    assert view is not None
    assert view.status == "running"


def test_deadlines_survive_a_restart_and_fire_once_across_runners(store: EventStore) -> None:
    SagaRunner(store, [Payment]).catch_up()
    place(store)
    SagaRunner(store, [Payment]).catch_up()
    first, second = SagaRunner(store, [Payment]), SagaRunner(store, [Payment], name="b")
    assert first.fire_due(now=later(6)) + second.fire_due(now=later(6)) == 1
    view = first.load(Payment, "7")
    assert view is not None
    assert view.state.reminders == 1


def test_a_completed_sagas_deadlines_are_dropped(store: EventStore) -> None:
    class Quick(Saga, name="testquick"):
        @handles(OrderPlaced, correlate="order_id", start=True)
        def placed(self, event: OrderPlaced, step: Step) -> None:
            step.schedule("never", at=later(1))
            step.complete()

    runner = SagaRunner(store, [Quick])
    place(store)
    runner.catch_up()
    assert runner.deadlines(Quick, "7") == {}
    assert runner.fire_due(now=later(5)) == 0


def test_run_fires_due_deadlines_until_stopped(store: EventStore) -> None:
    class Soon(Saga, name="testsoon"):
        fired: bool = False

        @handles(OrderPlaced, correlate="order_id", start=True)
        def placed(self, event: OrderPlaced, step: Step) -> None:
            step.schedule("now", at=datetime.now(UTC))

        @on_deadline("now")
        def now(self, deadline: Deadline, step: Step) -> None:
            self.fired = True
            step.complete()

    runner = SagaRunner(store, [Soon], poll_interval=0.05)
    place(store)
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        for _ in range(200):
            view = runner.load(Soon, "7")
            if view is not None and view.status == "completed":
                break
            threading.Event().wait(0.05)
    finally:
        runner.stop()
        thread.join(timeout=10)
    view = runner.load(Soon, "7")
    assert view is not None
    assert (view.status, view.state.fired) == ("completed", True)


@pytest.mark.parametrize("options", [{}, {"at": later(1), "after": timedelta(1)},
                                     {"at": datetime(2030, 1, 1)}],
                         ids=["neither", "both", "naive time"])
def test_malformed_schedules_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Step().schedule("x", **options)  # type: ignore[arg-type]
