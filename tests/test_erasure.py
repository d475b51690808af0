"""The erasure workflow on both backends: ledger, receipts, signatures, dry runs, reconcile."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import ConfigurationError, EventStore, SubjectErasedError
from shredstore.erasure import (
    LEDGER_STREAM,
    SubjectErased,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    reconcile,
    verify_receipt,
)
from tests.shredding.events import CustomerRegistered, PaymentSent

NAME, EMAIL = "Quill-Marmoset-3319", "quill.marmoset3319@example.org"
IBAN = "GB94BARC10201530093459"


def customer(subject: str) -> CustomerRegistered:
    return CustomerRegistered(customer_id=subject, name=NAME, email=EMAIL, credit_limit=5)


def payment(payer: str, payee: str) -> PaymentSent:
    return PaymentSent(payer_id=payer, payee_id=payee, payer_iban=IBAN, payee_name=NAME,
                       amount_cents=100)


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def store(any_url: str, master: MasterKey) -> Any:
    with EventStore(any_url, master_key=master) as store:
        store.append("customer-1", [customer("c-1")])
        store.append("customer-2", [customer("c-2")])
        store.append("payments", [payment("c-1", "c-2"), payment("c-2", "c-3")])
        yield store


def raw(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            return list(conn.exec_driver_sql(sql).all())
    finally:
        engine.dispose()


def test_the_footprint_counts_what_an_erasure_would_touch_and_changes_nothing(
    store: EventStore
) -> None:
    """A dry run names the events, streams, types and fields holding the subject's data."""
    head, status = store.head(), store.subject_status("c-1")
    footprint = store.subject_footprint("c-1")
    assert (footprint.events, footprint.mentions) == (2, 2)
    assert footprint.streams == ("customer-1", "payments")
    assert footprint.event_types == ("test.shredding.CustomerRegistered",
                                     "test.shredding.PaymentSent")
    assert footprint.personal_fields == (
        "test.shredding.CustomerRegistered:email", "test.shredding.CustomerRegistered:name",
        "test.shredding.PaymentSent:payer_iban")
    assert (store.head(), store.subject_status("c-1")) == (head, status)
    assert store.subject_footprint("nobody").events == 0


def test_an_erasure_appends_one_ledger_entry_and_returns_a_receipt(store: EventStore) -> None:
    """The receipt counts what was held, names the destroyed key and the log head, and the
    check finds that none of the subject's ciphertext opens; re-erasing adds no entry."""
    fingerprint = store.subject_status("c-2").key_fingerprint
    receipt = store.erase_subject("c-2", reason="Art. 17", request_id="REQ-9")
    assert (receipt.already_erased, receipt.held_key) == (False, True)
    assert receipt.key_fingerprint == fingerprint
    assert (receipt.footprint.events, len(receipt.footprint.streams)) == (3, 2)
    assert receipt.log_head == store.head()
    assert receipt.ledger_position == store.head().position
    assert receipt.check.ok
    assert (receipt.check.sealed_values, receipt.check.checked, receipt.check.opened) == (3, 3, 0)
    (entry,) = list(store.read_stream(LEDGER_STREAM))
    assert isinstance(entry.event, SubjectErased)
    assert (entry.event.subject_id, entry.event.request_id, entry.event.reason,
            entry.event.key_fingerprint) == ("c-2", "REQ-9", "Art. 17", fingerprint)
    again = store.erase_subject("c-2", reason="again")
    assert again.already_erased
    assert again.ledger_position == receipt.ledger_position
    assert len(list(store.read_stream(LEDGER_STREAM))) == 1
    assert store.verify().ok
    body = json.dumps(receipt.to_dict())
    assert all(value not in body for value in (NAME, EMAIL, IBAN)), "personal data in receipt"


def test_the_ledger_stream_is_reserved(store: EventStore) -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        store.append(LEDGER_STREAM, [customer("c-9")])


