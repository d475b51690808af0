"""The erasure workflow: destroy a subject's key, record it in the ledger, prove it in a receipt.

`erase` is `EventStore.shred` (the key destroyed and the ledger entry appended: the erasure
itself, whose cost does not depend on how much data the subject has) followed by `receipt_for`
(the evidence: one pass over the subject's rows through the subject index), with the residue
check of the read models in between when asked for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import URL, Engine

from keyvault import ErasureResult
from shredstore.erasure.plan import refuse_unknown
from shredstore.erasure.receipts import ErasureReceipt
from shredstore.erasure.residue import (
    Fingerprints,
    ResidueReport,
    check_residue,
    fingerprint_subject,
)
from shredstore.errors import ConfigurationError
from shredstore.storage.engine import create_engine
from shredstore.subject import Shredded

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["CHECK_SAMPLE", "erase", "receipt_for", "receipt_from_ledger", "shred"]

CHECK_SAMPLE = 100
"""At most this many of the subject's sealed values are tried after erasure (first and last)."""


def erase(
    store: EventStore,
    subject_id: str,
    *,
    reason: str | None = None,
    request_id: str | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    verify_residue: bool = False,
    read_models: str | URL | Engine | None = None,
    residue_timeout: float = 30.0,
    allow_unknown: bool = True,
) -> ErasureReceipt:
    """Erase the subject (idempotent), record it in the ledger once, and return the receipt:
    `shred`, then `receipt_for`.

    With `verify_residue`, the subject's values are fingerprinted first (needs the master
    key), and after the erasure the projections registered in `read_models` (a URL or
    Engine; default the store's database) are waited for (up to `residue_timeout` seconds)
    and scanned: the receipt's ``residue`` says what they still hold (see
    `shredstore.erasure.residue`).

    With ``allow_unknown=False``, a subject the store knows nothing of (no key, no erasure
    record, no event naming it: a typo, most likely) is refused with `UnknownSubjectError`
    before anything changes; by default it is erased all the same, which records a tombstone
    so that data arriving later for it is refused (see `plan`).
    """
    status = store.subject_status(subject_id) if verify_residue or not allow_unknown else None
    if status is not None and not allow_unknown:
        refuse_unknown(store, status)
    fingerprints = None
    if verify_residue and status is not None and status.state == "active":
        fingerprints = fingerprint_subject(store, subject_id)
    shredded = shred(store, subject_id, reason=reason, request_id=request_id)
    report = None
    if verify_residue:
        report = ResidueReport((), 0, note="the subject was already erased: its values "
                               "could not be fingerprinted") if fingerprints is None else \
            _check_residue(store, fingerprints, shredded.ledger_position, read_models,
                           residue_timeout)
    return receipt_for(store, shredded, signing_key=signing_key, residue=report)


def _check_residue(store: EventStore, fingerprints: Fingerprints, position: int,
                   read_models: str | URL | Engine | None, timeout: float) -> ResidueReport:
    if read_models is None:
        return check_residue(store.engine, fingerprints, erased_at_position=position,
                             timeout=timeout)
    engine = create_engine(read_models)
    try:
        return check_residue(engine, fingerprints, erased_at_position=position, timeout=timeout)
    finally:
        if not isinstance(read_models, Engine):
            engine.dispose()


def shred(store: EventStore, subject_id: str, *, reason: str | None = None,
          request_id: str | None = None) -> Shredded:
    """The erasure itself: `EventStore.shred`. From its return on, nothing of the subject's
    personal data opens anywhere."""
    return store.shred(subject_id, reason=reason, request_id=request_id)


def receipt_for(store: EventStore, shredded: Shredded, *,
                signing_key: Ed25519PrivateKey | None = None,
                residue: ResidueReport | None = None, reissued: bool = False) -> ErasureReceipt:
    """The evidence of an erasure: what the log held of the subject (one pass over its rows
    through the subject index) and a check that none of its sealed values opens now."""
    result = shredded.result
    scan = store.subject_scan(result.subject_id, sample=CHECK_SAMPLE)
    receipt = ErasureReceipt(
        subject_id=result.subject_id, erased_at=result.erased_at,
        already_erased=result.already_erased, held_key=result.held_key,
        key_fingerprint=result.key_fingerprint, request_id=result.request_id,
        reason=result.reason, footprint=scan.footprint, log_head=store.head(),
        ledger_position=shredded.ledger_position,
        check=store.try_sealed(result.subject_id, scan), issued_at=datetime.now(UTC),
        residue=residue, scrubbed=None if result.already_erased else result.scrubbed,
        reissued=reissued,
    )
    return receipt.signed(signing_key) if signing_key is not None else receipt


def receipt_from_ledger(store: EventStore, subject_id: str, *,
                        signing_key: Ed25519PrivateKey | None = None) -> ErasureReceipt:
    """The receipt of an erasure the ledger records, written afterwards: for an erasure
    whose receipt could not be written (a full disk, a read-only folder) or was lost.

    Its time, request id, reason and key fingerprint are the ledger entry's; the footprint
    and the ciphertext check are made now. Marked ``reissued_from_ledger``. Raises
    `ConfigurationError` if the ledger holds no entry for the subject (nothing was erased).
    """
    found = store.ledger_entry(subject_id)
    if found is None:
        raise ConfigurationError(
            "the erasure ledger holds no entry for this subject: it was not erased (or the "
            "erasure did not finish: erase it again)")
    position, entry = found
    result = ErasureResult(
        subject_id=subject_id, erased_at=entry.erased_at, already_erased=True,
        held_key=entry.key_fingerprint is not None, key_fingerprint=entry.key_fingerprint,
        request_id=entry.request_id, reason=entry.reason, scrubbed=False)
    return receipt_for(store, Shredded(result, position), signing_key=signing_key,
                       reissued=True)


