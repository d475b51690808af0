"""Order, payment and shipping as three services in separate processes, one saga across them.

Run it::

    python examples/order_saga.py                       # a temporary SQLite file
    python examples/order_saga.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test

The orders service orchestrates (`Fulfilment`: reserve a parcel, charge the card, ship; undo
what was done when a stage fails; give up on a payment that never answers) and tells customers
by e-mail what became of their order (`Notifier`, a choreographed saga that reacts to the
orchestration's outcome). The payments and shipping services are participants: each runs its
own saga runner, takes the commands addressed to it from the log and appends its replies. They
share the event store (the log is how they talk); every step of every service is exactly once,
and the customers' e-mail addresses are sealed in every event and every saga state that holds
them.

Four orders show every path: one that goes through; one whose card is declined (a failing
payment: its parcel reservation is released, a compensation); one that cannot be shipped (its
payment is refunded, then its parcel released: compensations in reverse order); and one whose
payment service never answers (the deadline gives up after a retry, and the reservation is
released). Then a customer is erased, and her saga's state reads as redacted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from keyvault import MasterKey
from shredstore import REDACTED, Event, EventStore, PersonalData, SubjectId
from shredstore.sagas import (
    Orchestration,
    Retry,
    Saga,
    SagaRunner,
    SagaView,
    Stage,
    Start,
    Step,
    handles,
)

# --- the events the services exchange ------------------------------------------------------


class OrderPlaced(Event, type_name="example.OrderPlaced"):
    order_id: str
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]
    amount: int
    address: str


class ChargeCard(Event, type_name="example.ChargeCard"):
    order_id: str
    amount: int


class CardCharged(Event, type_name="example.CardCharged"):
    order_id: str


class CardDeclined(Event, type_name="example.CardDeclined"):
    order_id: str


class RefundCard(Event, type_name="example.RefundCard"):
    order_id: str
    amount: int


class CardRefunded(Event, type_name="example.CardRefunded"):
    order_id: str


class ReserveParcel(Event, type_name="example.ReserveParcel"):
    order_id: str


class ParcelReserved(Event, type_name="example.ParcelReserved"):
    order_id: str


class ReleaseParcel(Event, type_name="example.ReleaseParcel"):
    order_id: str


class ParcelReleased(Event, type_name="example.ParcelReleased"):
    order_id: str


class ShipOrder(Event, type_name="example.ShipOrder"):
    order_id: str
    address: str


class OrderShipped(Event, type_name="example.OrderShipped"):
    order_id: str


class CannotShip(Event, type_name="example.CannotShip"):
    order_id: str


class EmailSent(Event, type_name="example.EmailSent"):
    order_id: str
    customer_id: SubjectId
    to: Annotated[str, PersonalData(subject="customer_id")]
    subject: str


# --- orders: the orchestration and the notifications ---------------------------------------


class Fulfilment(Orchestration, name="fulfilment"):
    """Reserve a parcel, charge the card, ship. A declined card releases the parcel; a failed
    shipment refunds the card, then releases the parcel; a payment that never answers is
    given up after one retry (its deadline), and the parcel released."""

    customer_id: SubjectId = ""
    email: Annotated[str, PersonalData(subject="customer_id")] = ""
    amount: int = 0
    address: str = ""

    start = Start(OrderPlaced, correlate="order_id",
                  setup=lambda saga, event: saga.take(event))
    stages = (
        Stage("reserve",
              command=lambda saga: (f"shipping-{saga.id}", ReserveParcel(order_id=saga.id)),
              succeeded=ParcelReserved,
              compensation=lambda saga: (f"shipping-{saga.id}", ReleaseParcel(order_id=saga.id)),
              compensated=ParcelReleased),
        Stage("charge",
              command=lambda saga: (f"payments-{saga.id}",
                                    ChargeCard(order_id=saga.id, amount=saga.amount)),
              succeeded=CardCharged, failed=CardDeclined,
              compensation=lambda saga: (f"payments-{saga.id}",
                                         RefundCard(order_id=saga.id, amount=saga.amount)),
              compensated=CardRefunded,
              retry=Retry(attempts=2, backoff=timedelta(seconds=0.5)),
              timeout=timedelta(seconds=1.5)),
        Stage("ship",
              command=lambda saga: (f"shipping-{saga.id}",
                                    ShipOrder(order_id=saga.id, address=saga.address)),
              succeeded=OrderShipped, failed=CannotShip),
    )


    def take(self, event: OrderPlaced) -> None:
        """What the orchestration keeps of the order."""
        self.customer_id, self.email = event.customer_id, event.email
        self.amount, self.address = event.amount, event.address


class Notifier(Saga, name="notifier"):
    """Choreography: tells the customer what became of the order, from the events alone."""

    customer_id: SubjectId = ""
    email: Annotated[str, PersonalData(subject="customer_id")] = ""

    @handles(OrderPlaced, correlate="order_id", start=True)
    def placed(self, event: OrderPlaced, step: Step) -> None:
        self.customer_id, self.email = event.customer_id, event.email

    @handles(OrderShipped, correlate="order_id")
    def shipped(self, event: OrderShipped, step: Step) -> None:
        self._tell("your order is on its way", step)

    @handles(CardRefunded, correlate="order_id")
    def refunded(self, event: CardRefunded, step: Step) -> None:
        self._tell("we could not ship your order: your payment was refunded", step)

    @handles(CardDeclined, correlate="order_id")
    def declined(self, event: CardDeclined, step: Step) -> None:
        self._tell("your card was declined", step)

    def _tell(self, subject: str, step: Step) -> None:
        if self.email is not REDACTED:  # an erased customer is told nothing, and no crash
            step.emit(f"mail-{self.id}", EmailSent(order_id=self.id,
                                                   customer_id=self.customer_id,
                                                   to=self.email, subject=subject))
        step.complete()


# --- the participants ------------------------------------------------------------------------


class Payments(Saga, name="payments"):
    """The payment service: declines large amounts, never answers for amount 13."""

    @handles(ChargeCard, correlate="order_id", start=True)
    def charge(self, command: ChargeCard, step: Step) -> None:
        if command.amount == 13:
            return  # the card network is down for this one: no reply at all
        reply = (CardDeclined if command.amount > 1000 else CardCharged)(order_id=self.id)
        step.emit(f"payments-{self.id}", reply)

    @handles(RefundCard, correlate="order_id")
    def refund(self, command: RefundCard, step: Step) -> None:
        step.emit(f"payments-{self.id}", CardRefunded(order_id=self.id))
        step.complete()


class Shipping(Saga, name="shipping"):
    """The shipping service: reserves a parcel, ships it (not to the Moon), releases it."""

    @handles(ReserveParcel, correlate="order_id", start=True)
    def reserve(self, command: ReserveParcel, step: Step) -> None:
        step.emit(f"shipping-{self.id}", ParcelReserved(order_id=self.id))

    @handles(ShipOrder, correlate="order_id")
    def ship(self, command: ShipOrder, step: Step) -> None:
        if command.address == "the Moon":
            step.emit(f"shipping-{self.id}", CannotShip(order_id=self.id))
        else:
            step.emit(f"shipping-{self.id}", OrderShipped(order_id=self.id))
            step.complete()

    @handles(ReleaseParcel, correlate="order_id")
    def release(self, command: ReleaseParcel, step: Step) -> None:
        step.emit(f"shipping-{self.id}", ParcelReleased(order_id=self.id))
        step.complete()


COMMANDS = (ReserveParcel, ChargeCard, ShipOrder, RefundCard, ReleaseParcel)
"""What the orchestrator sends; the walk-through lists them per order."""

SERVICES: dict[str, list[type[Saga]]] = {
    "orders": [Fulfilment, Notifier], "payments": [Payments], "shipping": [Shipping]}


def serve(url: str, master: str, service: str) -> int:
    """One service's process: its saga runner, until SIGTERM."""
    with EventStore(url, master_key=MasterKey.from_base64(master)) as store:
        runner = SagaRunner(store, SERVICES[service], name=service, poll_interval=0.05)
        print(f"{service}: running", flush=True)
        runner.run(handle_signals=True)  # SIGTERM ends it after the step in hand
    return 0


