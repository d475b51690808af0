"""Orchestration: stages with commands and replies, retries with backoff before compensating,
compensations in reverse order, a compensation that keeps failing left for an operator; on
every backend, and as a hypothesis state machine of replies and failures."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from keyvault import MasterKey
from shredstore import REDACTED, Event, EventStore, PersonalData, SagaError, SubjectId
from shredstore.sagas import Orchestration, Retry, SagaRunner, Stage, Start


class Ordered(Event, type_name="test.orch.Ordered"):
    order_id: str
    amount: int


def _command(name: str) -> type[Event]:
    return type(name, (Event,), {"__annotations__": {"order_id": str}},
                type_name=f"test.orch.{name}")


Charge, Charged, ChargeRefused = (_command(name) for name in ("Charge", "Charged",
                                                              "ChargeRefused"))
Refund, Refunded, RefundRefused = (_command(name) for name in ("Refund", "Refunded",
                                                              "RefundRefused"))
Ship, Shipped, ShipRefused = (_command(name) for name in ("Ship", "Shipped", "ShipRefused"))


class Fulfilment(Orchestration, name="testfulfilment"):
    amount: int = 0

    start = Start(Ordered, correlate="order_id",
                  setup=lambda saga, event: setattr(saga, "amount", event.amount))
    stages = (
        Stage("charge", command=lambda saga: (f"pay-{saga.id}", Charge(order_id=saga.id)),
              succeeded=Charged, failed=ChargeRefused,
              compensation=lambda saga: (f"pay-{saga.id}", Refund(order_id=saga.id)),
              compensated=Refunded, compensation_failed=RefundRefused,
              retry=Retry(attempts=2, backoff=timedelta(seconds=10)),
              timeout=timedelta(minutes=5)),
        Stage("ship", command=lambda saga: (f"ship-{saga.id}", Ship(order_id=saga.id)),
              succeeded=Shipped, failed=ShipRefused,
              retry=Retry(attempts=3, backoff=timedelta(seconds=10))),
    )


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        yield opened


def commands(store: EventStore, order: str = "7") -> list[str]:
    """The commands sent to the participants, in order (type names without the prefix)."""
    return [r.event_type.removeprefix("test.orch.") for r in store.read_all()
            if r.stream_id in (f"pay-{order}", f"ship-{order}")
            and r.event_type.removeprefix("test.orch.") in ("Charge", "Refund", "Ship")]


def reply(store: EventStore, runner: SagaRunner, event: Event, stream: str = "replies") -> None:
    store.append(stream, [event])
    runner.catch_up()


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_every_stage_succeeds_and_the_saga_completes(store: EventStore) -> None:
    runner = SagaRunner(store, [Fulfilment])
    reply(store, runner, Ordered(order_id="7", amount=5), "orders")
    assert commands(store) == ["Charge"]
    reply(store, runner, Charged(order_id="7"))
    assert commands(store) == ["Charge", "Ship"]
    reply(store, runner, Shipped(order_id="7"))
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert (view.status, view.state.amount) == ("completed", 5)
    assert runner.deadlines(Fulfilment, "7") == {}


def test_a_failing_stage_is_retried_then_compensated_in_reverse(store: EventStore) -> None:
    runner = SagaRunner(store, [Fulfilment])
    reply(store, runner, Ordered(order_id="7", amount=5), "orders")
    reply(store, runner, Charged(order_id="7"))
    for _ in range(3):  # three attempts at shipping, each refused
        reply(store, runner, ShipRefused(order_id="7"))
        runner.fire_due(now=later(3600))
    assert commands(store) == ["Charge", "Ship", "Ship", "Ship", "Refund"]
    reply(store, runner, Refunded(order_id="7"))
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert view.status == "compensated"
    assert "ship" in view.reason


def test_no_reply_in_time_counts_as_a_failure(store: EventStore) -> None:
    runner = SagaRunner(store, [Fulfilment])
    reply(store, runner, Ordered(order_id="7", amount=5), "orders")
    assert "orchestration:timeout" in runner.deadlines(Fulfilment, "7")
    runner.fire_due(now=later(6 * 60))  # the charge timed out: retried after its backoff
    runner.fire_due(now=later(7 * 60))
    assert commands(store) == ["Charge", "Charge"]
    runner.fire_due(now=later(13 * 60))  # timed out again: nothing to undo before it
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert view.status == "compensated"


def test_a_compensation_that_keeps_failing_waits_for_an_operator(store: EventStore) -> None:
    runner = SagaRunner(store, [Fulfilment])
    reply(store, runner, Ordered(order_id="7", amount=5), "orders")
    reply(store, runner, Charged(order_id="7"))
    for _ in range(3):
        reply(store, runner, ShipRefused(order_id="7"))
        runner.fire_due(now=later(3600))
    for _ in range(2):  # the refund is refused twice: its attempts run out
        reply(store, runner, RefundRefused(order_id="7"))
        runner.fire_due(now=later(3600))
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert view.status == "failed"
    assert "compensation of stage 'charge' kept failing" in view.reason
    reply(store, runner, Refunded(order_id="7"))  # a reply to a failed saga: ignored
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert view.status == "failed"
    sent = len(commands(store))
    resumed = runner.resume(Fulfilment, "7")  # the operator fixed the payment service
    assert resumed.status == "running"
    assert commands(store)[sent:] == ["Refund"]
    reply(store, runner, Refunded(order_id="7"))
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert view.status == "compensated"
    with pytest.raises(SagaError, match="only a failed saga can be resumed"):
        runner.resume(Fulfilment, "7")


def test_an_operator_cancels_a_running_saga(store: EventStore) -> None:
    runner = SagaRunner(store, [Fulfilment])
    reply(store, runner, Ordered(order_id="7", amount=5), "orders")
    view = runner.cancel(Fulfilment, "7")
    assert (view.status, view.reason) == ("cancelled", "cancelled by an operator")
    assert runner.deadlines(Fulfilment, "7") == {}
    reply(store, runner, Charged(order_id="7"))
    assert commands(store) == ["Charge"]


REPLIES = {"Charged": Charged, "ChargeRefused": ChargeRefused, "Shipped": Shipped,
           "ShipRefused": ShipRefused, "Refunded": Refunded, "RefundRefused": RefundRefused}


class Replies(RuleBasedStateMachine):
    """Any sequence of participants' replies and deadlines: the saga never sends a command
    after it ended, sends a refund only after a charge succeeded, never more refunds than
    charges that succeeded, and ends in a state that its history explains."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.store = EventStore(f"sqlite:///{self.tmp.name}/s.db",
                                master_key=MasterKey.generate())
        self.runner = SagaRunner(self.store, [Fulfilment])
        reply(self.store, self.runner, Ordered(order_id="7", amount=1), "orders")
        self.clock = 0.0
        self.ended: int | None = None

    @rule(kind=st.sampled_from(sorted(REPLIES)))
    def a_reply(self, kind: str) -> None:
        reply(self.store, self.runner, REPLIES[kind](order_id="7"))

    @rule(seconds=st.sampled_from([1.0, 30.0, 400.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock += seconds
        self.runner.fire_due(now=later(self.clock))

    @invariant()
    def the_history_is_consistent(self) -> None:
        sent = commands(self.store)
        view = self.runner.load(Fulfilment, "7")
        assert view is not None
        replies = [r.event_type.removeprefix("test.orch.")
                   for r in self.store.read_stream("replies")]
        # Each command at most as often as its retry policy allows (no operator here).
        assert sent.count("Charge") <= 2
        assert sent.count("Ship") <= 3
        assert sent.count("Refund") <= 2
        if "Refund" in sent:  # compensation only of a stage that succeeded, after a failure
            assert "Charged" in replies
            assert "Ship" in sent
        if view.status == "completed":
            assert sent[-1] == "Ship"
            assert "Shipped" in replies
        if view.status == "compensated" and "Refund" in sent:
            assert "Refunded" in replies
        if view.status != "running":  # an ended saga sends nothing more
            if self.ended is None:
                self.ended = len(sent)
            assert len(sent) == self.ended
            assert self.runner.deadlines(Fulfilment, "7") == {}

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()


TestReplies = Replies.TestCase
TestReplies.settings = settings(max_examples=25, stateful_step_count=12, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow])


class Customer(Event, type_name="test.orch.Customer"):
    order_id: str
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]


class PersonalFulfilment(Orchestration, name="testpersonal"):
    """The same stages, with the customer's e-mail address in the saga's state."""

    customer_id: SubjectId = ""
    email: Annotated[str, PersonalData(subject="customer_id")] = ""

    start = Start(Customer, correlate="order_id", setup=lambda saga, event: saga.take(event))
    stages = Fulfilment.stages

    def take(self, event: Customer) -> None:
        self.customer_id, self.email = event.customer_id, event.email


def test_compensations_run_after_the_customer_was_erased(store: EventStore) -> None:
    """Erased mid-flight: the state's address reads REDACTED, the failure still compensates
    (the compensation needs ids only), and the saga ends compensated."""
    runner = SagaRunner(store, [PersonalFulfilment])
    reply(store, runner, Customer(order_id="7", customer_id="c-7", email="c7@example.org"),
          "orders")
    reply(store, runner, Charged(order_id="7"))
    store.erase_subject("c-7")
    for _ in range(3):
        reply(store, runner, ShipRefused(order_id="7"))
        runner.fire_due(now=later(3600))
    reply(store, runner, Refunded(order_id="7"))
    view = runner.load(PersonalFulfilment, "7")
    assert view is not None
    assert (view.status, view.state.email) == ("compensated", REDACTED)
    assert commands(store)[-1] == "Refund"
