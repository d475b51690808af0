"""The cost of the per-row authenticator (issue 14, point 2), on SQLite.

What is measured (each case repeated, reported as the median and the range):

``frame``
    `row_content`: the length-prefixed framing of a stored row, which the hash chain needed
    before and which the authenticator shares (µs per row).
``mac compute``
    The framing plus ``HMAC-SHA256`` of it, as an append computes it (µs per row).
``mac check``
    `RowAuthenticator.check` of a stored row, as every read does (µs per row).
``append``
    10,000 events appended in batches of 100, by a store without and with the master key
    (only the latter computes authenticators): seconds, and µs per event.
``read_all``
    `EventStore.read_all()` over those 10,000 events, fully consumed, by a store without and
    with the master key (only the latter checks authenticators).

The events hold no personal data, so both stores do the same work except for the authenticator
(a store without the master key could not append personal data at all). A row is a typical
small event: about 200 bytes of payload and, for the per-row cases, a 200-byte personal column.
Each end-to-end run starts from a new SQLite file (WAL, ``synchronous=FULL``) in a temporary
directory; commits are durable, so the append figures depend on the disk.

Run from the repository root::

    python -m benchmarks.row_authentication              # 10,000 events, 3 repetitions
    python -m benchmarks.row_authentication --quick      # 10x smaller: a smoke run
    python -m benchmarks.row_authentication --json results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import shredstore
from benchmarks.common import progress, render_table
from keyvault import MasterKey
from shredstore import EventStore
from shredstore.storage.authentication import RowAuthenticator
from shredstore.storage.chain import StoredRow, row_content

BATCH = 100
"""Events per append call in the end-to-end case."""


class AccountNoted(shredstore.Event, type_name="bench.AccountNoted"):
    """A typical small domain event without personal data."""

    account_id: str
    plan: str
    note: str
    credit_limit: int
    noted_at: datetime


def _event(n: int) -> AccountNoted:
    return AccountNoted(account_id=f"account-{n % 1000}", plan=("free", "team", "pro")[n % 3],
                        note=f"limit reviewed by the risk desk, ticket {n:08d}",
                        credit_limit=1000 + n % 5000, noted_at=datetime(2024, 1, 1, tzinfo=UTC))


def _row(position: int) -> StoredRow:
    """A stored row of typical size, with a sealed-looking personal column."""
    event = _event(position)
    personal = json.dumps([{"subject": f"c-{position}", "paths": [["name"], ["email"]],
                            "sealed": secrets.token_urlsafe(120)}])
    return StoredRow(position, f"account-{position % 1000}", 1 + position // 1000,
                     uuid.uuid4(), "bench.AccountNoted", 1, datetime.now(UTC), "{}",
                     event.model_dump_json(), personal, b"", b"", f'["c-{position}"]', None)


def _per_row(rows: list[StoredRow], repeat: int) -> dict[str, list[float]]:
    """µs per row for framing, MAC computation and MAC check, `repeat` runs each."""
    authenticator = RowAuthenticator(lambda: secrets.token_bytes(32),
                                     declares_personal=lambda _: True)
    signed = [row._replace(mac=authenticator.sign(row.position, _content(row))) for row in rows]
    cases: dict[str, Callable[[], object]] = {
        "frame": lambda: [_content(row) for row in rows],
        "mac compute": lambda: [authenticator.sign(row.position, _content(row)) for row in rows],
        "mac check": lambda: [authenticator.check(row) for row in signed],
    }
    results: dict[str, list[float]] = {}
    for name, case in cases.items():
        results[name] = []
        for _ in range(repeat):
            start = time.perf_counter()
            case()
            results[name].append((time.perf_counter() - start) / len(rows) * 1e6)
    return results


def _content(row: StoredRow) -> bytes:
    return row_content(stream_id=row.stream_id, version=row.version, event_id=row.event_id,
                       event_type=row.event_type, schema_version=row.schema_version,
                       recorded_at=row.recorded_at, metadata=row.metadata,
                       payload=row.payload, personal=row.personal, subjects=row.subjects)


def _end_to_end(count: int, repeat: int, *, with_key: bool) -> dict[str, list[float]]:
    """Seconds to append `count` events in batches and to read them all, `repeat` runs."""
    events = [_event(n) for n in range(count)]
    batches = [events[i:i + BATCH] for i in range(0, count, BATCH)]
    appended: list[float] = []
    read: list[float] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'events.db'}"
            master = MasterKey.generate() if with_key else None
            with EventStore(url, master_key=master) as store:
                store.append("warm-up", [_event(-1)])  # the service key is made here
                start = time.perf_counter()
                for n, batch in enumerate(batches):
                    store.append(f"account-{n % 100}", batch)
                appended.append(time.perf_counter() - start)
                start = time.perf_counter()
                total = sum(1 for _ in store.read_all())
                read.append(time.perf_counter() - start)
                if total != count + 1:
                    raise SystemExit(f"read {total} events, expected {count + 1}")
    return {"append": appended, "read_all": read}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1,000 events: a smoke run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    count = 1000 if args.quick else 10_000

    progress(f"per-row cases over {count} rows")
    per_row = _per_row([_row(n) for n in range(1, count + 1)], args.repeat)
    progress(f"end to end, {count} events, without the master key")
    without = _end_to_end(count, args.repeat, with_key=False)
    progress(f"end to end, {count} events, with the master key")
    with_key = _end_to_end(count, args.repeat, with_key=True)

    rows = [[name, "µs/row", f"{statistics.median(v):.2f}", f"{min(v):.2f}-{max(v):.2f}"]
            for name, v in per_row.items()]
    for case in ("append", "read_all"):
        for label, runs in (("without key", without[case]), ("with key", with_key[case])):
            median = statistics.median(runs)
            rows.append([f"{case} {count:,} ({label})", "s",
                         f"{median:.3f}", f"{min(runs):.3f}-{max(runs):.3f}"])
            rows.append(["  per event", "µs", f"{median / count * 1e6:.1f}", ""])
    print(f"row authentication on SQLite, Python {platform.python_version()}, "
          f"{args.repeat} run(s) per case")
    print(render_table(["case", "unit", "median", "range"], rows, left=2))
    if args.json:
        args.json.write_text(json.dumps({"events": count, "per_row_us": per_row,
                                         "without_key_s": without, "with_key_s": with_key},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