# --- the walk-through ------------------------------------------------------------------------

ORDERS = [("1", "ada", 40, "Baker Street 1"), ("2", "bo", 5000, "Main Road 2"),
          ("3", "cy", 60, "the Moon"), ("4", "di", 13, "Elm Street 4")]
EXPECTED = {"1": "completed", "2": "compensated", "3": "compensated", "4": "compensated"}
EXPECTED_COMMANDS = {
    "1": ["ReserveParcel", "ChargeCard", "ShipOrder"],
    "2": ["ReserveParcel", "ChargeCard", "ChargeCard", "ReleaseParcel"],  # declined, retried
    "3": ["ReserveParcel", "ChargeCard", "ShipOrder", "RefundCard", "ReleaseParcel"],
    "4": ["ReserveParcel", "ChargeCard", "ChargeCard", "ReleaseParcel"],  # no answer: deadline
}


def walk_through(url: str) -> int:
    master = MasterKey.generate()
    secret = master.to_base64()
    with EventStore(url, master_key=master) as store:
        for service in SERVICES.values():
            SagaRunner(store, service)  # the tables, before the services start
    environment = {**os.environ, "SHREDSTORE_EXAMPLE_MASTER": secret}
    here = Path(__file__).resolve()
    services = [subprocess.Popen(  # noqa: S603 - this very script, with our own arguments
        [sys.executable, str(here), "--url", url, "--serve", name],
        env=environment, stdout=subprocess.PIPE, text=True) for name in SERVICES]
    try:
        for process in services:
            if process.stdout is not None:
                print(process.stdout.readline().strip())
        with EventStore(url, master_key=master) as store:
            for order, customer, amount, address in ORDERS:
                store.append(f"order-{order}", [OrderPlaced(
                    order_id=order, customer_id=customer, email=f"{customer}@example.org",
                    amount=amount, address=address)])
            outcomes = _wait_for_outcomes(store)
            sent: dict[str, list[str]] = {}
            for record in store.read_all():
                if isinstance(record.event, COMMANDS):
                    sent.setdefault(record.event.order_id, []).append(
                        type(record.event).__name__)
            for order, view in sorted(outcomes.items()):
                print(f"order {order}: {view.status}"
                      + (f" ({view.reason})" if view.reason else ""))
                print(f"  commands sent: {', '.join(sent.get(order, []))}")
            mails = [r.event for r in store.read_all() if isinstance(r.event, EmailSent)]
            for mail in sorted(mails, key=lambda m: m.order_id):
                print(f"  mail for order {mail.order_id}: {mail.subject}")
            store.erase_subject("cy")
            runner = SagaRunner(store, [Fulfilment, Notifier], name="orders")
            erased = runner.load(Fulfilment, "3")
            redacted = erased is not None and erased.state.email is REDACTED
            print("after erasing customer cy, order 3's saga holds her e-mail as "
                  + ("REDACTED" if redacted else "a value (WRONG)"))
    finally:
        for process in services:
            process.terminate()
        for process in services:
            process.wait(timeout=30)
    statuses = {order: view.status for order, view in outcomes.items()}
    ok = (statuses == EXPECTED and sent == EXPECTED_COMMANDS and len(mails) == 3
          and redacted)
    print("every order ended as expected" if ok else f"UNEXPECTED: {statuses}")
    return 0 if ok else 1


def _wait_for_outcomes(store: EventStore, timeout: float = 60.0
                       ) -> dict[str, SagaView[Fulfilment]]:
    runner = SagaRunner(store, [Fulfilment], name="observer")
    deadline = time.monotonic() + timeout
    while True:
        views = {order: runner.load(Fulfilment, order) for order, *_ in ORDERS}
        ended = {order: view for order, view in views.items()
                 if view is not None and view.status != "running"}
        notified = sum(1 for r in store.read_all() if isinstance(r.event, EmailSent))
        if len(ended) == len(ORDERS) and notified >= 3:
            return {order: view for order, view in ended.items() if view is not None}
        if time.monotonic() > deadline:
            raise SystemExit(f"the sagas did not end in {timeout} s: {views}")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the event store (default: a temporary SQLite file)")
    parser.add_argument("--serve", choices=sorted(SERVICES), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        return serve(options.url, os.environ["SHREDSTORE_EXAMPLE_MASTER"], options.serve)
    if options.url:
        return walk_through(options.url)
    with tempfile.TemporaryDirectory() as folder:
        return walk_through(f"sqlite:///{folder}/orders.db")


if __name__ == "__main__":
    sys.exit(main())
