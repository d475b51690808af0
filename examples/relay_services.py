"""Orders and payments as two services in separate processes, talking through RabbitMQ, with
one orchestrated saga across them.

Run it (RabbitMQ must be running; ``pip install 'shredstore[relay]'``)::

    python examples/relay_services.py                   # amqp://guest:guest@127.0.0.1:5672/
    python examples/relay_services.py --amqp amqp://user:password@rabbit.example.net:5672/
    python examples/relay_services.py --folder /tmp/shop   # keep the databases to look at

The walk-through starts each service as a process of its own, this very script with
``orders FOLDER AMQP_URL EXCHANGE`` (or ``payments ...``); it uses an exchange of its own,
``shop-<random hex>``, and deletes it and its queues at the end.

Each service has an event store of its own (``orders.db``, ``payments.db``); the two share a
key vault (``vault.db``) and its master key (a file only its owner may read). A service runs
three loops, each in a thread, until SIGTERM:

- a `Relay` publishes its whole log to a topic exchange, personal fields still sealed;
- an `Inbox` copies the events its queue is bound to into its own store, under their own
  event ids (a redelivery stores nothing);
- a `SagaRunner` runs its sagas over its own log.

The orders service orchestrates `Checkout`: an order placed sends `ChargeCard` (with the
customer's e-mail address, for the receipt) to the payments service, and waits for
`CardCharged` or `CardDeclined`. The payments service's `Cashier` saga answers each
`ChargeCard` its inbox copied: it declines amounts over 500. Neither service reads the other's
database: the commands and replies travel through RabbitMQ. (Each relay publishes its whole
log, so each inbox also receives the copies it made itself, sent back by its own relay:
appending an event id that is already stored stores nothing.)

Three orders are placed; one card is declined. Then a customer is erased in the orders store.
Because the vault is shared, the payments service's copy of her `ChargeCard` reads her e-mail
address as redacted too, and so does the message still held by RabbitMQ: it never held
anything but ciphertext, under a key that no longer exists.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Protocol

import aio_pika

from keyvault import MasterKey
from shredstore import REDACTED, BrokerUnavailable, Event, EventStore, PersonalData, SubjectId
from shredstore.relay import (
    Inbox,
    Relay,
    Subscriber,
    open_message,
    publisher_for,
    read_message,
    subscriber_for,
)
from shredstore.sagas import Orchestration, Saga, SagaRunner, SagaView, Stage, Start, Step, handles

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
KEY_FILE = "master.key"

# --- the events the services exchange ------------------------------------------------------


class OrderPlaced(Event, type_name="example.relay.OrderPlaced"):
    order_id: str
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]
    amount: int


class ChargeCard(Event, type_name="example.relay.ChargeCard"):
    order_id: str
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]  # for the receipt
    amount: int


class CardCharged(Event, type_name="example.relay.CardCharged"):
    order_id: str


class CardDeclined(Event, type_name="example.relay.CardDeclined"):
    order_id: str


# --- orders: the orchestration ---------------------------------------------------------------


class Checkout(Orchestration, name="checkout"):
    """Charge the card through the payments service. A declined card (or no answer within
    10 s) ends the checkout as compensated: there is nothing before it to undo."""

    customer_id: SubjectId = ""
    email: Annotated[str, PersonalData(subject="customer_id")] = ""
    amount: int = 0

    start = Start(OrderPlaced, correlate="order_id",
                  setup=lambda saga, event: saga.take(event))
    stages = (
        Stage("charge",
              command=lambda saga: (f"payments-{saga.id}", ChargeCard(
                  order_id=saga.id, customer_id=saga.customer_id, email=saga.email,
                  amount=saga.amount)),
              succeeded=CardCharged, failed=CardDeclined,
              timeout=timedelta(seconds=10)),
    )

    def take(self, event: OrderPlaced) -> None:
        """What the orchestration keeps of the order."""
        self.customer_id, self.email, self.amount = event.customer_id, event.email, event.amount


# --- payments: the participant ---------------------------------------------------------------

LIMIT = 500
"""The payments service declines larger amounts."""


class Cashier(Saga, name="cashier"):
    """The payments service: answers each `ChargeCard` its inbox copied, in its own store."""

    @handles(ChargeCard, correlate="order_id", start=True)
    def charge(self, command: ChargeCard, step: Step) -> None:
        reply = (CardDeclined if command.amount > LIMIT else CardCharged)(order_id=self.id)
        step.emit(f"payments-{self.id}", reply)  # the relay takes it to the orders service
        step.complete()


# --- the services ----------------------------------------------------------------------------

SAGAS: dict[str, list[type[Saga]]] = {"orders": [Checkout], "payments": [Cashier]}
BINDINGS = {  # routing keys are TYPE.STREAM, each with "." (and more) replaced by "_"
    "orders": ["example_relay_CardCharged.*", "example_relay_CardDeclined.*"],
    "payments": ["example_relay_ChargeCard.*"],
}


def open_store(folder: Path, service: str, master: MasterKey) -> EventStore:
    """The service's own event store, with the key vault both services share."""
    return EventStore(f"sqlite:///{folder / service}.db",
                      vault_url=f"sqlite:///{folder / 'vault.db'}", master_key=master)


