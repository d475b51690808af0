"""CPU cost of turning events into stored rows (the append's mapping step), per event.

What is measured: `EventMapper.to_rows` over a batch of 1,000 events, no database write: the
dump, the split of personal values (pydantic's traversal with placeholders), the read-back
check (parse and validate what will be stored), and sealing (AES-256-GCM with keys made in
memory). Reported as microseconds per event, the fastest of ``--repeat`` runs (the minimum is the
figure least disturbed by other work on the machine).

Three events: the plain six-field event of ``benchmarks.log_throughput`` (no personal data),
the same with a name, an e-mail and an address marked personal, and an order with three lines,
each naming a recipient (nested models in a list).

The script only uses what every version of shredstore since issue 6 offers, so the same file
measures an older checkout too (``PYTHONPATH=<checkout> python -m benchmarks.mapping_cost``):
that is how the figures in docs/performance.md compare before and after issue 14.
"""

from __future__ import annotations

import argparse
import tempfile
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel

from benchmarks.common import check_repeat, render_table
from keyvault import KeyVault, MasterKey
from shredstore import Event, EventRegistry, PersonalData, SubjectId
from shredstore.mapping.mapper import EventMapper

BATCH = 1000
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class PlainRegistered(Event, type_name="bench.mapping.PlainRegistered", register=False):
    customer_id: str
    name: str
    email: str
    plan: str
    credit_limit: int
    registered_at: datetime


class PersonalRegistered(Event, type_name="bench.mapping.PersonalRegistered", register=False):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData()]
    address: Annotated[str, PersonalData()]
    plan: str
    credit_limit: int
    registered_at: datetime


class Line(BaseModel):
    sku: str
    quantity: int
    recipient: Annotated[str, PersonalData()]


class OrderPlaced(Event, type_name="bench.mapping.OrderPlaced", register=False):
    customer_id: SubjectId
    lines: list[Line]
    total_cents: int


def plain(n: int) -> Event:
    return PlainRegistered(customer_id=f"C{n % 1000:06d}", name=f"Customer {n}",
                           email=f"customer.{n}@example.com", plan="team",
                           credit_limit=1000 + n % 97, registered_at=_EPOCH + timedelta(seconds=n))


def personal(n: int) -> Event:
    return PersonalRegistered(customer_id=f"C{n % 1000:06d}", name=f"Customer {n}",
                              email=f"customer.{n}@example.com", address=f"{n} Long Road",
                              plan="team", credit_limit=1000 + n % 97,
                              registered_at=_EPOCH + timedelta(seconds=n))


def order(n: int) -> Event:
    return OrderPlaced(customer_id=f"C{n % 1000:06d}", total_cents=n, lines=[
        Line(sku=f"SKU-{i}", quantity=i + 1, recipient=f"Recipient {n}-{i}") for i in range(3)])


CASES: dict[str, Callable[[int], Event]] = {
    "plain (no personal data)": plain,
    "3 personal fields": personal,
    "order, 3 nested lines": order,
}


def measure(repeat: int) -> list[list[str]]:
    registry = EventRegistry()
    for cls in (PlainRegistered, PersonalRegistered, OrderPlaced):
        registry.register(cls)
    mapper = EventMapper(registry)
    rows = []
    with tempfile.TemporaryDirectory() as folder, KeyVault(
            f"sqlite:///{Path(folder) / 'vault.db'}", master_key=MasterKey.generate()) as vault, \
            vault.keyring(defer_creation=True) as ring:
        for label, make in CASES.items():
            events = [make(n) for n in range(BATCH)]
            mapper.to_rows(events, "{}", ring)  # keys made, classes planned: untimed
            best = min(timeit.repeat(lambda ev=events: mapper.to_rows(ev, "{}", ring),
                                     number=1, repeat=repeat))
            rows.append([label, f"{best / BATCH * 1e6:.1f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs per case (default 15)")
    options = parser.parse_args(argv)
    check_repeat(parser, options)
    print(render_table(["event", "us per event (min)"], measure(options.repeat), left=1))


if __name__ == "__main__":
    main()
