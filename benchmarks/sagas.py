"""Sagas completed per second: one runner, two competing runners, two partitioned runners.

Each saga takes two steps (an order starts it and asks for a payment; the payment completes
it and sends a receipt), with a customer's e-mail address sealed in its state and in the
receipt. The orders and payments are appended first (untimed); then the runner processes are
started together and timed until every saga is completed: one runner; two that compete for
every saga (different names); two that divide the sagas between them (partitions 0 and 1 of
2). Every step is checked afterwards: each saga
took exactly two steps, each receipt was sent once.

Run from the repository root::

    python -m benchmarks.sagas                  # 500 sagas, SQLite and PostgreSQL
    python -m benchmarks.sagas --quick          # 100 sagas
    python -m benchmarks.sagas --backend sqlite --sagas 2000 --json results.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from typing import Annotated, Any

import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import REDACTED, Event, EventStore, PersonalData, SubjectId
from shredstore.sagas import Saga, SagaRunner, Step, handles

from .common import DEFAULT_POSTGRES_URL


class Ordered(Event, type_name="bench.sagas.Ordered"):
    order_id: str
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]


class Paid(Event, type_name="bench.sagas.Paid"):
    order_id: str


class PaymentAsked(Event, type_name="bench.sagas.PaymentAsked"):
    order_id: str


class Receipt(Event, type_name="bench.sagas.Receipt"):
    order_id: str
    customer_id: SubjectId
    to: Annotated[str, PersonalData(subject="customer_id")]


class Purchase(Saga, name="benchpurchase"):
    customer_id: SubjectId = ""
    email: Annotated[str, PersonalData(subject="customer_id")] = ""

    @handles(Ordered, correlate="order_id", start=True)
    def ordered(self, event: Ordered, step: Step) -> None:
        self.customer_id, self.email = event.customer_id, event.email
        step.emit(f"pay-{self.id}", PaymentAsked(order_id=self.id))

    @handles(Paid, correlate="order_id")
    def paid(self, event: Paid, step: Step) -> None:
        if self.email is not REDACTED:
            step.emit(f"mail-{self.id}", Receipt(order_id=self.id, customer_id=self.customer_id,
                                                 to=self.email))
        step.complete()


def fill(url: str, master: MasterKey, count: int) -> None:
    with EventStore(url, master_key=master) as store:
        SagaRunner(store, [Purchase])
        for start in range(0, count, 100):
            store.append(f"orders-{start}", [
                Ordered(order_id=str(n), customer_id=f"c{n}", email=f"c{n}@example.org")
                for n in range(start, min(start + 100, count))])
        for start in range(0, count, 100):
            store.append(f"payments-{start}", [Paid(order_id=str(n))
                                               for n in range(start, min(start + 100, count))])


def run_one(url: str, master: str, name: str, index: str, count: str) -> int:
    """A runner process (partition `index` of `count`): catch up with everything there, then
    exit."""
    with EventStore(url, master_key=MasterKey.from_base64(master)) as store:
        runner = SagaRunner(store, [Purchase], name=name, partition=(int(index), int(count)))
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
        return runner.catch_up()


def timed(url: str, master: MasterKey, runners: int, *, partitioned: bool) -> float:
    """Seconds from the runners' start to the last one's end: `runners` processes that
    compete for every saga, or that divide them (`partitioned`)."""
    children = [subprocess.Popen([sys.executable, "-m", "benchmarks.sagas", "--child", url,
                                  master.to_base64(), f"r{n}", str(n if partitioned else 0),
                                  str(runners if partitioned else 1)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for n in range(runners)]
    for child in children:
        assert child.stdout is not None
        child.stdout.readline()
    started = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        if child.wait(timeout=3600) != 0:
            raise SystemExit(f"a runner failed (exit {child.returncode})")
    return time.perf_counter() - started


def check(url: str, master: MasterKey, count: int) -> None:
    with EventStore(url, master_key=master) as store:
        records = list(store.read_all())
    steps = Counter(r.stream_id for r in records if r.stream_id.startswith("saga-"))
    receipts = Counter(r.stream_id for r in records if isinstance(r.event, Receipt))
    if set(steps.values()) != {2} or len(steps) != count or len(receipts) != count \
            or set(receipts.values()) != {1}:
        raise SystemExit("a saga took a step twice or missed one")


def locations(backend: str, postgres_url: str) -> Any:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/sagas.db"
        return
    schema = f"bench_sagas_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--sagas", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="100 sagas")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--json", help="write the figures to this file too")
    options = parser.parse_args(argv)
    if options.child:
        run_one(*options.child)
        return 0
    count = 100 if options.quick else options.sagas
    backends = ("sqlite", "postgres") if options.backend == "all" else (options.backend,)
    results = []
    for backend in backends:
        for runners, partitioned, how in ((1, False, "1 runner"),
                                          (2, False, "2 competing runners"),
                                          (2, True, "2 partitioned runners")):
            for url in locations(backend, options.postgres_url):
                master = MasterKey.generate()
                fill(url, master, count)
                seconds = timed(url, master, runners, partitioned=partitioned)
                check(url, master, count)
            rate = count / seconds
            results.append({"backend": backend, "runners": runners, "partitioned": partitioned,
                            "sagas": count, "seconds": round(seconds, 3),
                            "sagas_per_s": round(rate, 1)})
            print(f"{backend:<9} {how:<22}: {count} sagas (2 steps each) in "
                  f"{seconds:6.2f} s: {rate:7.1f} sagas/s", flush=True)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
