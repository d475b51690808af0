"""Chaos: a relay killed mid-stream and the broker restarted mid-stream, with real processes
and real servers. Afterwards every event arrived at least once, each stream in order (first
deliveries), no personal value's bytes are in any message body taken from the broker, and an
erased subject's messages read as redacted when opened."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest

from keyvault import MasterKey
from shredstore import NO_STREAM, REDACTED, Event, EventStore, PersonalData, SubjectId
from shredstore.errors import BrokerUnavailable
from shredstore.relay import Delivery, Subscriber, open_message, read_message, subscriber_for
from tests.processes import Child
from tests.relay.conftest import wait_for_port

pytestmark = [pytest.mark.processes, pytest.mark.restarts_brokers]

STREAMS = 12
EVENTS_PER_STREAM = 15


class PatientAdmitted(Event, type_name="test.chaos.PatientAdmitted"):
    patient_id: SubjectId
    name: Annotated[str, PersonalData(subject="patient_id")]
    ward: str


def secret_name(stream: int, version: int) -> str:
    return f"Zelda Quixote-{stream:02d}-{version:02d}"


class Broker:
    """One broker's options, subscriber and restart for the test."""

    def __init__(self, kind: str, url: str, name: str) -> None:
        self.kind = kind
        self.url = url
        self.name = name
        if kind == "rabbitmq":
            self.options: dict[str, Any] = {"exchange": name}
            self.subscriber_options: dict[str, Any] = {"exchange": name}
        else:
            self.options = {"stream": name.upper(), "prefix": name}
            self.subscriber_options = {"stream": name.upper(), "prefix": name}

    def subscriber(self) -> Subscriber:
        return subscriber_for(self.url, f"{self.name}-audit", **self.subscriber_options)

    def stop(self) -> None:
        if self.kind == "rabbitmq":
            subprocess.run([tool("rabbitmqctl"), "-q", "stop_app"], check=True, timeout=120,
                           capture_output=True)
        else:
            stop_nats()

    def start(self) -> None:
        if self.kind == "rabbitmq":
            subprocess.run([tool("rabbitmqctl"), "-q", "start_app"], check=True, timeout=120,
                           capture_output=True)
            wait_for_port(5672)
        else:
            start_nats()

    def cleanup(self) -> None:
        if self.kind == "rabbitmq":
            asyncio.run(_delete_rabbitmq(self.url, self.name, [f"{self.name}-audit"]))
        else:
            asyncio.run(_delete_nats(self.url, self.name.upper()))


