"""Erasure reaches the read models, and the residue check proves it (or catches the ones it
did not reach); on both backends, through the library and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore, erasure
from shredstore.erasure import ErasureReceipt
from shredstore.projections import ProjectionRunner
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


@pytest.fixture
def store(any_url: str, master_file: Path) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.from_file(master_file)) as opened:
        for n in (1, 2):
            opened.append(f"customer-c{n}", [CustomerRegistered(
                customer_id=f"c{n}", name=f"Name {n}", email=f"c{n}@example.org",
                credit_limit=n)])
        opened.append("payments", [PaymentSent(payer_id="c2", payee_id="c1",
                                               payer_iban=SECRETS[2], payee_name="Name 1",
                                               amount_cents=9)])
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


def run_cli(*args: str, url: str, master: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SHREDSTORE_URL": url,
           "SHREDSTORE_MASTER_KEY_FILE": str(master)}
    result = subprocess.run(
        [sys.executable, "-c", "from shredstore.cli import main; main()", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False)
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
                         url=any_url, master=master_file)
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
        assert "read models clean (1 table(s))" in result.stdout
        assert receipt["residue"]["result"] == "clean"


def test_verify_residue_needs_the_master_key(store: EventStore, any_url: str,
                                             tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SHREDSTORE_URL": any_url}
    result = subprocess.run(
        [sys.executable, "-c", "from shredstore.cli import main; main()", "erase", "c2",
         "--verify-residue", "--receipts", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 2
    assert "master key" in result.stderr
    assert store.subject_status("c2").state == "active"  # nothing was erased