def inbox_queue(exchange: str, service: str) -> str:
    return f"{exchange}-{service}-inbox"


class Loop(Protocol):
    def run(self) -> None: ...
    def stop(self) -> None: ...


def serve(service: str, folder: Path, amqp: str, exchange: str) -> int:
    """One service's process: its relay, inbox and saga runner, each in a thread, until
    SIGTERM."""
    master = MasterKey.from_file(folder / KEY_FILE)
    with open_store(folder, service, master) as store:
        publisher = publisher_for(amqp, exchange=exchange)
        subscriber = subscriber_for(amqp, inbox_queue(exchange, service), exchange=exchange,
                                    bindings=BINDINGS[service])  # the queue, bound, from now
        loops: list[Loop] = [
            Relay(store, publisher, name=service, poll_interval=0.05),
            Inbox(store, subscriber),
            SagaRunner(store, SAGAS[service], name=service, poll_interval=0.05),
        ]
        failures: list[str] = []

        def run(loop: Loop) -> None:
            try:
                loop.run()
            except Exception as error:  # noqa: BLE001 - said on stderr; the others stop too
                failures.append(f"{service}: {type(loop).__name__} stopped: "
                                f"{type(error).__name__}: {error}")
                stop()

        def stop(*_: object) -> None:
            for loop in loops:
                loop.stop()

        signal.signal(signal.SIGTERM, stop)
        threads = [threading.Thread(target=run, args=(loop,), name=type(loop).__name__)
                   for loop in loops]
        for thread in threads:
            thread.start()
        print(f"{service}: running", flush=True)
        for thread in threads:
            thread.join()
        publisher.close()
        subscriber.close()
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{service}: stopped", flush=True)
    return 1 if failures else 0


# --- the walk-through ------------------------------------------------------------------------

ORDERS = [("o-1", "c-1", "ada@example.org", 120), ("o-2", "c-2", "bo@example.org", 900),
          ("o-3", "c-3", "cy@example.org", 75)]
EXPECTED = {"o-1": "completed", "o-2": "compensated", "o-3": "completed"}
ERASED_ORDER, ERASED_CUSTOMER, _, _ = ORDERS[0]


def walk_through(folder: Path, amqp: str) -> int:
    master = MasterKey.generate()
    master.to_file(folder / KEY_FILE)  # readable by its owner only; the children read it
    exchange = f"shop-{secrets.token_hex(6)}"  # this run's own, deleted at the end
    tap_queue = f"{exchange}-tap"
    checks: dict[str, bool] = {}
    with open_store(folder, "orders", master) as orders, \
            open_store(folder, "payments", master) as payments:
        runner = SagaRunner(orders, [Checkout], name="orders")  # the tables, before the
        SagaRunner(payments, [Cashier], name="payments")          # services start
        try:  # everything published from now on also lands in this queue, to look at later
            tap = subscriber_for(amqp, tap_queue, exchange=exchange, bindings=["#"])
        except BrokerUnavailable as error:
            print(f"cannot reach RabbitMQ: {error}", file=sys.stderr)
            return 1
        here = Path(__file__).resolve()
        services = {service: subprocess.Popen(  # noqa: S603 - this script, our own arguments
            [sys.executable, str(here), service, str(folder), amqp, exchange],
            stdout=subprocess.PIPE, text=True) for service in SAGAS}
        try:
            for service, process in services.items():
                line = process.stdout.readline().strip() if process.stdout else ""
                print(line or f"{service}: did not start")
                checks[f"{service} started"] = line == f"{service}: running"
            if all(checks.values()):
                checks.update(_orders_and_erasure(orders, payments, runner, tap))
        finally:
            tap.close()
            for process in services.values():
                process.terminate()  # SIGTERM: each loop ends after the work in hand
            for service, process in services.items():
                try:
                    rest, _ = process.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    rest, _ = process.communicate()
                for line in (rest or "").splitlines():
                    print(line)
                checks[f"{service} exited 0"] = process.returncode == 0
            _delete_from_broker(amqp, exchange, [
                *(inbox_queue(exchange, service) for service in SAGAS), tap_queue])
    failed = [check for check, held in checks.items() if not held]
    print("every order ended as expected" if not failed else f"UNEXPECTED: {failed}")
    return 0 if not failed else 1


