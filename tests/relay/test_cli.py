"""`shredstore relay`, in process, against NATS JetStream and RabbitMQ: what the log holds is
published once and the checkpoint kept; bad options are usage errors; nothing personal and no
broker password is printed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import NO_STREAM, EventStore
from shredstore.relay import read_message, subscriber_for
from tests.cli.runner import shredstore
from tests.relay.conftest import free_port
from tests.relay.test_relay import SECRET_EMAIL, CustomerRegistered


def fill(url: str, master: Path, count: int) -> None:
    with EventStore(url, master_key=MasterKey.from_file(master)) as store:
        store.registry.register(CustomerRegistered)
        for n in range(count):
            store.append(f"customer-{n}", [CustomerRegistered(
                customer_id=f"c{n}", email=f"{n}.{SECRET_EMAIL}", plan="basic")],
                expected_version=NO_STREAM)


async def _delete_stream(url: str, stream: str) -> None:
    import nats

    client = await nats.connect(url)
    try:
        await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


def test_relay_once_publishes_what_the_log_holds_once(
        sqlite_url: str, master_file: Path, nats_url: str, broker_name: str) -> None:
    fill(sqlite_url, master_file, 4)
    stream = broker_name.upper()
    subscriber = subscriber_for(nats_url, "cli", stream=stream, prefix=broker_name)
    try:
        args = ("relay", "--to", nats_url, "--stream", stream, "--subject-prefix", broker_name,
                "--once", "--json")
        first = shredstore(*args, url=sqlite_url, master=master_file)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout) == {"relay": "default", "to": nats_url,
                                            "published": 4, "retries": 0, "position": 4}
        again = shredstore(*args, url=sqlite_url, master=master_file)
        assert json.loads(again.stdout)["published"] == 0  # the checkpoint held
        bodies = []
        while (delivery := subscriber.receive(1.0)) is not None:
            bodies.append(delivery.body)
            delivery.ack()
        assert [read_message(body).position for body in bodies] == [1, 2, 3, 4]
        assert not any(SECRET_EMAIL.encode() in body for body in bodies)
        assert SECRET_EMAIL not in first.stdout + first.stderr
        text = shredstore("relay", "--to", nats_url, "--stream", stream, "--subject-prefix",
                          broker_name, "--once", "--name", "audit", url=sqlite_url)
        assert text.returncode == 0, text.stderr  # no master key needed: nothing is opened
        assert text.stdout.strip() == f"relayed 4 event(s) to {nats_url}; checkpoint 4"
    finally:
        subscriber.close()
        asyncio.run(_delete_stream(nats_url, stream))


def test_a_broker_that_is_down_is_given_up_on_by_once(
        sqlite_url: str, master_file: Path) -> None:
    fill(sqlite_url, master_file, 1)
    down = f"amqp://guest:hunter2@127.0.0.1:{free_port()}/"
    ran = shredstore("relay", "--to", down, "--once", "--retry-for", "1", url=sqlite_url,
                     master=master_file)
    assert ran.returncode == 1
    assert "127.0.0.1" in ran.stderr
    assert "hunter2" not in ran.stdout + ran.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("relay",), "Missing option '--to'"),
    (("relay", "--to", "http://127.0.0.1:5672/"), "amqp://"),
    (("relay", "--to", "nats://127.0.0.1:4222", "--batch-size", "0"), "batch-size"),
])
def test_bad_options_are_usage_errors(sqlite_url: str, args: tuple[str, ...],
                                      message: str) -> None:
    ran = shredstore(*args, url=sqlite_url)
    assert ran.returncode == 2
    assert message in ran.stderr
