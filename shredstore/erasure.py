"""The erasure workflow: destroy a subject's key, record it in the log, prove it in a receipt.

An erasure (`erase`) deletes the subject's key and records the vault's tombstone, then appends a
`SubjectErased` event, which holds no personal data, to the system stream ``$erasures``: the log
itself is the durable ledger of erasures, as tamper-evident as every other event. The erasure
returns an `ErasureReceipt`: what was held, the log head at erasure, the fingerprint of the
destroyed key, and a check that the subject's ciphertext no longer opens; signed with Ed25519 if
a signing key is given, so that `verify_receipt` can later show it was not edited.

A vault restored from an old backup brings erased keys back. `reconcile` reads the ledger and
erases again every key the vault still holds for a subject the ledger says is erased (and
records in the ledger any tombstone the ledger lacks, e.g. after a crash between the two steps).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import URL, Connection, Engine

import keyvault
from keyvault import ErasureResult
from shredstore.errors import ConfigurationError, ShredstoreError
from shredstore.expected import ANY
from shredstore.residue import Fingerprints, ResidueReport, check_residue, fingerprint_subject
from shredstore.storage.chain import LogHead
from shredstore.storage.engine import create_engine
from shredstore.storage.log import NewRow
from shredstore.system import LEDGER_STREAM, SubjectErased

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = [
    "LEDGER_STREAM",
    "RECEIPT_FORMAT",
    "CiphertextCheck",
    "ErasureReceipt",
    "Footprint",
    "ReceiptCheck",
    "ReceiptParseError",
    "LedgerGaps",
    "ReconcileReport",
    "Shredded",
    "SubjectErased",
    "erase",
    "generate_signing_key",
    "ledger",
    "ledger_entry",
    "ledger_event_id",
    "ledger_gaps",
    "load_public_key",
    "load_signing_key",
    "parse_receipt",
    "prepare_receipt_folder",
    "receipt_for",
    "receipt_from_ledger",
    "reconcile",
    "resurrected",
    "shred",
    "verify_receipt",
    "write_receipt",
]

RECEIPT_FORMAT = "shredstore.erasure-receipt/2"
"""Version 2: the signature also covers its own block (algorithm, public key, key id)."""

_OLD_FORMATS = frozenset({"shredstore.erasure-receipt/1"})

CHECK_SAMPLE = 100
"""At most this many of the subject's sealed values are tried after erasure (first and last)."""


@dataclass(frozen=True, slots=True)
class Footprint:
    """What the log holds of a subject's personal data (read from the subject index)."""

    subject_id: str
    events: int
    """Events holding personal data of the subject."""
    streams: tuple[str, ...]
    event_types: tuple[str, ...]
    personal_fields: tuple[str, ...]
    """As ``event_type:field.path``."""
    snapshots: int
    """Snapshots holding personal data of the subject."""
    mentions: int
    """Events that name the subject at all (with or without its personal data)."""

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject_id, "events": self.events,
                "streams": list(self.streams), "event_types": list(self.event_types),
                "personal_fields": list(self.personal_fields), "snapshots": self.snapshots,
                "events_naming_subject": self.mentions}