def _orders_and_erasure(orders: EventStore, payments: EventStore,
                        runner: SagaRunner, tap: Subscriber) -> dict[str, bool]:
    """Place the orders, wait for their checkouts, erase a customer; what held."""
    checks: dict[str, bool] = {}
    for order, customer, email, amount in ORDERS:
        orders.append(f"order-{order}", [OrderPlaced(
            order_id=order, customer_id=customer, email=email, amount=amount)])
    outcomes = _wait_for_checkouts(runner)
    for order, view in sorted(outcomes.items()):
        print(f"order {order}: {view.status}" + (f" ({view.reason})" if view.reason else ""))
    checks["outcomes"] = {o: v.status for o, v in outcomes.items()} == EXPECTED

    sent = {r.event.order_id: r for r in orders.read_all(types=[ChargeCard])
            if isinstance(r.event, ChargeCard)}
    copies = {r.event.order_id: r for r in payments.read_all(types=[ChargeCard])
              if isinstance(r.event, ChargeCard)}
    same = sorted(copies) == sorted(sent) == sorted(EXPECTED) and all(
        copies[o].event_id == sent[o].event_id and copies[o].event == sent[o].event
        for o in sent)
    print(f"the payments service holds a copy of each ChargeCard ({', '.join(sorted(copies))})"
          + (", the same event under the same id" if same else " that DIFFERS"))
    checks["copies"] = same

    orders.erase_subject(ERASED_CUSTOMER, reason="the customer asked")
    copy = copies.get(ERASED_ORDER)
    if copy is not None:  # read again: the copy, opened with the vault as it is now
        (copy,) = payments.read_stream(copy.stream_id, from_version=copy.version, limit=1)
    redacted = copy is not None and isinstance(copy.event, ChargeCard) \
        and copy.event.email is REDACTED
    print(f"after erasing customer {ERASED_CUSTOMER} in the orders store, the payments "
          f"service's copy of ChargeCard {ERASED_ORDER} reads the e-mail as "
          + ("REDACTED" if redacted else "a value (WRONG)"))
    checks["copy redacted"] = redacted

    bodies = _drain(tap)
    addresses = [email.encode() for _, _, email, _ in ORDERS] + [b"@example.org"]
    clean = bool(bodies) and not any(a in body for body in bodies for a in addresses)
    print(f"the tap queue took {len(bodies)} messages from RabbitMQ: "
          + ("none holds an e-mail address" if clean else "SOME HOLD AN E-MAIL ADDRESS"))
    wanted = sent[ERASED_ORDER].event_id if ERASED_ORDER in sent else None
    charge = next((body for body in bodies if read_message(body).event_id == wanted), None)
    opened = None if charge is None else open_message(orders, charge).event
    tap_redacted = isinstance(opened, ChargeCard) and opened.email is REDACTED
    print(f"the ChargeCard {ERASED_ORDER} message taken from RabbitMQ, opened now, reads the "
          "e-mail as " + ("REDACTED" if tap_redacted else "a value (WRONG)"))
    checks["tap clean"] = clean
    checks["tap redacted"] = tap_redacted
    return checks


def _wait_for_checkouts(runner: SagaRunner, timeout: float = 20.0
                        ) -> dict[str, SagaView[Checkout]]:
    deadline = time.monotonic() + timeout
    while True:
        views = {order: runner.load(Checkout, order) for order in EXPECTED}
        ended = {order: view for order, view in views.items()
                 if view is not None and view.status != "running"}
        if len(ended) == len(EXPECTED) or time.monotonic() > deadline:
            for order in EXPECTED.keys() - ended.keys():
                print(f"order {order}: did not end within {timeout:g} s")
            return ended
        time.sleep(0.1)


def _drain(tap: Subscriber, quiet: float = 1.0) -> list[bytes]:
    """The bodies of the messages in the tap queue, until none came for `quiet` seconds."""
    bodies = []
    while (delivery := tap.receive(quiet)) is not None:
        bodies.append(delivery.body)
        delivery.ack()
    return bodies


def _delete_from_broker(amqp: str, exchange: str, queues: list[str]) -> None:
    """Delete this run's queues and exchange."""
    async def delete() -> None:
        connection = await aio_pika.connect(amqp, timeout=10)
        async with connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            await channel.exchange_delete(exchange)
    try:
        asyncio.run(delete())
    except Exception as error:  # noqa: BLE001 - said, and the run goes on
        print(f"could not delete the exchange {exchange} and its queues "
              f"({type(error).__name__})", file=sys.stderr)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in SAGAS:  # a service's process, started below
        parser = argparse.ArgumentParser(description="one service of the example")
        parser.add_argument("service", choices=sorted(SAGAS))
        parser.add_argument("folder", type=Path)
        parser.add_argument("amqp")
        parser.add_argument("exchange")
        service = parser.parse_args()
        return serve(service.service, service.folder, service.amqp, service.exchange)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp", default=DEFAULT_AMQP, help="the RabbitMQ server")
    parser.add_argument("--folder", type=Path,
                        help="a new folder for the databases and the key (default: temporary)")
    options = parser.parse_args()
    if options.folder is not None:
        options.folder.mkdir(parents=True, exist_ok=True)
        if any(options.folder.iterdir()):
            parser.error("--folder must name a new or empty folder")
        return walk_through(options.folder.resolve(), options.amqp)
    with tempfile.TemporaryDirectory() as folder:
        return walk_through(Path(folder), options.amqp)


if __name__ == "__main__":
    sys.exit(main())
