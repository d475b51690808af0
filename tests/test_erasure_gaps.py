"""The vault's tombstones and the erasure ledger never silently disagree.

Where the vault shares the store's database, an erasure destroys the key and appends the
ledger entry in one transaction: a failure, or a process killed at any moment, leaves both or
neither. With a vault of its own, `verify` reports every difference (exit 1 on the command
line, naming `shredstore reconcile`) and `reconcile` repairs both kinds. On both backends.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.erasure import ledger, ledger_gaps, reconcile
from tests.cli.forked import Forked
from tests.cli.runner import process_environment
from tests.shredding.events import CustomerRegistered

NAME, EMAIL = "Gap-Test-Pangolin-4471", "gap.pangolin4471@example.org"


def customer(subject: str) -> CustomerRegistered:
    return CustomerRegistered(customer_id=subject, name=NAME, email=EMAIL, credit_limit=5)


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


def tombstones(store: EventStore) -> set[str]:
    return {status.subject_id for status in store.vault.erasures()}


class Refused(Exception):
    """The injected failure of a ledger append."""


def test_shared_vault_the_key_survives_a_failed_ledger_append(
        any_url: str, master: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the vault in the store's database, if the ledger entry cannot be appended the
    key is not destroyed either: the erasure is all or nothing."""
    with EventStore(any_url, master_key=master) as store:
        store.append("customer-1", [customer("c-1")])

        def refuse(*_: Any) -> Any:
            raise Refused

        with monkeypatch.context() as patch:
            patch.setattr(store, "_ledger_rows", refuse)
            with pytest.raises(Refused):
                store.erase_subject("c-1")
        assert store.vault.status("c-1").state == "active"
        assert (tombstones(store), set(ledger(store))) == (set(), set())
        (record,) = store.read_stream("customer-1")
        assert record.event.name == NAME
        receipt = store.erase_subject("c-1")
        assert (receipt.held_key, receipt.already_erased) == (True, False)
        assert tombstones(store) == set(ledger(store)) == {"c-1"}
        assert receipt.ledger_position == ledger(store)["c-1"][0]
        again = store.erase_subject("c-1")
        assert (again.already_erased, again.ledger_position) == (True, receipt.ledger_position)


def test_shared_vault_erasing_again_after_a_vault_restore_keeps_one_ledger_entry(
        any_url: str, master: MasterKey) -> None:
    """An erasure whose ledger entry exists (the tombstone was lost) destroys the key in the
    same transaction and appends nothing."""
    with EventStore(any_url, master_key=master) as store:
        store.append("customer-1", [customer("c-1")])
        first = store.erase_subject("c-1")
        engine = sa.create_engine(any_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM keyvault_subjects WHERE subject_id = 'c-1'")
        engine.dispose()
        assert store.subject_status("c-1").state == "erased"  # the ledger says so
        assert [f.kind for f in store.verify().findings] == ["untombstoned"]
        again = store.erase_subject("c-1")
        assert again.ledger_position == first.ledger_position
        assert len(list(store.read_stream("$erasures"))) == 1
        assert store.vault.status("c-1").state == "erased"
        assert store.verify().ok


def test_separate_vault_verify_reports_both_kinds_of_gap_and_reconcile_repairs_them(
        any_url: str, tmp_path: Path, master: MasterKey,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured: a destroyed key without a ledger entry, and a deleted tombstone, both passed
    verify. Now: "unrecorded" and "untombstoned" findings, and reconcile makes them agree."""
    vault_url = f"sqlite:///{tmp_path / 'vault.db'}"
    with EventStore(any_url, master_key=master, vault_url=vault_url) as store:
        for subject in ("c-1", "c-2", "c-3"):
            store.append(f"customer-{subject}", [customer(subject)])

        def interrupted(*_: Any) -> Any:
            raise Refused

        with monkeypatch.context() as patch:  # the key goes, the ledger entry does not
            patch.setattr(store, "_append_system", interrupted)
            with pytest.raises(Refused):
                store.erase_subject("c-1")
        store.erase_subject("c-2")
        vault = sa.create_engine(vault_url)
        with vault.begin() as conn:
            conn.exec_driver_sql("DELETE FROM keyvault_subjects WHERE subject_id = 'c-2'")
        vault.dispose()

        findings = store.verify().findings
        assert sorted((f.kind, f.message.split("'")[1]) for f in findings) == [
            ("unrecorded", "c-1"), ("untombstoned", "c-2")]
        assert all("shredstore reconcile" in f.message for f in findings)
        gaps = ledger_gaps(store)
        assert ([s for s, _ in gaps.untombstoned], gaps.unrecorded) == (["c-2"], ("c-1",))
        # Both read as erased meanwhile: c-1 by its tombstone, c-2 by its ledger entry.
        for subject in ("c-1", "c-2"):
            (record,) = store.read_stream(f"customer-{subject}")
            assert record.redacted_fields == {"name", "email"}

        report = reconcile(store)
        assert (report.re_erased, report.recorded) == (("c-2",), ("c-1",))
        assert tombstones(store) == set(ledger(store)) == {"c-1", "c-2"}
        assert not ledger_gaps(store)
        assert store.verify().ok
        assert not reconcile(store).changed


@pytest.mark.processes
def test_shared_vault_a_batch_killed_at_random_moments_leaves_no_gap(
        any_url: str, tmp_path: Path, master_file: Path) -> None:
    """`shredstore erase --from-file`, killed (SIGKILL: no handler runs) at random moments:
    whatever was done, every tombstone has its ledger entry and every entry its tombstone."""
    master = MasterKey.from_file(master_file)
    subjects = [f"k-{n}" for n in range(400)]
    with EventStore(any_url, master_key=master) as store:
        store.append("customers", [customer(subject) for subject in subjects])
    batch = tmp_path / "batch.csv"
    batch.write_text("subject\n" + "".join(f"{s}\n" for s in subjects), encoding="utf-8")
    env = process_environment(SHREDSTORE_URL=any_url)
    rng = random.Random(os.urandom(8))  # noqa: S311 - picks when to kill, not a secret
    for _ in range(5):
        # A real process (forked from this one: no second of imports), so that SIGKILL
        # stops it wherever it is, and no handler runs.
        child = Forked(["erase", "--from-file", str(batch),
                        "--receipts", str(tmp_path / "receipts")], cwd=tmp_path, env=env)
        child.stdout.readline()  # the first subject is done: the batch is under way
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        with EventStore(any_url) as store:
            assert tombstones(store) == set(ledger(store))
            assert not ledger_gaps(store)
