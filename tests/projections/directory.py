"""Read models of the projection tests: a customer directory that forgets by deletion, one
that forgets by redaction, and one that forgets nothing (its personal column undeclared)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shredstore import RecordedEvent
from shredstore.projections import Projection, delete_rows, handles, redact_columns
from tests.shredding.events import CustomerRegistered, PaymentSent

metadata = sa.MetaData()

directory = sa.Table(
    "test_directory", metadata,
    sa.Column("customer_id", sa.String(50), primary_key=True),
    sa.Column("name", sa.String(200), info={"personal": True}),
    sa.Column("email", sa.String(200), info={"personal": True}),
    sa.Column("credit_limit", sa.Integer, nullable=False),
    sa.Column("payments", sa.Integer, nullable=False, default=0),
)

redacted_directory = sa.Table(
    "test_redacted_directory", metadata,
    sa.Column("customer_id", sa.String(50), primary_key=True),
    sa.Column("name", sa.String(200), info={"personal": True, "replacement": "(erased)"}),
    sa.Column("email", sa.String(200), info={"personal": True}),
)

careless = sa.Table(
    "test_careless_mailing_list", metadata,
    sa.Column("customer_id", sa.String(50), primary_key=True),
    sa.Column("address", sa.String(200)),  # an email address, not declared personal
)


class CustomerDirectory(Projection):
    name = "test-directory"
    tables = (directory,)

    @handles(CustomerRegistered)
    def registered(self, conn: Connection, record: RecordedEvent) -> None:
        event: Any = record.event
        conn.execute(directory.insert().values(
            customer_id=event.customer_id, name=event.name, email=event.email,
            credit_limit=event.credit_limit, payments=0))

    @handles(PaymentSent)
    def paid(self, conn: Connection, record: RecordedEvent) -> None:
        event: Any = record.event
        conn.execute(directory.update().where(directory.c.customer_id == event.payer_id)
                     .values(payments=directory.c.payments + 1))

    def forget(self, conn: Connection, subject_id: str) -> None:
        delete_rows(conn, directory, "customer_id", subject_id)


class RedactingDirectory(Projection):
    name = "test-redacting-directory"
    tables = (redacted_directory,)

    @handles(CustomerRegistered)
    def registered(self, conn: Connection, record: RecordedEvent) -> None:
        event: Any = record.event
        conn.execute(redacted_directory.insert().values(
            customer_id=event.customer_id, name=event.name, email=event.email))

    def forget(self, conn: Connection, subject_id: str) -> None:
        redact_columns(conn, redacted_directory, "customer_id", subject_id)


class CarelessMailingList(Projection):
    """Keeps email addresses in a column it does not mark personal, and never forgets."""

    name = "test-careless-mailing-list"
    tables = (careless,)

    @handles(CustomerRegistered)
    def registered(self, conn: Connection, record: RecordedEvent) -> None:
        event: Any = record.event
        conn.execute(careless.insert().values(customer_id=event.customer_id,
                                              address=event.email))


def rows(url_or_engine: Any, table: sa.Table) -> list[dict[str, Any]]:
    engine = sa.create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(
                sa.select(table).order_by(*table.primary_key.columns))]
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