@dataclass(frozen=True, slots=True)
class CiphertextCheck:
    """After erasure: of the subject's `sealed_values`, `checked` were tried; `opened` opened."""

    sealed_values: int
    checked: int
    opened: int
    failed: int
    """Values that failed authentication (tampered), neither opened nor redacted."""
    key_held: bool
    """Whether the vault still holds a key for the subject."""

    @property
    def ok(self) -> bool:
        return self.opened == 0 and self.failed == 0 and not self.key_held

    def to_dict(self) -> dict[str, Any]:
        return {"sealed_values": self.sealed_values, "checked": self.checked,
                "opened": self.opened, "failed_authentication": self.failed,
                "key_held": self.key_held,
                "result": "no ciphertext of the subject opens" if self.ok
                else "the subject's data can still be opened"}


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """The evidence of one erasure; `to_json` is what the CLI writes and `verify_receipt` checks.

    Also answers as `keyvault.ErasureResult` did: `already_erased`, `held_key`, `erased_at`.
    """

    subject_id: str
    erased_at: datetime
    already_erased: bool
    held_key: bool
    key_fingerprint: str | None
    request_id: str | None
    reason: str | None
    footprint: Footprint
    log_head: LogHead
    ledger_position: int | None
    check: CiphertextCheck
    issued_at: datetime
    residue: ResidueReport | None = field(default=None)
    """The read models' scan, when the erasure was asked to verify residue."""
    scrubbed: bool | None = field(default=None)
    """Whether the destroyed key's bytes were made to leave the vault's live database files
    (see `keyvault.KeyVault.scrub`); None where this receipt cannot know (an earlier erasure,
    or a receipt written later from the ledger): run `shredstore scrub` to be sure."""
    reissued: bool = field(default=False)
    """Written later from the ledger (`receipt_from_ledger`), not by the erasure itself."""
    signature: dict[str, str] | None = field(default=None)

    @property
    def ok(self) -> bool:
        """Whether the check found nothing of the subject's data that still opens (and, when
        residue was verified, nothing of it in any read model)."""
        return self.check.ok and (self.residue is None or self.residue.clean)

    def body(self) -> dict[str, Any]:
        """The receipt without its signature: what a signature covers."""
        return {
            "format": RECEIPT_FORMAT,
            "subject": self.subject_id,
            "request_id": self.request_id,
            "reason": self.reason,
            "erased_at": self.erased_at.isoformat(),
            "already_erased": self.already_erased,
            "held": {"events": self.footprint.events, "streams": len(self.footprint.streams),
                     "snapshots": self.footprint.snapshots},
            "log_head": {"position": self.log_head.position,
                         "hash": self.log_head.hash.hex()},
            "ledger_position": self.ledger_position,
            "key": {"held": self.held_key, "fingerprint": self.key_fingerprint,
                    "scrubbed": self.scrubbed},
            "check": self.check.to_dict(),
            **({"residue": self.residue.to_dict()} if self.residue is not None else {}),
            "issued_at": self.issued_at.isoformat(),
            **({"reissued_from_ledger": True} if self.reissued else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        data = self.body()
        if self.signature is not None:
            data["signature"] = dict(self.signature)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def signed(self, key: Ed25519PrivateKey) -> ErasureReceipt:
        """This receipt signed with `key`: Ed25519 over the canonical JSON of every field,
        the signature block's algorithm, public key and key id included."""
        public = _raw_public(key.public_key())
        block = {"algorithm": "Ed25519", "public_key": base64.b64encode(public).decode(),
                 "key_id": _key_id(public)}
        value = key.sign(_canonical({**self.body(), "signature": block}))
        return _replace_signature(self, {**block, "value": base64.b64encode(value).decode()})


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """The outcome of `verify_receipt`: `ok`, and why not."""

    ok: bool
    message: str
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerGaps:
    """Where the erasure ledger and the vault disagree (see `ledger_gaps`)."""

    resurrected: tuple[tuple[str, int], ...]
    """(subject, ledger position): the ledger names it, the vault holds its key again."""
    untombstoned: tuple[tuple[str, int], ...]
    """(subject, ledger position): the ledger names it, the vault knows nothing of it."""
    unrecorded: tuple[str, ...]
    """Subjects the vault erased that the ledger does not name (an interrupted erasure)."""

    def __bool__(self) -> bool:
        return bool(self.resurrected or self.untombstoned or self.unrecorded)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What `reconcile` found and did."""

    ledger_entries: int
    re_erased: tuple[str, ...]
    """Subjects the ledger says are erased whose key the vault held again: erased again."""
    recorded: tuple[str, ...]
    """Subjects erased in the vault that the ledger lacked: entries appended."""

    @property
    def changed(self) -> bool:
        return bool(self.re_erased or self.recorded)


@dataclass(frozen=True, slots=True)
class Shredded:
    """The outcome of `shred`: the vault's answer and where the ledger records the erasure."""

    result: ErasureResult
    ledger_position: int


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
) -> ErasureReceipt:
    """Erase the subject (idempotent), record it in the ledger once, and return the receipt:
    `shred`, then `receipt_for`.

    With `verify_residue`, the subject's values are fingerprinted first (needs the master
    key), and after the erasure the projections registered in `read_models` (a URL or
    Engine; default the store's database) are waited for (up to `residue_timeout` seconds)
    and scanned: the receipt's ``residue`` says what they still hold (see
    `shredstore.residue`).
    """
    fingerprints = None
    if verify_residue and store.subject_status(subject_id).state == "active":
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
        return check_residue(store._engine, fingerprints, erased_at_position=position,
                             timeout=timeout)
    engine = create_engine(read_models)
    try:
        return check_residue(engine, fingerprints, erased_at_position=position, timeout=timeout)
    finally:
        if not isinstance(read_models, Engine):
            engine.dispose()


def shred(store: EventStore, subject_id: str, *, reason: str | None = None,
          request_id: str | None = None) -> Shredded:
    """Destroy the subject's key and make sure the ledger records it: the erasure itself.

    Its cost does not depend on how much data the subject has. From its return on, nothing
    of the subject's personal data opens anywhere.

    Where the vault shares the store's database, the key's destruction and the ledger entry
    commit in one transaction: neither happens without the other. With a vault of its own,
    the key is destroyed first, then the entry appended; an interruption between the two
    leaves a tombstone the ledger lacks, which `verify` reports ("unrecorded") and
    `reconcile` records.
    """
    if store._vault_shares_database:
        return _shred_atomically(store, subject_id, reason=reason, request_id=request_id)
    result = _erase_key(store, subject_id, reason=reason, request_id=request_id)
    position = _record(store, _entry(result))
    return Shredded(result, position)


def _shred_atomically(store: EventStore, subject_id: str, *, reason: str | None,
                      request_id: str | None) -> Shredded:
    erased: list[ErasureResult] = []

    def erase_and_record(connection: Connection) -> list[NewRow]:
        erased[:] = [_erase_key(store, subject_id, reason=reason, request_id=request_id,
                                connection=connection)]
        if store._log.in_ledger(connection, [subject_id]):
            return []  # recorded before (a vault restored since, say): the key goes now
        return store._ledger_rows(_entry(erased[0]))

    appended = store._log.append(LEDGER_STREAM, erase_and_record, expected_version=ANY)
    result = erased[0]
    if result.held_key and not result.already_erased:
        result = dataclasses.replace(result, scrubbed=store.vault.checkpoint())
    if appended.positions:
        return Shredded(result, appended.positions[0])
    found = store._ledger_entry(subject_id)
    if found is None:  # pragma: no cover - it was found inside the transaction
        raise ConfigurationError("the ledger entry vanished: is the log being restored?")
    return Shredded(result, found[0])


def _entry(result: ErasureResult, *, recorded_by: Literal["erase", "reconcile"] = "erase"
           ) -> SubjectErased:
    return SubjectErased(
        subject_id=result.subject_id, erased_at=result.erased_at,
        request_id=result.request_id, reason=result.reason,
        key_fingerprint=result.key_fingerprint, recorded_by=recorded_by)


def receipt_for(store: EventStore, shredded: Shredded, *,
                signing_key: Ed25519PrivateKey | None = None,
                residue: ResidueReport | None = None, reissued: bool = False) -> ErasureReceipt:
    """The evidence of an erasure: what the log held of the subject (one pass over its rows
    through the subject index) and a check that none of its sealed values opens now."""
    result = shredded.result
    scan = store._scan_subject(result.subject_id, sample=CHECK_SAMPLE)
    receipt = ErasureReceipt(
        subject_id=result.subject_id, erased_at=result.erased_at,
        already_erased=result.already_erased, held_key=result.held_key,
        key_fingerprint=result.key_fingerprint, request_id=result.request_id,
        reason=result.reason, footprint=scan.footprint, log_head=store.head(),
        ledger_position=shredded.ledger_position,
        check=store._try_sealed(result.subject_id, scan), issued_at=datetime.now(UTC),
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
    found = store._ledger_entry(subject_id)
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


def ledger_entry(store: EventStore, subject_id: str) -> tuple[int, SubjectErased] | None:
    """The subject's entry in the erasure ledger and its position; None if it has none.
    One indexed lookup (by the entry's keyed event id)."""
    return store._ledger_entry(subject_id)


def ledger(store: EventStore) -> dict[str, tuple[int, SubjectErased]]:
    """The erasure ledger: each subject's first `SubjectErased` entry, with its position."""
    entries: dict[str, tuple[int, SubjectErased]] = {}
    for record in store.read_stream(LEDGER_STREAM):
        event = record.event
        if isinstance(event, SubjectErased) and event.subject_id not in entries:
            entries[event.subject_id] = (record.position, event)
    return entries


def reconcile(store: EventStore, *, progress: Callable[[int, int], None] | None = None
              ) -> ReconcileReport:
    """Make the ledger and the vault agree (`ledger_gaps`): erase again every subject the
    ledger names that the vault does not hold as erased (a key held again, or no tombstone);
    add to the ledger every tombstone it lacks. Idempotent."""
    entries = ledger(store)
    gaps = _gaps(store, entries)
    missing = [*gaps.resurrected, *gaps.untombstoned]
    re_erased = []
    for done, (subject, _) in enumerate(sorted(missing), start=1):
        entry = entries[subject][1]
        _erase_key(store, subject, request_id=entry.request_id,
                   reason="re-erased by reconcile (the vault did not hold the erasure)")
        re_erased.append(subject)
        if progress is not None:
            progress(done, len(missing))
    recorded = []
    for subject in gaps.unrecorded:
        status = store.vault.status(subject)
        _record(store, SubjectErased(
            subject_id=subject, erased_at=status.erased_at or datetime.now(UTC),
            request_id=status.request_id, reason=status.reason,
            key_fingerprint=status.key_fingerprint, recorded_by="reconcile"))
        recorded.append(subject)
    return ReconcileReport(len(entries), tuple(re_erased), tuple(recorded))


def ledger_gaps(store: EventStore) -> LedgerGaps:
    """Where the erasure ledger and the vault's tombstones disagree, both ways.

    Reads the whole ledger and every tombstone once (a few thousand rows per second of
    erasures: `verify` and `reconcile` run it).
    """
    return _gaps(store, ledger(store))


def _gaps(store: EventStore, entries: dict[str, tuple[int, SubjectErased]]) -> LedgerGaps:
    vault = store.vault
    subjects = sorted(entries)
    erased = frozenset().union(*(vault.erased_subjects(subjects[i:i + 500])
                                 for i in range(0, len(subjects), 500)))
    resurrected: list[tuple[str, int]] = []
    untombstoned: list[tuple[str, int]] = []
    for subject in subjects:
        if subject in erased:
            continue
        held = vault.status(subject).state == "active"
        (resurrected if held else untombstoned).append((subject, entries[subject][0]))
    unrecorded = tuple(status.subject_id for status in vault.erasures()
                       if status.subject_id not in entries)
    return LedgerGaps(tuple(resurrected), tuple(untombstoned), unrecorded)


def resurrected(store: EventStore) -> list[tuple[str, int]]:
    """Subjects the ledger says are erased for which the vault holds a key again, each with
    the position of its ledger entry."""
    return list(ledger_gaps(store).resurrected)


def write_receipt(folder: Path, receipt: ErasureReceipt) -> Path:
    """Write `receipt` as JSON into `folder` (created if missing) and return its path.

    The name is ``erasure-<time>-[<request id>-]<random>.json``: no function of the subject id
    (a hash of an id is reversed by hashing candidate ids), the request id only as a short
    file-safe label. A new file is created (mode 0600) and never replaces an existing one.
    """
    prepare_receipt_folder(folder)
    stamp = receipt.issued_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = _file_label(receipt.request_id)
    text = receipt.to_json().encode("utf-8")
    # Written whole under a temporary name first, then linked to its final name, which
    # fails rather than replace an existing receipt: a receipt is never seen half written.
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".receipt-", suffix=".partial")
    except OSError as error:
        raise ConfigurationError(f"cannot write a receipt in {folder}: {error.strerror}") from None
    partial = Path(name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        for _ in range(8):
            path = folder / f"erasure-{stamp}-{label}{secrets.token_hex(4)}.json"
            try:
                os.link(partial, path)
            except FileExistsError:
                continue
            return path
    except OSError as error:
        raise ConfigurationError(f"cannot write a receipt in {folder}: {error.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    raise ConfigurationError(f"cannot find a free receipt file name in {folder}")


def prepare_receipt_folder(folder: Path) -> None:
    """Create the receipts folder if missing; ConfigurationError if it cannot be.

    The command line calls it before erasing anything, so that a bad folder stops the run
    before a key is destroyed rather than after.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"cannot create {folder}: {error.strerror}") from None


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _file_label(request_id: str | None) -> str:
    """The request id as a short, safe part of a file name (``""`` without one)."""
    if request_id is None:
        return ""
    label = _UNSAFE.sub("_", request_id).strip("_")[:32]
    return f"{label}-" if label else ""


# Signing


def generate_signing_key(path: Path) -> str:
    """Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) to `path`; return its key id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        with path.open("xb") as out:
            path.chmod(0o600)
            out.write(pem)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists: not overwriting a key") from None
    except OSError as error:
        raise ConfigurationError(f"cannot write {path}: {error.strerror}") from None
    return _key_id(_raw_public(key.public_key()))


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file; ConfigurationError (without contents) if not."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise ConfigurationError(f"cannot read the signing key {path}: {error.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key: a PEM public key, or the PEM private key it belongs to."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"cannot read the public key {path}: {error.strerror}") from None
    try:
        key: object = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigurationError(f"{path} is not a PEM Ed25519 key") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"{path} is not an Ed25519 key")
    return key


class ReceiptParseError(ShredstoreError, ValueError):
    """Why a text is not a receipt `verify_receipt` can check (says what, never the content)."""


def parse_receipt(text: str | bytes) -> dict[str, Any]:
    """A receipt's JSON as a dict; `ReceiptParseError` for anything a signature could hide.

    Duplicate keys are refused at every level: a JSON reader keeps one of two equal keys and
    readers disagree which, so a receipt with a duplicate could show one value to a person and
    verify with another. NaN and infinities are refused too (they are not JSON).
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")  # as written; json.loads would guess UTF-16 or -32
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ReceiptParseError("not UTF-8 text") from None
    except ReceiptParseError:
        raise
    except (ValueError, RecursionError):
        raise ReceiptParseError("not JSON") from None
    if not isinstance(data, dict):
        raise ReceiptParseError("not a shredstore erasure receipt")
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ReceiptParseError("a JSON key appears twice in one object: the receipt was altered")
    return data


def _no_constant(name: str) -> NoReturn:
    raise ReceiptParseError(f"{name} is not JSON")


def verify_receipt(  # noqa: PLR0911 - one return per way a receipt can fail
    receipt: Mapping[str, Any] | str | bytes, *, public_key: Ed25519PublicKey | None = None
) -> ReceiptCheck:
    """Check a receipt's signature; against `public_key` if given (else the one it names).

    Give the file's text rather than a parsed dict where you can: only the text shows
    duplicate keys (see `parse_receipt`). The signature covers every field of the receipt and
    of its signature block but the signature value itself; a receipt of an older format
    (signed without its key id) is refused.
    """
    if isinstance(receipt, str | bytes):
        try:
            receipt = parse_receipt(receipt)
        except ReceiptParseError as error:
            return ReceiptCheck(False, str(error))
    found = receipt.get("format")
    if found in _OLD_FORMATS:
        return ReceiptCheck(False, f"signed by an older format ({found}) whose signature does "
                            "not cover its key id: not accepted; erase the subject again for "
                            "a new receipt (it answers 'already erased')")
    if found != RECEIPT_FORMAT:
        return ReceiptCheck(False, "not a shredstore erasure receipt")
    signature = receipt.get("signature")
    if signature is None:
        return ReceiptCheck(False, "the receipt is not signed")
    if not isinstance(signature, Mapping) or set(signature) != _SIGNATURE_FIELDS or not all(
            isinstance(signature[name], str) for name in _SIGNATURE_FIELDS):
        return ReceiptCheck(False, "the signature block is malformed")
    if signature["algorithm"] != "Ed25519":
        return ReceiptCheck(False, "unsupported signature algorithm (only Ed25519)")
    try:
        named = base64.b64decode(signature["public_key"], validate=True)
        value = base64.b64decode(signature["value"], validate=True)
        key = public_key or Ed25519PublicKey.from_public_bytes(named)
    except ValueError:
        return ReceiptCheck(False, "the signature block is malformed")
    key_id = _key_id(_raw_public(key))
    if signature["key_id"] != _key_id(named):
        return ReceiptCheck(False, "the key id does not match the public key: the receipt was "
                            "altered", key_id)
    if public_key is not None and _raw_public(public_key) != named:
        return ReceiptCheck(False, f"signed by key {_key_id(named)}, not by {key_id}", key_id)
    covered = {**receipt, "signature": {name: signature[name] for name in _SIGNATURE_FIELDS
                                        if name != "value"}}
    try:
        key.verify(value, _canonical(covered))
    except (InvalidSignature, UnicodeEncodeError, ValueError, TypeError):
        return ReceiptCheck(False, "the signature does not match: the receipt was altered",
                            key_id)
    return ReceiptCheck(True, f"signature valid (key {key_id})", key_id)


_SIGNATURE_FIELDS = frozenset({"algorithm", "public_key", "key_id", "value"})


def _erase_key(store: EventStore, subject_id: str, *, reason: str | None,
               request_id: str | None, connection: Connection | None = None) -> ErasureResult:
    try:
        return store.vault.erase(subject_id, reason=reason, request_id=request_id,
                                 connection=connection)
    except keyvault.VaultConfigurationError as error:
        raise ConfigurationError(str(error)) from None


def _record(store: EventStore, entry: SubjectErased) -> int:
    """Append the subject's ledger entry, or find it if it is there: its position.

    A subject's entry has a fixed event id, so the log's own idempotent append (a repeated
    event id in the same stream returns the stored result) keeps one entry per subject, also
    when two processes erase the same subject at once, at the cost of one insert.
    """
    entry = entry.model_copy(update={"event_id": ledger_event_id(store, entry.subject_id)})
    return store._append_system(LEDGER_STREAM, [entry]).positions[0]


def ledger_event_id(store: EventStore, subject_id: str) -> UUID:
    """The event id of the subject's entry in the erasure ledger: the same for every erasure
    of the subject in this store (so the ledger holds it once), and a keyed hash of its id.

    HMAC-SHA256 under a random key the store made with its tables (`shredstore_settings`):
    an unkeyed hash (a UUIDv5, say) in a copy of the id outside the store, such as a consumer's
    marker table or a broker's message id, would name the erased subject to anyone who hashes
    candidate ids. Inside the database the key adds nothing: the entry names the subject.
    """
    return store._log.ledger_event_id(subject_id)


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def _replace_signature(receipt: ErasureReceipt, signature: dict[str, str]) -> ErasureReceipt:
    return dataclasses.replace(receipt, signature=signature)