def tool(name: str) -> str:
    """The full path of a command the broker restarts need (a missing one fails the test)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: the chaos test restarts the brokers with it")
    return path


def stop_nats() -> None:
    """Stop the NATS server (JetStream's files are kept)."""
    found = subprocess.run([tool("pgrep"), "-x", "nats-server"], capture_output=True, text=True,
                           check=False)
    for pid in found.stdout.split():
        os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while subprocess.run([tool("pgrep"), "-x", "nats-server"], capture_output=True,
                         check=False).returncode == 0:
        assert time.monotonic() < deadline, "nats-server did not stop"
        time.sleep(0.05)


def start_nats() -> None:
    """Start the NATS server as the machine does."""
    subprocess.run([tool("start-stop-daemon"), "--start", "--oknodo", "--background", "--exec",
                    "/usr/sbin/nats-server", "--", "-a", "127.0.0.1", "-p", "4222", "-js",
                    "-sd", "/var/lib/nats-server", "-l", "/var/log/nats-server.log"],
                   check=True, timeout=30)
    wait_for_port(4222)


async def _delete_rabbitmq(url: str, exchange: str, queues: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


async def _delete_nats(url: str, stream: str) -> None:
    import nats

    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


@pytest.fixture(params=["rabbitmq", "nats"])
def broker(request: pytest.FixtureRequest, broker_name: str) -> Iterator[Broker]:
    url: str = request.getfixturevalue("amqp_url" if request.param == "rabbitmq" else "nats_url")
    chosen = Broker(request.param, url, broker_name)
    try:
        yield chosen
    finally:
        chosen.cleanup()


def start_relay(url: str, broker: Broker, master: MasterKey) -> Child:
    child = Child("tests.relay._workers", url, broker.url, json.dumps(broker.options),
                  name="relay")
    child.send(master.to_base64())
    assert child.message(time.monotonic() + 30)["ready"]
    return child


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def relayed(store: EventStore) -> int:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        found = conn.execute(sa.text("SELECT position FROM shredstore_relays")).scalar()
    return int(found or 0)


def drain(broker: Broker, count: int) -> list[bytes]:
    """Every message the broker holds for the test's consumer (at least `count`)."""
    bodies: list[bytes] = []
    deadline = time.monotonic() + 60
    subscriber = broker.subscriber()
    try:
        while True:
            try:
                delivery: Delivery | None = subscriber.receive(1.5)
            except BrokerUnavailable:
                assert time.monotonic() < deadline, "the broker stayed unreachable"
                subscriber.close()
                time.sleep(0.2)
                subscriber = broker.subscriber()
                continue
            if delivery is None:
                if len(bodies) >= count:
                    return bodies
                assert time.monotonic() < deadline, f"received {len(bodies)} of {count}"
                continue
            bodies.append(delivery.body)
            delivery.ack()
    finally:
        subscriber.close()


def test_a_killed_relay_and_a_restarted_broker_lose_and_reorder_nothing(
        broker: Broker, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    master = MasterKey.generate()
    broker.subscriber().close()  # the queue or durable consumer exists before any publish
    with EventStore(url, master_key=master) as store:
        store.registry.register(PatientAdmitted)
        total = STREAMS * EVENTS_PER_STREAM
        broker_down, broker_up, written = (threading.Event() for _ in range(3))

        def write() -> None:
            for version in range(1, EVENTS_PER_STREAM + 1):
                if version == 6:  # a third before the broker goes down, a third while it is
                    broker_down.wait(120)
                elif version == 11:
                    broker_up.wait(120)
                for stream in range(STREAMS):
                    store.append(f"patient-{stream}", [PatientAdmitted(
                        patient_id=f"p{stream}", name=secret_name(stream, version),
                        ward="cardiology")],
                        expected_version=NO_STREAM if version == 1 else version - 1)
                time.sleep(0.02)
            written.set()

        writer = threading.Thread(target=write)
        writer.start()
        first = start_relay(url, broker, master)
        try:
            wait_until(lambda: relayed(store) >= 24, 60, "the first relay published")
            first.kill()  # mid-stream: SIGKILL
            second = start_relay(url, broker, master)
            try:
                wait_until(lambda: relayed(store) >= 60, 60, "the second relay took over")
                broker.stop()
                broker_down.set()  # events are appended while the broker is down ...
                wait_until(lambda: store.head().position >= 120, 60, "events were appended")
                time.sleep(1.0)  # ... and the relay fails to publish them, and retries
                broker.start()
                broker_up.set()
                writer.join(120)
                assert written.is_set()
                wait_until(lambda: relayed(store) >= total, 120, "every event was relayed")
            finally:
                broker_down.set()
                broker_up.set()
                second.proc.send_signal(signal.SIGTERM)
                second.wait_exit(time.monotonic() + 30)
            # Publishes failed while the broker was down, and were retried.
            assert "to send again" in second.describe()
        finally:
            first.kill()
            writer.join(120)
        bodies = drain(broker, total)

        # No personal value's bytes in any message body.
        for stream in range(STREAMS):
            for version in range(1, EVENTS_PER_STREAM + 1):
                secret = secret_name(stream, version).encode()
                assert not any(secret in body for body in bodies)
        assert not any(b"Quixote" in body for body in bodies)

        # Every event at least once; each stream's first deliveries in order.
        rows = [read_message(body) for body in bodies]
        assert {row.position for row in rows} == set(range(1, total + 1))
        first_seen: dict[str, list[int]] = {}
        seen: set[int] = set()
        for row in rows:
            if row.position not in seen:
                seen.add(row.position)
                first_seen.setdefault(row.stream_id, []).append(row.version)
        assert all(versions == list(range(1, EVENTS_PER_STREAM + 1))
                   for versions in first_seen.values()), first_seen
        assert len(first_seen) == STREAMS

        # An erased subject's copies read as redacted; the others open.
        store.erase_subject("p3")
        for body, row in zip(bodies[:60], rows[:60], strict=True):
            record = open_message(store, body)
            assert isinstance(record.event, PatientAdmitted)
            if row.stream_id == "patient-3":
                assert record.event.name is REDACTED
            else:
                assert record.event.name == secret_name(int(row.stream_id[8:]), row.version)
