"""A vault restored from a backup never undoes an erasure, for running processes and new ones.

The vault lives in its own database (`--vault-url`), so that restoring it leaves the event log
and its erasure ledger as they were: the ledger must win. A restore is done the way a
database restore looks to the processes connected to it: every row of the vault's tables is
replaced, in one transaction, by the rows of a backup taken earlier. Long-running readers are
real processes (tests/shredding/_process_workers.py); the commands run the command line in
the test's process (tests/cli/runner.py), each with a store of its own, as a new process has.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.erasure import ledger, reconcile
from tests.cli.runner import Ran, shredstore
from tests.processes import CommandChild
from tests.shredding._process_workers import SHOWN_REDACTED
from tests.shredding.events import CustomerRegistered

WORKER = "tests.shredding._process_workers"
TIMEOUT = 60.0
VAULT_TABLES = ("keyvault_state", "keyvault_subjects", "keyvault_service_keys")
NAMES = {f"s{n}": (f"Restore-Name-{n}-Quokka", f"restore{n}.quokka@example.org")
         for n in range(1, 7)}

Backup = dict[str, list[dict[str, Any]]]


@pytest.fixture
def urls(separate_urls: tuple[str, str]) -> tuple[str, str]:
    return separate_urls


def backup(vault_url: str) -> Backup:
    engine = sa.create_engine(vault_url)
    try:
        with engine.connect() as conn:
            return {table: [dict(row._mapping) for row in
                            conn.execute(sa.text(f"SELECT * FROM {table}"))]
                    for table in VAULT_TABLES}
    finally:
        engine.dispose()


def restore(vault_url: str, saved: Backup) -> None:
    engine = sa.create_engine(vault_url)
    try:
        with engine.begin() as conn:
            for table, rows in saved.items():
                conn.execute(sa.text(f"DELETE FROM {table}"))
                if rows:
                    columns = list(rows[0])
                    conn.execute(sa.text(
                        f"INSERT INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(':' + c for c in columns)})"), rows)
    finally:
        engine.dispose()


def cli(*args: str, urls: tuple[str, str], master: Path, cwd: Path) -> Ran:
    """A command, run in this process (tests/cli/runner.py): each opens a store of its own and
    keeps nothing cached from one command to the next, as a new process would."""
    return shredstore(*args, url=urls[0], master=master, cwd=cwd,
                      env={"SHREDSTORE_VAULT_URL": urls[1]})


def shows(result: Ran, subject: str) -> bool:
    """Whether the command's output holds any personal value of `subject`."""
    return any(value in result.stdout + result.stderr for value in NAMES[subject])


def fill(store: EventStore) -> None:
    for subject, (name, email) in NAMES.items():
        store.append(f"customer-{subject}", [CustomerRegistered(
            customer_id=subject, name=name, email=email, credit_limit=1)])


def reader(urls: tuple[str, str], master: MasterKey, deadline: float) -> CommandChild:
    child = CommandChild(WORKER, urls[0], "--vault-url", urls[1], secret=master.to_base64(),
                         name="reader")
    assert child.message(deadline).get("ready") is True, child.describe()
    return child


def read_back(child: CommandChild, subject: str, deadline: float) -> str:
    """What the reader process sees of the subject's name."""
    answer = child.ask({"op": "read", "stream": f"customer-{subject}"}, deadline)
    assert "error" not in answer, (answer, child.describe())
    name: str = answer["events"][0]["fields"]["name"]
    return name


