"""Crypto-shredding with real operating-system processes: an erasure reaches a running reader.

The child runs tests/shredding/_process_workers.py (``python -m tests.shredding._process_workers
URL``), an `EventStore` driven by JSON commands on stdin and answering on stdout; see that
module for the protocol. The parent hands it the master key as base64 on stdin.
"""

from __future__ import annotations

import time

import pytest

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.erasure import LEDGER_STREAM
from tests.processes import CommandChild, release
from tests.shredding._process_workers import SHOWN_REDACTED
from tests.shredding.contract import raw_rows
from tests.shredding.events import ERASED_EMAIL, CustomerRegistered

WORKER = "tests.shredding._process_workers"
TIMEOUT = 60.0
"""The longest the test waits for its child, in seconds."""


def child_for(url: str, master: MasterKey, name: str) -> CommandChild:
    """A worker on the vault at `url`; the master key reaches it on stdin."""
    return CommandChild(WORKER, url, secret=master.to_base64(), name=name)


@pytest.mark.processes
def test_an_erasure_reaches_a_running_reader_at_once(any_url: str) -> None:
    """A reader process that read and cached a subject's key reads its fields redacted on
    its very next read after another process erased the subject; other subjects still read."""
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.generate()
    erased_subject, kept_subject = "subject-erased", "subject-kept"
    with EventStore(any_url, master_key=master) as store:
        store.append("customers", [
            CustomerRegistered(customer_id=erased_subject, name="Reader Test One",
                               email="one@example.org", credit_limit=10),
            CustomerRegistered(customer_id=kept_subject, name="Reader Test Two",
                               email="two@example.org", credit_limit=20),
        ])
        reader = child_for(any_url, master, "reader")
        try:
            assert reader.message(deadline).get("ready") is True, reader.describe()
            pid = reader.proc.pid
            reading = {"op": "read", "stream": "customers"}
            plain = [
                {"type": "test.shredding.CustomerRegistered",
                 "fields": {"customer_id": erased_subject, "name": "Reader Test One",
                            "email": "one@example.org", "credit_limit": 10},
                 "redacted": []},
                {"type": "test.shredding.CustomerRegistered",
                 "fields": {"customer_id": kept_subject, "name": "Reader Test Two",
                            "email": "two@example.org", "credit_limit": 20},
                 "redacted": []},
            ]
            assert reader.ask(reading, deadline)["events"] == plain
            assert reader.ask({"op": "cached", "subject": erased_subject}, deadline)["cached"]

            erased = store.erase_subject(erased_subject, reason="process test")
            assert (erased.already_erased, erased.held_key) == (False, True)

            # The same process, alive throughout, with the key in its cache until now.
            assert reader.proc.poll() is None
            assert reader.proc.pid == pid
            assert reader.ask(reading, deadline)["events"] == [
                {"type": "test.shredding.CustomerRegistered",
                 "fields": {"customer_id": erased_subject, "name": SHOWN_REDACTED,
                            "email": ERASED_EMAIL, "credit_limit": 10},
                 "redacted": ["email", "name"]},
                plain[1],
            ]
            assert reader.ask({"op": "cached", "subject": erased_subject}, deadline)[
                "cached"] is False
            assert reader.ask({"op": "cached", "subject": kept_subject}, deadline)["cached"]
            reader.finish(deadline)
        finally:
            reader.kill()


@pytest.mark.processes
def test_processes_appending_for_a_new_subject_at_once_share_one_key(any_url: str) -> None:
    """Processes that append the first events of a subject at the same moment (each creating
    its key inside its own append) all commit, with one key, and every event reads back; the
    store's row key, first asked for by all of them at once, is one key too."""
    processes, rounds = 4, 5
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.generate()
    writers = [child_for(any_url, master, f"writer{n}") for n in range(processes)]
    try:
        for writer in writers:
            assert writer.message(deadline).get("ready") is True, writer.describe()
        for round_ in range(rounds):
            answers = release([(writer, {
                "op": "append", "stream": f"w{n}", "subject": f"subject-{round_}",
                "name": f"Racer {round_}-{n}", "email": f"r{round_}.{n}@example.org"})
                for n, writer in enumerate(writers)], deadline)
            assert answers == [{"op": "append", "version": round_ + 1,
                                "pid": writer.proc.pid} for writer in writers], answers
        for writer in writers:
            writer.finish(deadline)
    finally:
        for writer in writers:
            writer.kill()
    with EventStore(any_url, master_key=master) as store:
        for n in range(processes):
            read = [(r.event.customer_id, r.event.name, r.event.email)
                    for r in store.read_stream(f"w{n}")
                    if isinstance(r.event, CustomerRegistered)]
            assert read == [(f"subject-{k}", f"Racer {k}-{n}", f"r{k}.{n}@example.org")
                            for k in range(rounds)]
        fingerprints = {store.subject_status(f"subject-{k}").key_fingerprint
                        for k in range(rounds)}
        assert None not in fingerprints
        assert len(fingerprints) == rounds
        # The row key, made on first use by all of them at once, is one key: every row
        # carries an authenticator that checks.
        report = store.verify()
        assert report.ok, report.findings
        assert report.unauthenticated == 0
    assert raw_rows(any_url, "SELECT count(*) FROM keyvault_service_keys") == [(1,)]


@pytest.mark.processes
def test_processes_erasing_one_subject_at_once_leave_one_ledger_entry(any_url: str) -> None:
    """Erasure requests for the same subject handled by several processes at the same moment:
    all succeed, one of them destroys the key, and the ledger records the erasure once."""
    processes = 4
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.generate()
    with EventStore(any_url, master_key=master) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id="c-1", name="Erin Racer", email="erin@example.org", credit_limit=1)])
    erasers = [child_for(any_url, master, f"eraser{n}") for n in range(processes)]
    try:
        for eraser in erasers:
            assert eraser.message(deadline).get("ready") is True, eraser.describe()
        answers = release([(eraser, {"op": "erase", "subject": "c-1"}) for eraser in erasers],
                          deadline)
        for eraser in erasers:
            eraser.finish(deadline)
    finally:
        for eraser in erasers:
            eraser.kill()
    assert all("error" not in answer and answer["ok"] for answer in answers), answers
    assert sorted(answer["already_erased"] for answer in answers) == [False] + [True] * (
        processes - 1)
    with EventStore(any_url, master_key=master) as store:
        (entry,) = list(store.read_stream(LEDGER_STREAM))
        assert {answer["ledger_position"] for answer in answers} == {entry.position}
        assert store.verify().ok
