"""A customer directory read model that forgets: the whole read-side pattern in one file.

    python examples/customer_directory.py [--url sqlite:///directory.db]

1. Events with personal data are appended (names and emails sealed per customer).
2. A projection keeps a ``customers`` table (name and email marked personal) and an
   ``orders_by_customer`` count; a runner applies the log in a background thread, each batch
   with its checkpoint in one transaction.
3. An idempotent consumer "sends" a welcome email per registration through an outbox table, so
   a redelivered event sends nothing twice.
4. A customer is erased with the residue check: the projection deletes the customer's row when
   the erasure ledger's SubjectErased reaches it, the check scans the read-model tables for
   fingerprints of the customer's values and finds none. The receipt says so.
5. A rebuild from the start yields the same directory: the erased customer's events read as
   redacted, so nothing of them comes back.

Without --url it works in a temporary folder, which is removed at the end. The values are
invented; the output masks them anyway.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keyvault import MasterKey
from shredstore import Event, EventStore, PersonalData, RecordedEvent, SubjectId
from shredstore.projections import (
    IdempotentConsumer,
    Projection,
    ProjectionRunner,
    Subscription,
    delete_rows,
    handles,
)

# --- the domain's events ----------------------------------------------------------------------


class CustomerRegistered(Event, type_name="example.CustomerRegistered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData(replacement="erased@invalid")]


class OrderPlaced(Event, type_name="example.OrderPlaced"):
    customer_id: SubjectId
    order_id: str
    total_cents: int


# --- the read model -----------------------------------------------------------------------------

metadata = sa.MetaData()
customers = sa.Table(
    "example_customers", metadata,
    sa.Column("customer_id", sa.String(50), primary_key=True),
    sa.Column("name", sa.String(200), info={"personal": True}),
    sa.Column("email", sa.String(200), info={"personal": True}),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("spent_cents", sa.Integer, nullable=False),
)
outbox = sa.Table(
    "example_outbox", metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(50), nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
)


class CustomerDirectory(Projection):
    """Who the customers are, and how much they ordered."""

    name = "example-customer-directory"
    tables = (customers,)

    @handles(CustomerRegistered)
    def registered(self, conn: Connection, record: RecordedEvent) -> None:
        event: Any = record.event
        conn.execute(customers.insert().values(customer_id=event.customer_id, name=event.name,
                                               email=event.email, orders=0, spent_cents=0))

    @handles(OrderPlaced)
    def ordered(self, conn: Connection, record: RecordedEvent) -> None:
        event: Any = record.event
        conn.execute(customers.update().where(customers.c.customer_id == event.customer_id)
                     .values(orders=customers.c.orders + 1,
                             spent_cents=customers.c.spent_cents + event.total_cents))

    def forget(self, conn: Connection, subject_id: str) -> None:
        delete_rows(conn, customers, "customer_id", subject_id)


# --- the walk-through ---------------------------------------------------------------------------


def masked(text: str) -> str:
    return text[:1] + "\u2022" * 5


def show(engine: sa.Engine, title: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(
            sa.select(customers.c.customer_id, customers.c.name, customers.c.email,
                      customers.c.orders).order_by(customers.c.customer_id))]
    print(f"{title}:")
    for customer_id, name, email, orders in rows:
        print(f"  {customer_id}  {masked(name):8} {masked(email):8} {orders} order(s)")
    return rows


def wait_for(runner: ProjectionRunner, position: int) -> None:
    deadline = time.monotonic() + 30
    while min(runner.positions().values()) < position:
        if time.monotonic() > deadline:
            raise SystemExit("the projection did not catch up")
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="the store's database (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shredstore-example-") as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'shop.db'}"
        with EventStore(url, master_key=MasterKey.generate()) as store:
            return walk_through(store)


def walk_through(store: EventStore) -> int:
    people = {"c-1": ("Ada Example", "ada@example.com"), "c-2": ("Bo Example", "bo@example.com"),
              "c-3": ("Cy Example", "cy@example.com")}
    for customer_id, (name, email) in people.items():
        store.append(f"customer-{customer_id}", [CustomerRegistered(
            customer_id=customer_id, name=name, email=email)])
    for n, customer_id in enumerate(["c-1", "c-2", "c-2", "c-3"], start=1):
        store.append(f"order-{n}", [OrderPlaced(customer_id=customer_id, order_id=f"o-{n}",
                                                total_cents=1000 * n)])

    runner = ProjectionRunner(store, [CustomerDirectory()], poll_interval=0.05)
    runner.start()  # as a service would run it; a process: runner.run(handle_signals=True)
    try:
        wait_for(runner, store.head().position)
        show(store._engine, "directory")

        # A welcome email per registration, once, even if the events come again.
        with IdempotentConsumer(store._engine, "example-welcome-mail") as mailer:
            outbox.create(store._engine, checkfirst=True)

            def enqueue(conn: Connection, record: RecordedEvent) -> None:
                event: Any = record.event
                conn.execute(outbox.insert().values(event_id=str(record.event_id),
                                                    customer_id=event.customer_id,
                                                    kind="welcome"))

            registrations = list(Subscription(store, types=[CustomerRegistered], live=False))
            sent = sum(mailer.handle(record, enqueue) for record in registrations * 2)
            print(f"welcome emails queued: {sent} for {len(registrations) * 2} deliveries")

        receipt = store.erase_subject("c-2", request_id="REQ-1", verify_residue=True)
        residue = receipt.residue.to_dict() if receipt.residue is not None else {}
        print(f"erased c-2: residue check {residue['result']} "
              f"({', '.join(residue['read_models'])}; "
              f"{residue['values_looked_for']} value(s) looked for)")
        after = show(store._engine, "directory after the erasure")
    finally:
        runner.stop()
        runner.join(10)
    replayed = runner.rebuild(CustomerDirectory.name)
    rebuilt = show(store._engine, f"directory rebuilt from the log ({replayed} events replayed)")
    runner.close()
    ok = receipt.ok and rebuilt == after and all(row[0] != "c-2" for row in rebuilt)
    print("the erased customer is in no read model" if ok else "RESIDUE FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