@pytest.mark.processes
def test_the_ledger_wins_over_a_restored_vault(urls: tuple[str, str], tmp_path: Path,
                                               master_file: Path) -> None:
    """Measured: after `erase s1` and a restore of the vault from an earlier backup, `export
    s1` printed s1's data with exit 0, `status s1` said "active" and `report --reveal` showed
    the values. Now every read, export, report and status says erased, in running processes
    and new ones; verify reports the key held again and reconcile destroys it."""
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.from_file(master_file)
    with EventStore(urls[0], master_key=master, vault_url=urls[1]) as store:
        fill(store)
    saved = backup(urls[1])
    child = reader(urls, master, deadline)
    try:
        assert read_back(child, "s1", deadline) == NAMES["s1"][0]
        erased = cli("erase", "s1", urls=urls, master=master_file, cwd=tmp_path)
        assert erased.returncode == 0, erased.stderr
        restore(urls[1], saved)
        with EventStore(urls[0], master_key=master, vault_url=urls[1]) as store:
            assert store.vault.status("s1").state == "active"  # the restore brought it back
        assert read_back(child, "s1", deadline) == SHOWN_REDACTED
        assert read_back(child, "s2", deadline) == NAMES["s2"][0]

        exported = cli("export", "s1", urls=urls, master=master_file, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        assert json.loads(exported.stdout)["state"] == "erased"
        assert not shows(exported, "s1")
        status = cli("status", "s1", urls=urls, master=master_file, cwd=tmp_path)
        assert status.stdout.splitlines()[0] == "s1: erased"
        revealed = cli("report", "--reveal", "--format", "json", "--subject", "s1",
                       urls=urls, master=master_file, cwd=tmp_path)
        assert not shows(revealed, "s1")
        integrity = json.loads(revealed.stdout)["summary"]["integrity"]  # verify's: the gap
        assert revealed.returncode == 1
        assert not integrity["ok"]
        assert any("reconcile" in finding for finding in integrity["findings"])

        verified = cli("verify", urls=urls, master=master_file, cwd=tmp_path)
        assert verified.returncode == 1
        assert "resurrected" in verified.stdout
        assert "reconcile" in verified.stdout
        repaired = cli("reconcile", urls=urls, master=master_file, cwd=tmp_path)
        assert repaired.returncode == 0, repaired.stderr
        assert "re-erased s1" in repaired.stdout
        assert cli("verify", urls=urls, master=master_file, cwd=tmp_path).returncode == 0
        assert read_back(child, "s1", deadline) == SHOWN_REDACTED
        child.finish(deadline)
    finally:
        child.kill()


@pytest.mark.processes
def test_a_running_process_sees_erasures_after_a_vault_restore(
        urls: tuple[str, str], tmp_path: Path, master_file: Path) -> None:
    """Measured: a long-running process kept decrypting a subject erased after a vault restore,
    because the restore set the erasure counter back and the cache compared counter values.
    Here the counter returns to the very number the reader last saw, over other erasures;
    the reader must still drop its cached key of the subject erased since."""
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.from_file(master_file)
    with EventStore(urls[0], master_key=master, vault_url=urls[1]) as store:
        fill(store)
        store.erase_subject("s3")
        saved = backup(urls[1])  # one erasure in
        child = reader(urls, master, deadline)
        try:
            assert read_back(child, "s2", deadline) == NAMES["s2"][0]  # s2's key cached
            store.erase_subject("s4")
            store.erase_subject("s5")  # the counter is at 3
            assert read_back(child, "s2", deadline) == NAMES["s2"][0]  # the reader saw 3
            restore(urls[1], saved)  # back to 1
            # At 3 again, over another history; in the vault alone (erasures interrupted
            # before their ledger entries), so that only the vault's own check can tell.
            store.vault.erase("s6")
            store.vault.erase("s2")
            assert child.ask({"op": "cached", "subject": "s2"}, deadline)["cached"]
            assert read_back(child, "s2", deadline) == SHOWN_REDACTED
            assert not child.ask({"op": "cached", "subject": "s2"}, deadline)["cached"]
            # s4 and s5, erased before the restore, stay erased through the ledger.
            assert read_back(child, "s4", deadline) == SHOWN_REDACTED
            assert read_back(child, "s5", deadline) == SHOWN_REDACTED
            child.finish(deadline)
        finally:
            child.kill()
        assert set(ledger(store)) == {"s3", "s4", "s5"}
        report = reconcile(store)
        assert (set(report.re_erased), set(report.recorded)) == ({"s4", "s5"}, {"s2", "s6"})
        assert store.verify().ok
