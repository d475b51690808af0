"""The main job, narrated: what `shredstore demo` shows a newcomer on the embedded default."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from shredstore.errors import WrongExpectedVersion
from shredstore.events import Event
from shredstore.expected import NO_STREAM
from shredstore.store import EventStore

__all__ = ["run_demo"]


class CustomerRegistered(Event, type_name="demo.CustomerRegistered"):
    customer_id: str
    plan: str
    credit_limit: int


class OrderPlaced(Event, type_name="demo.OrderPlaced"):
    customer_id: str
    order_id: str
    amount_cents: int


class CreditLimitRaised(Event, type_name="demo.CreditLimitRaised"):
    customer_id: str
    new_limit: int


def run_demo(folder: Path | None, say: Callable[[str], None]) -> bool:
    """Append, replay, conflict and verify on a fresh SQLite store; return whether it verified."""
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="shredstore-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'events.db'}"
    say(f"1. A fresh event store: {url}")
    with EventStore(url) as store:
        say("2. Appending events to three customer streams (each stream must not exist yet)")
        for number, plan in ((1, "basic"), (2, "pro"), (3, "basic")):
            stream = f"customer-{number}"
            result = store.append(stream, [
                CustomerRegistered(customer_id=str(number), plan=plan, credit_limit=500),
                OrderPlaced(customer_id=str(number), order_id=f"o-{number}01",
                            amount_cents=1999 * number),
            ], expected_version=NO_STREAM, metadata={"correlation_id": f"signup-{number}"})
            say(f"   {stream}: now at version {result.version}, positions {result.positions}")

        say("3. Two clerks raise customer-2's limit from the same version 2; one must lose")
        store.append("customer-2", [CreditLimitRaised(customer_id="2", new_limit=900)],
                     expected_version=2)
        try:
            store.append("customer-2", [CreditLimitRaised(customer_id="2", new_limit=700)],
                         expected_version=2)
        except WrongExpectedVersion as error:
            say(f"   refused, nothing written: {error}")

        say("4. Replaying customer-2 from its stream")
        for rec in store.read_stream("customer-2"):
            say(f"   v{rec.version} {rec.event_type}: {rec.event!r}")

        say("5. Replaying the whole log in global order")
        count = 0
        for rec in store.read_all():
            count += 1
            say(f"   #{rec.position} {rec.stream_id} v{rec.version} {rec.event_type}")

        say("6. Verifying the hash chain and the immutability triggers")
        report = store.verify()
        say(f"   {report.events_checked} events checked, head {report.head}: "
            + ("intact" if report.ok else "PROBLEMS FOUND"))
        for finding in report.findings:
            say(f"   {finding}")
    say(f"Done: {count} events in {folder}")
    return report.ok
