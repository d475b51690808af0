"""Consumers against real brokers: every event published twice (two relays), a consumer that
rejects one delivery once, and still each event takes effect once; the erasure ledger's event
makes the consumer forget."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import REDACTED, EventStore
from shredstore.erasure import SubjectErased
from shredstore.projections import IdempotentConsumer
from shredstore.relay import Relay, RelayConsumer, publisher_for, subscriber_for
from tests.relay.test_relay import SECRET_EMAIL, CustomerRegistered, register


@pytest.fixture(params=["rabbitmq", "nats"])
def broker(request: pytest.FixtureRequest, broker_name: str) -> Any:
    if request.param == "rabbitmq":
        url = request.getfixturevalue("amqp_url")
        options = {"exchange": broker_name}
    else:
        url = request.getfixturevalue("nats_url")
        options = {"stream": broker_name.upper(), "prefix": broker_name}
    yield request.param, url, options
    asyncio.run(_cleanup(request.param, url, broker_name))


async def _cleanup(kind: str, url: str, name: str) -> None:
    if kind == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(f"{name}-customers")
            await channel.exchange_delete(name)
        return
    import nats

    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(name.upper())
    finally:
        await client.close()


def test_each_event_takes_effect_once_however_often_it_arrives(
        broker: Any, tmp_path: Path) -> None:
    kind, url, options = broker
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'service.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id TEXT PRIMARY KEY, email TEXT)"))
    subscriber = subscriber_for(url, f"{options.get('prefix', options.get('exchange'))}"
                                     "-customers", **options)
    with EventStore(f"sqlite:///{tmp_path / 'events.db'}",
                    master_key=MasterKey.generate()) as store:
        store.registry.register(CustomerRegistered)
        register(store, 4)
        store.erase_subject("c2")
        publishers = [publisher_for(url, **options) for _ in range(2)]
        try:
            # Two relays of different names: every event is published twice. (JetStream drops
            # the second copy by its Nats-Msg-Id; RabbitMQ delivers both.)
            for name, publisher in zip(("a", "b"), publishers, strict=True):
                assert Relay(store, publisher, name=name).relay_pending() == 5
        finally:
            for publisher in publishers:
                publisher.close()

        rejected: list[str] = []

        def handler(conn: sa.Connection, record: Any) -> None:
            event = record.event
            if isinstance(event, CustomerRegistered):
                if event.customer_id == "c1" and not rejected:
                    rejected.append(event.customer_id)
                    raise RuntimeError("a handler that fails once")
                email = None if event.email is REDACTED else event.email
                conn.execute(sa.text("INSERT INTO customers VALUES (:id, :email)"),
                             {"id": event.customer_id, "email": email})
            elif isinstance(event, SubjectErased):
                conn.execute(sa.text("DELETE FROM customers WHERE id = :id"),
                             {"id": event.subject_id})

        with IdempotentConsumer(engine, "customers") as consumer:
            relay_consumer = RelayConsumer(store, subscriber, consumer, handler)
            deadline = time.monotonic() + 30
            while relay_consumer.handled < 5:
                assert time.monotonic() < deadline, relay_consumer.handled
                with contextlib.suppress(RuntimeError):  # rejected for redelivery: it comes again
                    _run_briefly(relay_consumer)
            _run_briefly(relay_consumer, seconds=1.0)  # the rest: duplicates only
        subscriber.close()
    assert rejected == ["c1"]  # its handler failed once, and the redelivery took effect
    assert relay_consumer.handled == 5
    assert relay_consumer.duplicates == (5 if kind == "rabbitmq" else 0)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, email FROM customers ORDER BY id")).all()
    engine.dispose()
    # c2 was erased before anything was sent: registered without its e-mail, then forgotten.
    assert rows == [("c0", f"0.{SECRET_EMAIL}"), ("c1", f"1.{SECRET_EMAIL}"),
                    ("c3", f"3.{SECRET_EMAIL}")]


def _run_briefly(consumer: RelayConsumer, seconds: float = 0.5) -> None:
    """Run the consumer for about `seconds` (an error in a handler ends it, as in `run`)."""
    timer = threading.Timer(seconds, consumer.stop)
    timer.start()
    try:
        consumer.run(poll=0.1)
    finally:
        timer.cancel()
