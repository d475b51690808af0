"""`AsyncEventStore` against `EventStore`: the cost of the hop to a worker thread.

Three cases, each on a fresh store, events with a sealed personal field:

- **single appends**: N appends of one event, one after the other (a request at a time);
- **concurrent appends**: the same N appends, 16 at a time (`asyncio.gather`; for the
  synchronous store, 16 threads), as a busy service has them;
- **read_all**: reading N events back (decrypted and validated).

Run from the repository root::

    python -m benchmarks.async_store                   # SQLite and PostgreSQL
    python -m benchmarks.async_store --backend sqlite --events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from keyvault import MasterKey
from shredstore import AsyncEventStore, Event, EventStore, PersonalData, SubjectId

from .common import DEFAULT_POSTGRES_URL
from .sagas import locations

CONCURRENCY = 16


class Joined(Event, type_name="bench.aio.Joined"):
    member_id: SubjectId
    email: Annotated[str, PersonalData(subject="member_id")]


def event(n: int) -> Joined:
    return Joined(member_id=f"m{n % 100}", email=f"{n}@example.org")


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def sync_case(url: str, master: MasterKey, count: int) -> dict[str, float]:
    results: dict[str, float] = {}
    with EventStore(url, master_key=master) as store:
        store.registry.register(Joined)
        results["single"] = count / timed(lambda: [
            store.append(f"s-{n}", [event(n)]) for n in range(count)])
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            results["concurrent"] = count / timed(lambda: list(pool.map(
                lambda n: store.append(f"c-{n}", [event(n)]), range(count))))
        results["read_all"] = 2 * count / timed(lambda: sum(1 for _ in store.read_all()))
    return results


def async_case(url: str, master: MasterKey, count: int) -> dict[str, float]:
    async def run() -> dict[str, float]:
        results: dict[str, float] = {}
        async with AsyncEventStore(url, master_key=master) as store:
            store.registry.register(Joined)
            started = time.perf_counter()
            for n in range(count):
                await store.append(f"s-{n}", [event(n)])
            results["single"] = count / (time.perf_counter() - started)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(n: int) -> None:
                async with gate:
                    await store.append(f"c-{n}", [event(n)])

            started = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(count)))
            results["concurrent"] = count / (time.perf_counter() - started)
            started = time.perf_counter()
            read = 0
            async for _ in store.read_all():
                read += 1
            results["read_all"] = read / (time.perf_counter() - started)
        return results

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--json", help="write the figures to this file too")
    options = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if options.backend == "all" else [options.backend]
    rows: list[dict[str, Any]] = []
    print(f"{'backend':<10} {'case':<12} {'sync /s':>10} {'async /s':>10} {'async/sync':>10}")
    for backend in backends:
        master = MasterKey.generate()
        for url in locations(backend, options.postgres_url):
            sync = sync_case(url, master, options.events)
        for url in locations(backend, options.postgres_url):
            awaited = async_case(url, master, options.events)
        for case in ("single", "concurrent", "read_all"):
            rows.append({"backend": backend, "case": case, "sync": sync[case],
                         "async": awaited[case]})
            print(f"{backend:<10} {case:<12} {sync[case]:>10,.0f} {awaited[case]:>10,.0f} "
                  f"{awaited[case] / sync[case]:>10.2f}", flush=True)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
