"""Erasure reaches the read models, and the residue check proves it (or catches the ones it
did not reach); on both backends, through the library and the command line."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from keyvault import MasterKey
from shredstore import EventStore, erasure
from shredstore.erasure import ErasureReceipt, residue
from shredstore.projections import ProjectionRunner
from tests.cli.runner import Ran, shredstore
from tests.keyvault.test_scrub import Reader
from tests.projections.directory import (
    CarelessMailingList,
    CustomerDirectory,
    RedactingDirectory,
    careless,
    directory,
    redacted_directory,
    rows,
)
from tests.shredding.events import CustomerRegistered, PaymentSent

SECRETS = ("Name 2", "c2@example.org", "DE00 2222 2222")
"""Personal values of c2, the subject erased."""


def filled_store(url: str, master_file: Path) -> EventStore:
    """A store with customers c1 and c2 and a payment between them."""
    opened = EventStore(url, master_key=MasterKey.from_file(master_file))
    for n in (1, 2):
        opened.append(f"customer-c{n}", [CustomerRegistered(
            customer_id=f"c{n}", name=f"Name {n}", email=f"c{n}@example.org",
            credit_limit=n)])
    opened.append("payments", [PaymentSent(payer_id="c2", payee_id="c1",
                                           payer_iban=SECRETS[2], payee_name="Name 1",
                                           amount_cents=9)])
    return opened


@pytest.fixture
def store(any_url: str, master_file: Path) -> Iterator[EventStore]:
    with filled_store(any_url, master_file) as opened:
        yield opened


def start_caught_up(store: EventStore, runner: ProjectionRunner) -> None:
    """Run `runner` live in a thread, and wait until its read models hold the log so far (as
    a service's would before an erasure; else they would only ever see redacted values)."""
    runner.start()
    head, deadline = store.head().position, time.monotonic() + 30
    while min(runner.positions().values()) < head:
        assert time.monotonic() < deadline, "the projections did not catch up"
        time.sleep(0.02)


@pytest.fixture
def running(store: EventStore) -> Iterator[ProjectionRunner]:
    """The example projections, running live in a thread as a service would run them."""
    runner = ProjectionRunner(store, [CustomerDirectory(), RedactingDirectory()],
                              poll_interval=0.05)
    start_caught_up(store, runner)
    try:
        yield runner
    finally:
        runner.stop()
        runner.join(10)
        runner.close()


def test_after_erasure_no_projection_holds_the_subject_and_the_check_proves_it(
        store: EventStore, running: ProjectionRunner) -> None:
    receipt = store.erase_subject("c2", request_id="REQ-7", verify_residue=True)
    assert receipt.residue is not None
    assert receipt.residue.clean, receipt.residue
    assert receipt.residue.values == 3  # name, email, iban
    assert set(receipt.residue.checked) == {"test-directory: test_directory",
                                            "test-redacting-directory: test_redacted_directory"}
    assert receipt.ok
    held = json.dumps([rows(store._engine, t) for t in (directory, redacted_directory)])
    assert all(value not in held for value in SECRETS)
    assert "Name 1" in held  # the other customer is still there
    assert all(value not in receipt.to_json() for value in SECRETS)


def test_a_projection_that_does_not_forget_is_caught(store: EventStore) -> None:
    runner = ProjectionRunner(store, [CustomerDirectory(), CarelessMailingList()],
                              poll_interval=0.05)
    start_caught_up(store, runner)
    try:
        receipt = store.erase_subject("c2", verify_residue=True)
    finally:
        runner.stop()
        runner.join(10)
        runner.close()
    assert receipt.residue is not None
    assert not receipt.residue.clean
    assert [f.to_dict() for f in receipt.residue.findings] == [{
        "projection": "test-careless-mailing-list", "table": careless.name,
        "column": "address", "rows": 1}]
    assert not receipt.ok
    assert receipt.to_dict()["residue"]["result"] == "RESIDUE"
    assert all(value not in receipt.to_json() for value in SECRETS)


def test_projections_that_never_catch_up_make_the_check_incomplete(store: EventStore) -> None:
    ProjectionRunner(store, [CustomerDirectory()]).close()  # registered, never run
    receipt = erasure_with_timeout(store, 0.3)
    assert receipt.residue is not None
    assert receipt.residue.lagging == ("test-directory",)
    assert receipt.residue.checked == ()
    assert not receipt.residue.clean
    assert receipt.to_dict()["residue"]["result"] == "incomplete"


def erasure_with_timeout(store: EventStore, timeout: float) -> ErasureReceipt:
    return erasure.erase(store, "c2", verify_residue=True, residue_timeout=timeout)


def run_cli(*args: str, url: str, master: Path | None, cwd: Path) -> Ran:
    """The command line in this process (tests/cli/runner.py), with a store of its own: the
    projections run by the test are another store's, as a service's would be."""
    result = shredstore(*args, url=url, master=master, cwd=cwd)
    assert "Traceback" not in result.stderr
    assert all(value not in result.stdout + result.stderr for value in SECRETS)
    return result


@pytest.mark.parametrize("careless_too", [False, True], ids=["forgetting", "careless"])
def test_the_erase_command_verifies_residue(store: EventStore, any_url: str,
                                            master_file: Path, tmp_path: Path,
                                            careless_too: bool) -> None:
    projections = [CustomerDirectory(), *([CarelessMailingList()] if careless_too else [])]
    runner = ProjectionRunner(store, projections, poll_interval=0.05)
    start_caught_up(store, runner)
    try:
        result = run_cli("erase", "c2", "--verify-residue", "--receipts", str(tmp_path / "r"),
                         url=any_url, master=master_file, cwd=tmp_path)
    finally:
        runner.stop()
        runner.join(10)
        runner.close()
    (receipt_file,) = (tmp_path / "r").iterdir()
    receipt = json.loads(receipt_file.read_text(encoding="utf-8"))
    assert all(value not in receipt_file.read_text(encoding="utf-8") for value in SECRETS)
    if careless_too:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "RESIDUE in test_careless_mailing_list.address (1 row(s))" in result.stdout
        assert receipt["residue"]["result"] == "RESIDUE"
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert ("residue clean; logically clean: live rows of 1 read-model table(s) scanned; "
                "physically ") in result.stdout
        assert receipt["residue"]["result"] == "clean"


def test_verify_residue_needs_the_master_key(store: EventStore, any_url: str,
                                             tmp_path: Path) -> None:
    result = run_cli("erase", "c2", "--verify-residue", "--receipts", str(tmp_path),
                     url=any_url, master=None, cwd=tmp_path)
    assert result.returncode == 2
    assert "master key" in result.stderr
    assert store.subject_status("c2").state == "active"  # nothing was erased


def sqlite_files(url: str) -> bytes:
    """An SQLite database file and its WAL, as they are on disk."""
    database = Path(str(make_url(url).database))
    wal = database.with_name(database.name + "-wal")
    return database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def secrets_in(data: bytes) -> int:
    """How many of c2's values `data` holds (a count: a failed assertion prints no value)."""
    return sum(value.encode() in data for value in SECRETS)


def test_the_report_says_what_it_verified_logically_and_physically(
        store: EventStore, running: ProjectionRunner, any_url: str) -> None:
    """The live rows are checked on both backends; the files' bytes where the backend lets a
    client read them (SQLite, after a WAL checkpoint), and "not verified" with the reason on
    PostgreSQL. A clean SQLite report is true of the bytes on disk."""
    receipt = store.erase_subject("c2", verify_residue=True)
    assert receipt.residue is not None
    report = receipt.residue.to_dict()
    assert report["logical"] == "clean: live rows of 2 read-model table(s) scanned"
    assert report["result"] == "clean"
    if any_url.startswith("sqlite"):
        assert receipt.residue.physical.verified
        assert report["physical"] == ("verified clean: events.db, events.db-wal scanned after "
                                      "a WAL checkpoint")
        assert secrets_in(sqlite_files(any_url)) == 0
    else:
        assert not receipt.residue.physical.verified
        assert report["physical"].startswith(
            "not verified: PostgreSQL keeps deleted and overwritten row versions")
    assert receipt.residue.summary().startswith("residue clean; logically clean: ")
    assert receipt.to_dict()["residue"]["physical"] == report["physical"]
    assert secrets_in(receipt.to_json().encode()) == 0


def test_values_left_in_the_database_files_make_the_report_not_clean(
        sqlite_url: str, master_file: Path, readers: list[Reader]) -> None:
    """SQLite, projections in the store's database: a reader in another process holding a
    snapshot from before the erasure keeps the forgotten rows' old pages on disk. The live rows
    are clean, but the byte scan finds the name and email, so the report is not clean."""
    with filled_store(sqlite_url, master_file) as store:
        runner = ProjectionRunner(store, [CustomerDirectory(), RedactingDirectory()],
                                  poll_interval=0.05)
        start_caught_up(store, runner)
        try:
            readers.append(Reader(str(make_url(sqlite_url).database)))
            receipt = store.erase_subject("c2", verify_residue=True)
        finally:
            runner.stop()
            runner.join(10)
            runner.close()
        assert receipt.residue is not None
        assert not receipt.residue.findings  # the live rows forgot the subject
        assert receipt.residue.physical.found
        assert not receipt.residue.clean
        assert not receipt.ok
        report = receipt.to_dict()["residue"]
        assert report["result"] == "RESIDUE"
        assert report["physical"].startswith("found in ")
        assert "the WAL could not be checkpointed" in report["physical"]
        assert {f["file"] for f in report["physical_findings"]} <= {"events.db",
                                                                    "events.db-wal"}
        assert secrets_in(sqlite_files(sqlite_url)) >= 2  # the name and email, truly
        assert secrets_in(receipt.to_json().encode()) == 0


@pytest.fixture
def readers() -> Iterator[list[Reader]]:
    started: list[Reader] = []
    yield started
    for reader in started:
        reader.stop()


def test_the_byte_scan_finds_a_value_across_read_pieces(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value that straddles two pieces of the file is found once, whatever the piece size."""
    file = tmp_path / "data"
    file.write_bytes(b"..alice@example.org....alice@example.org..")
    for size in (1, 3, 7, 1000):
        monkeypatch.setattr(residue, "_CHUNK", size)
        assert residue._places(file, [b"alice@example.org", b"nobody"]) == 2


def test_the_values_live_in_memory_only_and_only_until_the_check_ends(
        store: EventStore) -> None:
    """Fingerprints never show, pickle or outlive their check with the values they hold."""
    fingerprints = residue.fingerprint_subject(store, "c2")
    assert fingerprints._values
    assert secrets_in(repr(fingerprints).encode()) == 0
    with pytest.raises(TypeError):
        pickle.dumps(fingerprints)
    residue.check_residue(store._engine, fingerprints, erased_at_position=0, timeout=0)
    assert not fingerprints._values
