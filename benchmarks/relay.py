"""The relay's figures: events per second relayed to each broker, and latency from append to
consumer (p50 and p99).

- **Throughput.** A log of N events (each with a personal field, sealed) is written first,
  untimed; then one `Relay.relay_pending()` publishes all of them, with the broker's
  confirmation of every batch (RabbitMQ publisher confirms, JetStream acknowledgements), and
  is timed (wall and CPU).
- **Latency.** A relay runs in a process of its own (default settings: on SQLite it polls,
  backing off from 10 ms to 0.5 s while the log is quiet; on PostgreSQL an append's NOTIFY
  wakes it). This process appends one event at a time at a steady rate, and a consumer
  thread receives them from the broker: the time from the start of the append to the
  consumer's receipt, per event.

Run from the repository root (RabbitMQ on 127.0.0.1:5672 and NATS on 127.0.0.1:4222)::

    python -m benchmarks.relay                   # SQLite and PostgreSQL, both brokers
    python -m benchmarks.relay --quick --backend sqlite --broker nats
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from keyvault import MasterKey
from shredstore import Event, EventStore, PersonalData, SubjectId
from shredstore.relay import Relay, publisher_for, read_message, subscriber_for

from .common import DEFAULT_POSTGRES_URL
from .sagas import locations

BROKERS = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672/", "nats": "nats://127.0.0.1:4222"}


class Registered(Event, type_name="bench.relay.Registered"):
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]
    plan: str


def options(broker: str, name: str) -> dict[str, Any]:
    return {"exchange": name} if broker == "rabbitmq" else {"stream": name.upper(),
                                                            "prefix": name}


def throughput(url: str, master: MasterKey, broker: str, count: int) -> dict[str, float]:
    name = f"bench{uuid.uuid4().hex[:8]}"
    with EventStore(url, master_key=master) as store:
        store.registry.register(Registered)
        for start in range(0, count, 500):
            for n in range(start, min(count, start + 500)):
                store.append(f"customer-{n % 200}", [Registered(
                    customer_id=f"c{n % 200}", email=f"c{n}@example.org", plan="basic")])
        publisher = publisher_for(BROKERS[broker], **options(broker, name))
        try:
            relay = Relay(store, publisher, name=name)
            publisher.publish([])  # connected (and declared) before the clock starts
            wall, cpu = time.perf_counter(), time.process_time()
            published = relay.relay_pending()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            publisher.close()
            cleanup(broker, name, [])
    assert published == count, (published, count)
    return {"events_per_s": count / wall, "cpu_us_per_event": cpu / count * 1e6}


def relay_child(url: str, master: str, broker: str, name: str) -> int:
    """The latency case's relay: runs until its stdin closes."""
    publisher = publisher_for(BROKERS[broker], **options(broker, name))
    with EventStore(url, master_key=MasterKey.from_base64(master)) as store:
        relay = Relay(store, publisher, name=name)
        threading.Thread(target=lambda: (sys.stdin.read(), relay.stop()), daemon=True).start()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        relay.run()
    publisher.close()
    return 0


def latency(url: str, master: MasterKey, broker: str, count: int, rate: float
            ) -> dict[str, float]:
    name = f"bench{uuid.uuid4().hex[:8]}"
    queue = f"{name}-latency"
    subscriber = subscriber_for(BROKERS[broker], queue, **options(broker, name))
    received: dict[str, float] = {}
    done = threading.Event()

    def consume() -> None:
        while not done.is_set():
            delivery = subscriber.receive(0.2)
            if delivery is None:
                continue
            received[str(read_message(delivery.body).event_id)] = time.perf_counter()
            delivery.ack()
            if len(received) >= count:
                done.set()

    with EventStore(url, master_key=master) as store:
        store.registry.register(Registered)
        store.append("warm-up", [Registered(customer_id="w", email="w@example.org",
                                            plan="basic")])
        child = subprocess.Popen([sys.executable, "-m", "benchmarks.relay", "--child", url,
                                  master.to_base64(), broker, name],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        child.stdout.readline()
        consumer = threading.Thread(target=consume)
        consumer.start()
        time.sleep(1.0)  # the warm-up event relayed: the relay is connected
        received.clear()
        sent: dict[str, float] = {}
        started = time.perf_counter()
        for n in range(count):
            event = Registered(customer_id=f"c{n % 50}", email=f"c{n}@example.org",
                               plan="basic")
            sent[str(event.event_id)] = time.perf_counter()
            store.append(f"customer-{n % 50}", [event])
            pause = started + (n + 1) / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        done.wait(120)
        done.set()
        consumer.join()
        assert child.stdin is not None
        child.stdin.close()
        child.wait(60)
    subscriber.close()
    cleanup(broker, name, [queue])
    delays = sorted((received[key] - sent[key]) * 1000 for key in sent if key in received)
    if len(delays) < count:
        raise SystemExit(f"only {len(delays)} of {count} events reached the consumer")
    return {"p50_ms": statistics.median(delays),
            "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))]}


def cleanup(broker: str, name: str, queues: list[str]) -> None:
    asyncio.run(_cleanup(broker, name, queues))


async def _cleanup(broker: str, name: str, queues: list[str]) -> None:
    if broker == "rabbitmq":
        import aio_pika

        connection = await aio_pika.connect(BROKERS[broker])
        async with connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            await channel.exchange_delete(name)
        return
    import nats

    client = await nats.connect(BROKERS[broker])
    try:
        await client.jetstream().delete_stream(name.upper())
    finally:
        await client.close()


def run(backends: list[str], brokers: list[str], *, count: int, latency_count: int,
        rate: float, postgres_url: str) -> Iterator[dict[str, Any]]:
    for backend in backends:
        for broker in brokers:
            master = MasterKey.generate()
            for url in locations(backend, postgres_url):
                figures = throughput(url, master, broker, count)
            for url in locations(backend, postgres_url):
                figures |= latency(url, master, broker, latency_count, rate)
            yield {"backend": backend, "broker": broker, "events": count, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--broker", choices=("rabbitmq", "nats", "all"), default="all")
    parser.add_argument("--events", type=int, default=10_000, help="events relayed (throughput)")
    parser.add_argument("--latency-events", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200.0, help="appends per second (latency)")
    parser.add_argument("--quick", action="store_true", help="2,000 events; 300 for latency")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--json", help="write the figures to this file too")
    options_ = parser.parse_args(argv)
    if options_.child:
        return relay_child(*options_.child)
    backends = ["sqlite", "postgres"] if options_.backend == "all" else [options_.backend]
    brokers = list(BROKERS) if options_.broker == "all" else [options_.broker]
    count, latency_count = ((2_000, 300) if options_.quick
                            else (options_.events, options_.latency_events))
    results = []
    print(f"{'backend':<10} {'broker':<9} {'events/s':>10} {'CPU us/ev':>10} "
          f"{'p50 ms':>8} {'p99 ms':>8}")
    for row in run(backends, brokers, count=count, latency_count=latency_count,
                   rate=options_.rate, postgres_url=options_.postgres_url):
        results.append(row)
        print(f"{row['backend']:<10} {row['broker']:<9} {row['events_per_s']:>10,.0f} "
              f"{row['cpu_us_per_event']:>10.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}",
              flush=True)
    if options_.json:
        with open(options_.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
