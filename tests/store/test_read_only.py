"""Auditors audit copies: a store opened read-only reads, verifies and reports, writes nothing,
and refuses to reveal what it cannot record.

The SQLite case runs in a child process that sees the store's folder through a read-only
bind mount, made in a user and mount namespace of its own (``unshare -rm``): a real read-only
file system, as an auditor's mounted copy is, whoever runs the tests (root ignores file
modes, not a read-only mount).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore, ReadOnlyStoreError
from shredstore.audit.report import write_report
from shredstore.records import Scope
from tests.cli.runner import process_environment
from tests.shredding.events import CustomerRegistered

NAME, EMAIL = "Audit-Copy-Axolotl-6021", "axolotl6021@example.org"
ROOT = Path(__file__).resolve().parents[2]


def fill(url: str, master: MasterKey) -> None:
    with EventStore(url, master_key=master) as store:
        for n in range(3):
            store.append(f"customer-{n}", [CustomerRegistered(
                customer_id=f"c-{n}", name=NAME, email=EMAIL, credit_limit=n)])
        store.erase_subject("c-2")


CHILD = """
import io, json, sys
from keyvault import MasterKey
from shredstore import EventStore, ReadOnlyStoreError
from shredstore.records import Scope
from shredstore.audit.report import write_report
from tests.cli.runner import process_environment
from tests.shredding.events import CustomerRegistered

url, key = sys.argv[1], sys.stdin.readline().strip()
seen = {}
try:
    EventStore(url, master_key=MasterKey.from_base64(key))
except ReadOnlyStoreError as error:
    seen["writable_open"] = str(error)
with EventStore(url, master_key=MasterKey.from_base64(key), read_only=True) as store:
    seen["note"] = store.read_only_note
    seen["verify"] = [store.verify().ok, store.verify().events_checked]
    seen["status"] = [store.subject_status(s).state for s in ("c-0", "c-2")]
    seen["redacted"] = [sorted(r.redacted_fields) for r in store.read_all()
                        if r.stream_id.startswith("customer-")]
    masked = io.StringIO()
    seen["masked_report"] = write_report(store, masked, scope=Scope(), fmt="json").ok
    seen["masked_report_clean"] = "Axolotl" not in masked.getvalue()
    try:
        write_report(store, io.StringIO(), scope=Scope(), fmt="json", reveal=True)
    except ReadOnlyStoreError as error:
        seen["reveal"] = str(error)
    try:
        store.append("x", [CustomerRegistered(customer_id="c-9", name="n", email="e@x.org",
                                              credit_limit=1)])
    except ReadOnlyStoreError as error:
        seen["append"] = str(error)
    try:
        store.erase_subject("c-0")
    except ReadOnlyStoreError as error:
        seen["erase"] = str(error)