def test_a_signed_receipt_verifies_and_fails_when_edited(store: EventStore, tmp_path: Path
                                                         ) -> None:
    key_file = tmp_path / "signing.pem"
    key_id = generate_signing_key(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    receipt = store.erase_subject("c-1", signing_key=load_signing_key(key_file))
    data = json.loads(receipt.to_json())
    public = load_public_key(key_file)
    check = verify_receipt(data, public_key=public)
    assert (check.ok, check.key_id) == (True, key_id)
    edited = {**data, "held": {**data["held"], "events": 0}}
    assert not verify_receipt(edited, public_key=public).ok
    other = tmp_path / "other.pem"
    generate_signing_key(other)
    assert "not by" in verify_receipt(data, public_key=load_public_key(other)).message
    unsigned = {name: value for name, value in data.items() if name != "signature"}
    assert verify_receipt(unsigned).message == "the receipt is not signed"
    with pytest.raises(ConfigurationError, match="exists"):
        generate_signing_key(key_file)


def test_reconcile_erases_again_the_keys_a_restored_vault_brought_back(
    store: EventStore, any_url: str, master: MasterKey
) -> None:
    """A vault restored from a backup taken before an erasure holds the key again: the
    ledger still wins (status "erased", the data reads redacted), verify reports it, and
    reconcile erases the key again."""
    backup = raw(any_url, "SELECT subject_id, state, key_version, wrapped_key, wrapped_by, "
                 "key_fingerprint, created_at FROM keyvault_subjects WHERE subject_id = 'c-1'")
    store.erase_subject("c-1", request_id="REQ-1")
    engine = sa.create_engine(any_url)
    with engine.begin() as conn:  # the restore
        conn.exec_driver_sql("DELETE FROM keyvault_subjects WHERE subject_id = 'c-1'")
        conn.execute(sa.text(
            "INSERT INTO keyvault_subjects (subject_id, state, key_version, wrapped_key, "
            "wrapped_by, key_fingerprint, created_at) VALUES (:s, :st, :v, :k, :b, :f, :c)"),
            dict(zip(["s", "st", "v", "k", "b", "f", "c"], backup[0], strict=True)))
    engine.dispose()
    with EventStore(any_url, master_key=master) as restored:
        assert restored.vault.status("c-1").state == "active"
        assert restored.subject_status("c-1").state == "erased"
        (record,) = restored.read_stream("customer-1")
        assert record.redacted_fields == {"name", "email"}
        findings = restored.verify().findings
        assert [f.kind for f in findings] == ["resurrected"]
        report = reconcile(restored)
        assert (report.re_erased, report.recorded) == (("c-1",), ())
        assert restored.subject_status("c-1").request_id == "REQ-1"
        assert restored.verify().ok
        (record,) = restored.read_stream("customer-1")
        assert record.redacted_fields == {"name", "email"}
        assert not reconcile(restored).changed


def test_reconcile_records_erasures_the_ledger_lacks(store: EventStore) -> None:
    """An erasure made in the vault alone (a crash before the ledger entry) is recorded."""
    store.vault.erase("c-2", request_id="REQ-2")
    report = reconcile(store)
    assert report.recorded == ("c-2",)
    (entry,) = list(store.read_stream(LEDGER_STREAM))
    assert isinstance(entry.event, SubjectErased)
    assert (entry.event.subject_id, entry.event.recorded_by) == ("c-2", "reconcile")
    assert not reconcile(store).changed


def test_the_ledger_entry_id_is_a_keyed_hash_of_the_subject(any_url: str, tmp_path: Path,
                                                             master: MasterKey) -> None:
    """A subject's ledger entry keeps one event id within a store, but it is no unkeyed
    function of the subject id: another store gives the same subject another id, and neither
    is the UUIDv5 that used to be written (reversed by hashing candidate ids)."""
    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    ids = []
    for url in (any_url, other_url):
        with EventStore(url, master_key=master) as store:
            store.append("c", [customer("subject-77")])
            store.erase_subject("subject-77")
            store.erase_subject("subject-77")
            (entry,) = [r for r in store.read_all() if r.stream_id == LEDGER_STREAM]
            ids.append(entry.event_id)
    assert ids[0] != ids[1]
    legacy = uuid.uuid5(uuid.UUID("5f1c2e8a-3d9b-5c47-9a61-0b7e4d2f8c13"), "subject-77")
    assert legacy not in ids


@pytest.mark.parametrize("separate_vault", [False, True])
def test_a_subject_the_ledger_names_stays_erased_without_its_tombstone(
    any_url: str, tmp_path: Path, master: MasterKey, separate_vault: bool,
) -> None:
    """Personal data for a subject with a ledger entry is refused even when the vault lost its
    tombstone (a vault restored from a backup, a deleted row): nothing is written."""
    vault_url = f"sqlite:///{tmp_path / 'vault.db'}" if separate_vault else None
    with EventStore(any_url, master_key=master, vault_url=vault_url) as store:
        store.append("customer-7", [customer("c-7")])
        store.erase_subject("c-7")
        head = store.head()
    vault = sa.create_engine(vault_url or any_url)
    with vault.begin() as conn:
        conn.execute(sa.text("DELETE FROM keyvault_subjects WHERE subject_id = 'c-7'"))
    vault.dispose()
    with EventStore(any_url, master_key=master, vault_url=vault_url) as store:
        with pytest.raises(SubjectErasedError, match="was erased"):
            store.append("customer-7b", [customer("c-7")])
        assert store.head() == head
        store.append("customer-8", [customer("c-8")])  # others are not held up
