"""Erasure: destroy a subject's key, record it in the log, prove it in a receipt; repair.

An erasure (`erase`) destroys the subject's key (the vault keeps a tombstone) and appends a
`SubjectErased` event, which holds no personal data, to the system stream ``$erasures``: the
log itself is the durable ledger of erasures, as tamper-evident as every other event, and it
outranks the vault. The erasure returns an `ErasureReceipt`: what was held, the log head at
erasure, the fingerprint of the destroyed key, and a check that the subject's ciphertext no
longer opens; signed with Ed25519 if a signing key is given, so that `verify_receipt` can later
show it was not edited.

The modules: `workflow` (erase, shred, receipts from an erasure or from the ledger), `plan`
(a dry run, and the refusal of subjects the store knows nothing of), `receipts` (the receipt,
its signature and its file), `reconcile` (the ledger against the vault), `consistency` (the
same for one subject), `residue` (what read models still hold after an erasure), `scrubbing`
(old bytes in the database files), `requests` (batch files of erasure requests).

Importing this package hands `erase` to `EventStore.erase_subject` (the facade sits below the
workflows and offers the shortcut through `shredstore.store.use_erasure_workflow`); importing
`shredstore` does so.
"""

from shredstore.erasure.consistency import LedgerDisagreement, consistency
from shredstore.erasure.plan import ErasurePlan, plan
from shredstore.erasure.receipts import (
    RECEIPT_FORMAT,
    ErasureReceipt,
    ReceiptCheck,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    parse_receipt,
    prepare_receipt_folder,
    verify_receipt,
    write_receipt,
)
from shredstore.erasure.reconcile import (
    ReconcileReport,
    ledger,
    ledger_entry,
    ledger_event_id,
    ledger_gaps,
    reconcile,
    resurrected,
)
from shredstore.erasure.scrubbing import SCRUB_WAIT_SECONDS, ScrubReport, scrub
from shredstore.erasure.workflow import (
    CHECK_SAMPLE,
    erase,
    receipt_for,
    receipt_from_ledger,
    shred,
)
from shredstore.errors import (  # re-exported: receipts raise the one, erase and plan the other
    ReceiptParseError,
    UnknownSubjectError,
)
from shredstore.evidence import PhysicalCheck, PhysicalFinding, ResidueFinding, ResidueReport
from shredstore.store import use_erasure_workflow as _use_erasure_workflow
from shredstore.subject import CiphertextCheck, Footprint, LedgerGaps, Shredded, SubjectScan
from shredstore.system import LEDGER_STREAM, SubjectErased

__all__ = [
    "CHECK_SAMPLE",
    "CiphertextCheck",
    "ErasurePlan",
    "ErasureReceipt",
    "Footprint",
    "LEDGER_STREAM",
    "LedgerDisagreement",
    "LedgerGaps",
    "PhysicalCheck",
    "PhysicalFinding",
    "RECEIPT_FORMAT",
    "ReceiptCheck",
    "ReceiptParseError",
    "ReconcileReport",
    "ResidueFinding",
    "ResidueReport",
    "SCRUB_WAIT_SECONDS",
    "ScrubReport",
    "Shredded",
    "SubjectErased",
    "SubjectScan",
    "UnknownSubjectError",
    "consistency",
    "erase",
    "generate_signing_key",
    "ledger",
    "ledger_entry",
    "ledger_event_id",
    "ledger_gaps",
    "load_public_key",
    "load_signing_key",
    "parse_receipt",
    "plan",
    "prepare_receipt_folder",
    "receipt_for",
    "receipt_from_ledger",
    "reconcile",
    "resurrected",
    "scrub",
    "shred",
    "verify_receipt",
    "write_receipt",
]

_use_erasure_workflow(erase)