print(json.dumps(seen))
"""


def run_on_read_only_mount(folder: Path, url: str, master: MasterKey
                           ) -> dict[str, object]:
    unshare = shutil.which("unshare")
    assert unshare is not None, "util-linux's unshare is needed for the read-only mount"
    script = (f'mount --bind -o ro "{folder}" "{folder}" && touch "{folder}/probe" '
              f'2>/dev/null && exit 97; exec "{sys.executable}" -c "$0" "$1"')
    result = subprocess.run([unshare, "-rm", "sh", "-c", script, CHILD, url],
                            input=master.to_base64() + "\n", capture_output=True, text=True,
                            cwd=ROOT, timeout=120, check=False,
                            env=process_environment(PYTHONPATH=str(ROOT)))
    assert result.returncode != 97, "the bind mount was not read-only"
    assert result.returncode == 0, result.stderr[-2000:]
    assert NAME not in result.stdout + result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


@pytest.mark.processes
def test_a_store_on_a_read_only_mount_verifies_reads_and_reports(tmp_path: Path) -> None:
    """Measured: verify, status and a masked report failed on a read-only mount with "cannot
    reach the database". Now they work; appends, erasures and reveals are refused, each
    saying why, and nothing is written."""
    folder = tmp_path / "copy"
    folder.mkdir()
    master = MasterKey.generate()
    url = f"sqlite:///{folder / 'events.db'}"
    fill(url, master)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    seen = run_on_read_only_mount(folder, url, master)
    assert "read-only" in str(seen["writable_open"])
    assert seen["note"] is None or "immutable" in str(seen["note"])
    assert seen["verify"] == [True, 4]
    assert seen["status"] == ["active", "erased"]
    assert seen["redacted"] == [[], [], ["email", "name"]]
    assert (seen["masked_report"], seen["masked_report_clean"]) == (True, True)
    assert "cannot be recorded in $access" in str(seen["reveal"])
    assert "read-only" in str(seen["append"])
    assert "read-only" in str(seen["erase"])
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_read_only_on_both_backends_writes_nothing(any_url: str) -> None:
    """read_only=True on a writable database (a replica, say): the same refusals, and the log
    stays as it was."""
    master = MasterKey.generate()
    fill(any_url, master)
    with EventStore(any_url, master_key=master, read_only=True) as store:
        head = store.head()
        assert store.verify().ok
        assert store.subject_status("c-2").state == "erased"
        with pytest.raises(ReadOnlyStoreError, match="cannot be recorded"):
            write_report(store, io.StringIO(), scope=Scope(), fmt="json", reveal=True)
        with pytest.raises(ReadOnlyStoreError):
            store.erase_subject("c-1")
        assert store.head() == head
        assert store.subject_status("c-1").state == "active"


CLI_CHILD = """
import json, sys
from tests.cli.runner import shredstore
results = []
for args in json.loads(sys.argv[1]):
    done = shredstore(*args)
    results.append([done.returncode, done.stdout, done.stderr])
print(json.dumps(results))
"""
"""The commands, one after the other in the process that sees the read-only mount (each opens
and closes a store of its own, as a process of its own would; tests/cli/runner.py)."""


@pytest.mark.processes
def test_the_command_line_audits_a_copy_on_a_read_only_mount(tmp_path: Path) -> None:
    """verify, status and a masked report work on a read-only mount; report --reveal and
    export of a held subject refuse (exit 2) and say that the reveal cannot be recorded; an
    erasure is refused; nothing in the folder changes."""
    folder = tmp_path / "copy"
    folder.mkdir()
    master = MasterKey.generate()
    url = f"sqlite:///{folder / 'events.db'}"
    fill(url, master)
    key_file = tmp_path / "master.key"
    master.to_file(key_file)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    common = ["--url", url, "--master-key-file", str(key_file)]
    commands = [[*common, "verify"], [*common, "status", "c-2"],
                [*common, "report", "--format", "json"],
                [*common, "report", "--format", "json", "--reveal"],
                [*common, "export", "c-0"], [*common, "export", "c-2"],
                [*common, "erase", "c-1", "--receipts", str(tmp_path / "receipts")]]
    unshare = shutil.which("unshare")
    assert unshare is not None, "util-linux's unshare is needed for the read-only mount"
    script = (f'mount --bind -o ro "{folder}" "{folder}" && exec "{sys.executable}" -c "$0" '
              '"$1"')
    result = subprocess.run([unshare, "-rm", "sh", "-c", script, CLI_CHILD,
                             json.dumps(commands)], capture_output=True, text=True, cwd=ROOT,
                            timeout=300, check=False,
                            env=process_environment(PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = json.loads(result.stdout)
    for _, out, err in outcomes:
        assert NAME not in out + err
        assert "Traceback" not in err
    verify, status, masked, revealed, held, erased, erasing = outcomes
    assert verify[0] == 0, verify
    assert "intact" in verify[1]
    assert (status[0], status[1].splitlines()[0]) == (0, "c-2: erased")
    assert masked[0] == 0, masked
    assert json.loads(masked[1])["summary"]["values"] == "masked"
    for refused in (revealed, held):
        assert refused[0] == 2, refused
        assert "cannot be recorded in $access" in refused[2]
    assert erased[0] == 0, erased  # an erased subject's export reveals nothing
    assert json.loads(erased[1])["state"] == "erased"
    assert erasing[0] != 0
    assert "read-only" in erasing[1] + erasing[2]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
