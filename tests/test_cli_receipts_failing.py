"""A receipt that cannot be written never hides a done erasure (issue 15, part 3): the CLI says
the subject IS erased, goes on with the batch, ends with the summary and exit 1, and
`shredstore receipt from-ledger` writes the receipt later."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore, erasure
from tests.shredding.events import CustomerRegistered
from tests.test_cli_erasure import EMAIL, NAME, run


def unwritable_folder(base: Path) -> Path:
    """A folder that exists, but in which no file can be created, by any user.

    Root ignores a read-only mode, so chmod 0500 cannot make one here: this folder's path is
    so long that no file name fits in it (the system refuses with "File name too long").
    """
    limit = os.pathconf(base, "PC_PATH_MAX")  # counts the closing NUL
    folder = base
    while len(str(folder)) < limit - 20:  # a receipt's temporary name needs more than 20
        folder /= "r" * min(200, limit - 20 - len(str(folder)))
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def three(any_url: str, master_file: Path) -> str:
    """A store with three customers, c-0 to c-2, each with personal data."""
    with EventStore(any_url, master_key=MasterKey.from_file(master_file)) as store:
        for n in range(3):
            store.append(f"customer-{n}", [CustomerRegistered(
                customer_id=f"c-{n}", name=NAME, email=EMAIL, credit_limit=n)])
    return any_url


def test_every_subject_is_erased_and_said_so_when_no_receipt_can_be_written(
    three: str, tmp_path: Path
) -> None:
    requests = tmp_path / "requests.csv"
    requests.write_text("subject,request_id\nc-0,REQ-0\nc-1,REQ-1\nc-2,REQ-2\n")
    broken = unwritable_folder(tmp_path / "receipts")
    result = run("erase", "--from-file", str(requests), "--receipts", str(broken), url=three,
                 cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    *lines, summary = result.stdout.splitlines()
    assert len(lines) == 3
    for n, line in enumerate(lines):
        assert line.startswith(f"line {n + 2}: c-{n}: erased, but no receipt (cannot write a "
                               "receipt in ")
        assert "; 1 event(s) in 1 stream(s); no ciphertext of the subject opens; " in line
        assert line.endswith("the erasure IS done and recorded in the ledger: write its "
                             f"receipt later with `shredstore receipt from-ledger c-{n}`")
    assert summary == ("3 erased, 3 receipt(s) not written (the erasures are done: "
                       "`shredstore receipt from-ledger SUBJECT` writes one)")
    assert list(broken.iterdir()) == []  # nothing half written left behind
    with EventStore(three) as store:
        assert {store.subject_status(f"c-{n}").state for n in range(3)} == {"erased"}
        assert sorted(erasure.ledger(store)) == ["c-0", "c-1", "c-2"]

    again = run("erase", "c-0", "--json", "--receipts", str(broken), url=three, cwd=tmp_path)
    assert again.returncode == 1
    answer = json.loads(again.stdout)
    assert (answer["result"], answer["receipt"]) == ("already erased", None)
    assert answer["receipt_problem"].startswith("cannot write a receipt in")
    assert answer["write_receipt_with"] == "shredstore receipt from-ledger c-0"


def test_receipt_from_ledger_writes_a_receipt_that_verifies(three: str, tmp_path: Path) -> None:
    """Written later from the ledger: the ledger's request id and time, marked as reissued,
    mode 0600, and signed so that `receipt verify` accepts it."""
    broken = unwritable_folder(tmp_path / "broken")
    erased = run("erase", "c-1", "--request-id", "REQ-1", "--receipts", str(broken),
                 url=three, cwd=tmp_path)
    assert erased.returncode == 1
    key = tmp_path / "signing.pem"
    assert run("keys", "new-signing-key", "--out", str(key)).returncode == 0
    good = tmp_path / "receipts"
    written = run("receipt", "from-ledger", "c-1", "--receipts", str(good),
                  "--signing-key-file", str(key), "--json", url=three, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    answer = json.loads(written.stdout)
    assert (answer["result"], answer["signed"]) == ("receipt written", True)
    path = Path(answer["receipt"])
    assert path.parent == good
    assert path.stat().st_mode & 0o777 == 0o600
    receipt = json.loads(path.read_text())
    with EventStore(three) as store:
        position, entry = erasure.ledger(store)["c-1"]
    assert (receipt["subject"], receipt["request_id"]) == ("c-1", "REQ-1")
    assert receipt["ledger_position"] == answer["ledger_position"] == position
    assert receipt["erased_at"] == entry.erased_at.isoformat() == answer["erased_at"]
    assert receipt["reissued_from_ledger"] is True
    assert receipt["check"]["result"] == "no ciphertext of the subject opens"
    checked = run("receipt", "verify", str(path), "--public-key", str(key))
    assert checked.returncode == 0, checked.stderr
    assert "signature valid" in checked.stdout

    text = run("receipt", "from-ledger", "c-1", "--receipts", str(good), url=three)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"c-1: erased at {entry.erased_at.isoformat()} (ledger "
                                  f"position {position}); no ciphertext of the subject opens; "
                                  f"receipt {good}/erasure-")


def test_receipt_from_ledger_refuses_a_subject_the_ledger_does_not_record(
    three: str, tmp_path: Path
) -> None:
    result = run("receipt", "from-ledger", "c-2", "--receipts", str(tmp_path / "receipts"),
                 url=three, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "the erasure ledger holds no entry for this subject" in line
    assert not (tmp_path / "receipts").exists()
