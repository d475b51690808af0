"""The main job, narrated: what `shredstore demo` shows a newcomer on the embedded default.

A master key and a SQLite store in a fresh folder; three made-up customers with orders and
payments; a replay into a small read model; one customer erased through the erasure workflow;
the replay again, showing which fields now read as redacted; the signed erasure receipt checked;
the log verified. Each term of the trade (log head, key fingerprint, hash chain, ...) is said in
plain words where it first appears, and the demo ends with commands to explore its store, printed
so that they run as they are (paths quoted for a shell). Personal values are shown masked unless
`reveal` is set (they are invented).
"""

from __future__ import annotations

import shlex
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives import serialization
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import URL

from keyvault import MasterKey
from shredstore import erasure
from shredstore.errors import ConfigurationError, SubjectErasedError
from shredstore.events import Event, RecordedEvent
from shredstore.expected import NO_STREAM, STREAM_EXISTS
from shredstore.personal import REDACTED, PersonalData, SubjectId
from shredstore.store import EventStore

__all__ = ["run_demo"]


class CustomerRegistered(Event, type_name="demo.CustomerRegistered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData(replacement="erased@invalid")]
    country: str


class OrderPlaced(Event, type_name="demo.OrderPlaced"):
    customer_id: SubjectId
    order_id: str
    shipping_address: Annotated[str, PersonalData()]
    total_cents: int


class PaymentReceived(Event, type_name="demo.PaymentReceived"):
    customer_id: SubjectId
    order_id: str
    payer_iban: Annotated[str, PersonalData()]
    amount_cents: int


_CUSTOMERS = (  # invented people: (id, name, email, country, IBAN, street, [(order, cents, paid)])
    ("c-1001", "Ada Demo", "ada@example.com", "GB", "GB00 DEMO 0000 0000 0001",
     "1 Example Street, Exampleton", [("o-1", 4_200, True)]),
    ("c-1002", "Ben Demo", "ben@example.com", "DE", "DE00 DEMO 0000 0000 0002",
     "2 Beispielweg, Musterstadt", [("o-2", 1_999, True), ("o-3", 2_500, False)]),
    ("c-1003", "Cleo Demo", "cleo@example.com", "FR", "FR00 DEMO 0000 0000 0003",
     "3 Rue Exemple, Villedemo", [("o-4", 9_900, True)]),
)
_ERASED = "c-1002"
_SIGNING_KEY, _PUBLIC_KEY = "signing-key.pem", "signing-key.pub.pem"


@dataclass
class _Entry:
    """One row of the demo's read model, the customer directory."""

    name: str = ""
    email: str = ""
    orders: int = 0
    paid_cents: int = 0


def run_demo(folder: Path | None, console: Console, *, reveal: bool = False) -> bool:
    """Run the narrated demo in `folder` (a new temporary one if None); True if all held."""
    started = time.perf_counter()
    folder = _fresh_folder(folder)
    key_file = folder / "master.key"
    url = URL.create("sqlite", database=str(folder / "events.db")).render_as_string()

    def say(text: str, *, problem: bool = False) -> None:
        console.print(Text(text, style="red" if problem else ""), soft_wrap=True)

    def step(text: str) -> None:
        console.print(Text("\n" + text, style="bold"))

    say(f"shredstore demo: crypto-shredding on SQLite, in {folder}")
    _explain(console, "crypto-shredding", "each person's data is encrypted with a key of their "
             "own; destroying the key makes the data unreadable for good, log unchanged")
    step("1. A master key and an event store")
    master = MasterKey.generate()
    master.to_file(key_file)
    say(f"   master key  {key_file} (mode 600): wraps (encrypts) every customer's own key; "
        "kept apart from the database")
    say(f"   event store {url} (the key vault lives in the same database)")
    _explain(console, "event store", "a log of what happened (events), only ever appended to, "
             "never edited")
    _explain(console, "key vault", "where each customer's key is kept, wrapped by the master key")
    with EventStore(url, master_key=master) as store:
        step("2. Appending customers, orders and payments")
        values = _append_shop(store)
        say(f"   {store.head().position} events; each personal field is sealed (AES-256-GCM) "
            "with its customer's key")
        _explain(console, "sealed", "encrypted so that only that key opens it, and any change "
                 "to it is detected")

        step("3. Replaying the log, personal values "
             + ("as written (invented people)" if reveal else "masked (--reveal shows them)"))
        _explain(console, "replaying", "reading every event again, in order, to rebuild a view "
                 "such as a customer directory: a read model")
        console.print(_events_table(store.read_all(), reveal))
        console.print(_directory_table(store.read_all(), reveal, "read model from the replay"))
        found = _plaintext_in(folder, values)
        say(f"   searched the database files for the {len(values)} personal values written: "
            + ("none found, only ciphertext" if not found else f"{found} FOUND IN THE CLEAR"),
            problem=bool(found))

        step(f"4. Erasing customer {_ERASED} (request DEMO-1, reason GDPR Art. 17)")
        dry, receipt, refused = _erase(store, folder, say, console)
        step("5. Replaying again: the log was not rewritten, yet these fields now read")
        changed = [rec for rec in store.read_all() if rec.redacted_fields]
        for rec in changed:
            say(f"   #{rec.position} {rec.stream_id} {_short(rec)}: " + ", ".join(
                f"{name} -> {_shown(rec, name, reveal)}" for name in sorted(rec.redacted_fields))
                + (" (email: its declared replacement)" if "email" in rec.redacted_fields else ""))
        console.print(_directory_table(store.read_all(), reveal,
                                       "read model rebuilt after the erasure"))
        say("   its orders and payments still count; only its personal fields are gone")

        step("6. The erasure receipt")
        checked, receipt_file = _show_receipt(folder, receipt, say, console)
        step("7. Verifying the log")
        report = store.verify()
        for finding in report.findings:
            say(f"   {finding}", problem=True)
        say(f"   {report.events_checked} events checked: hash chain and immutability triggers "
            + ("intact" if report.ok else "PROBLEMS FOUND"), problem=not report.ok)
        _explain(console, "hash chain", "each event's hash covers the one before it, so an "
                 "edited, removed or reordered event breaks the chain")
        _explain(console, "immutability triggers", "database rules that refuse any change to, or "
                 "deletion of, a stored event")
        if report.ok and report.unauthenticated == 0:
            say("   every row's authenticator checks: an edited row would be an error on read, "
                "never 'redacted'")
            _explain(console, "authenticator", "a seal on each row, made with a secret the "
                     "master key protects: tampering shows as tampering, never as erasure")

    ok = (not found and refused and len(changed) == dry.events and checked and report.ok)
    say(f"\n{'Done' if ok else 'Something did not hold'} in "
        f"{time.perf_counter() - started:.1f} s. The store is yours to explore; each command "
        "runs as printed:", problem=not ok)
    _suggest(console, _next_commands(folder, url, key_file, receipt_file))
    return ok


def _explain(console: Console, term: str, meaning: str) -> None:
    """A term of the trade in plain words, where it first appears (wrapped to the width,
    indented under the line it explains)."""
    console.print(Text(textwrap.fill(f"{term}: {meaning}", width=max(console.width, 40),
                                     initial_indent=" " * 5, subsequent_indent=" " * 7),
                       style="dim"), soft_wrap=True)


def _suggest(console: Console, commands: list[tuple[str, list[str]]]) -> None:
    """Each command on a line of its own, quoted for a shell (a --dir with spaces), after a
    line saying what it shows; never wrapped, so that it copies whole."""
    for purpose, command in commands:
        console.print(Text(f"   {purpose}:", style="dim"), soft_wrap=True)
        console.print(Text(f"   {shlex.join(command)}"), soft_wrap=True)


def _next_commands(folder: Path, url: str, key_file: Path, receipt_file: Path
                   ) -> list[tuple[str, list[str]]]:
    """What to run next on the demo's store, and what each shows. Every store command names
    the store and its master key, so that no SHREDSTORE_* setting meant for another store
    gets in the way."""
    store = ["shredstore", "--url", url, "--master-key-file", str(key_file)]
    return [
        (f"what the store knows of {_ERASED} now", [*store, "status", _ERASED]),
        (f"erasing {_ERASED} again, as a dry run that changes nothing: it says it is already "
         "erased",
         [*store, "erase", _ERASED, "--dry-run"]),
        ("the log's integrity, each row's authenticator included", [*store, "verify"]),
        ("a report of what the log holds, field by field, to open in a browser",
         [*store, "report", "--out", str(folder / "report.html")]),
        ("the receipt's signature, checked with the signing key's public half",
         ["shredstore", "receipt", "verify", str(receipt_file), "--public-key",
          str(folder / _PUBLIC_KEY)]),
    ]


def _erase(store: EventStore, folder: Path, say: Callable[..., None], console: Console
           ) -> tuple[erasure.Footprint, erasure.ErasureReceipt, bool]:
    """Dry run, erasure (with a signed receipt), and an append for the erased subject."""
    dry = store.subject_footprint(_ERASED)
    say(f"   dry run: {dry.events} events in {len(dry.streams)} streams hold its personal "
        f"data ({', '.join(dry.personal_fields)})")
    _explain(console, "dry run", "what an erasure would touch, found without changing anything")
    signing_file = folder / _SIGNING_KEY
    erasure.generate_signing_key(signing_file)
    signing_key = erasure.load_signing_key(signing_file)
    (folder / _PUBLIC_KEY).write_bytes(signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    receipt = store.erase_subject(_ERASED, reason="GDPR Art. 17", request_id="DEMO-1",
                                  signing_key=signing_key)
    say(f"   its key (fingerprint {receipt.key_fingerprint}) is destroyed; the ledger entry "
        f"SubjectErased is at position {receipt.ledger_position}, stream "
        f"{erasure.LEDGER_STREAM}")
    _explain(console, "key fingerprint", "a short name computed from a key that reveals nothing "
             "of it: it says which key was destroyed")
    _explain(console, "ledger", "the log's own record of every erasure: when, which request, "
             "which key; no personal data")
    _explain(console, "position", "an event's number in the log, counted from the first")
    refused = _new_order_refused(store)
    say("   a new order with its personal data: " + (
        "refused (SubjectErasedError), erased stays erased" if refused
        else "ACCEPTED, the erasure did not hold"), problem=not refused)
    return dry, receipt, refused


def _show_receipt(folder: Path, receipt: erasure.ErasureReceipt, say: Callable[..., None],
                  console: Console) -> tuple[bool, Path]:
    """Write the receipt, check its signature, narrate it; whether it all holds, and its
    file."""
    path = erasure.write_receipt(folder / "erasure-receipts", receipt)
    check = erasure.verify_receipt(path.read_bytes())
    say(f"   {path}")
    _explain(console, "erasure receipt", "the evidence of one erasure, kept as a file: what was "
             "held, when it went, and a check that none of it opens")
    say(f"   {receipt.footprint.events} events in {len(receipt.footprint.streams)} streams "
        f"held its data; log head at erasure {receipt.log_head}")
    _explain(console, "log head", "the newest event's position and a hash covering every event "
             "up to it: it pins down the log the receipt speaks of")
    say(f"   {receipt.check.to_dict()['result']} ({receipt.check.checked} of "
        f"{receipt.check.sealed_values} sealed values tried, no key held); {check.message}",
        problem=not (receipt.ok and check.ok))
    _explain(console, "signature", f"made with the demo's signing key ({_SIGNING_KEY}); its "
             f"public half ({_PUBLIC_KEY}) lets anyone check the receipt is unaltered")
    return receipt.ok and check.ok, path


def _fresh_folder(folder: Path | None) -> Path:
    if folder is None:
        return Path(tempfile.mkdtemp(prefix="shredstore-demo-"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            raise ConfigurationError(f"{folder} is not empty: the demo needs a fresh folder")
    except OSError as error:
        raise ConfigurationError(f"cannot use {folder}: {error.strerror}") from None
    return folder


def _append_shop(store: EventStore) -> list[str]:
    """Append the demo's events; return every personal value written."""
    values: list[str] = []
    for customer, name, email, country, iban, street, orders in _CUSTOMERS:
        store.append(f"customer-{customer}", [CustomerRegistered(
            customer_id=customer, name=name, email=email, country=country)],
            expected_version=NO_STREAM)
        values += [name, email, street]
        for order, cents, paid in orders:
            stream = f"order-{order}"
            store.append(stream, [OrderPlaced(customer_id=customer, order_id=order,
                                              shipping_address=street, total_cents=cents)],
                         expected_version=NO_STREAM)
            if paid:
                store.append(stream, [PaymentReceived(customer_id=customer, order_id=order,
                                                      payer_iban=iban, amount_cents=cents)],
                             expected_version=STREAM_EXISTS)
                values.append(iban)
    return sorted(set(values))


def _new_order_refused(store: EventStore) -> bool:
    try:
        store.append("order-o-5", [OrderPlaced(customer_id=_ERASED, order_id="o-5",
                                               shipping_address="2 Beispielweg, Musterstadt",
                                               total_cents=100)], expected_version=NO_STREAM)
    except SubjectErasedError:
        return True
    return False


def _short(rec: RecordedEvent) -> str:
    return rec.event_type.removeprefix("demo.")


def _shown(rec: RecordedEvent, name: str, reveal: bool) -> str:
    """A personal field as the demo shows it: redacted, its replacement, revealed or masked."""
    value = getattr(rec.event, name)
    if name in rec.redacted_fields:
        return "REDACTED" if value is REDACTED else str(value)
    return str(value) if reveal else "*****"


def _events_table(records: Iterable[RecordedEvent], reveal: bool) -> Table:
    table = Table("#", "stream", "type", "subject", "personal fields", box=None,
                  padding=(0, 1, 0, 3))
    for rec in records:
        fields = sorted(rec.personal_fields)
        table.add_row(str(rec.position), Text(rec.stream_id), _short(rec),
                      Text(str(getattr(rec.event, "customer_id", ""))),
                      Text(", ".join(f"{n}={_shown(rec, n, True)}" for n in fields) if reveal
                           else ", ".join(fields)))
    return table


def _directory_table(records: Iterable[RecordedEvent], reveal: bool, title: str) -> Table:
    directory: dict[str, _Entry] = {}
    for rec in records:
        event = rec.event
        if isinstance(event, CustomerRegistered):
            entry = directory.setdefault(event.customer_id, _Entry())
            entry.name, entry.email = _shown(rec, "name", reveal), _shown(rec, "email", reveal)
        elif isinstance(event, OrderPlaced):
            directory.setdefault(event.customer_id, _Entry()).orders += 1
        elif isinstance(event, PaymentReceived):
            directory.setdefault(event.customer_id, _Entry()).paid_cents += event.amount_cents
    table = Table("customer", "name", "email", "orders", "paid", title=f"   {title}",
                  title_justify="left", box=None, padding=(0, 1, 0, 3))
    for customer, entry in sorted(directory.items()):
        table.add_row(customer, Text(entry.name), Text(entry.email), str(entry.orders),
                      f"{entry.paid_cents / 100:.2f}")
    return table


def _plaintext_in(folder: Path, values: list[str]) -> int:
    """How many of `values` appear in the clear in the folder's database files."""
    data = b"".join(path.read_bytes() for path in folder.glob("events.db*"))
    return sum(value.encode() in data for value in values)
