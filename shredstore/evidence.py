"""The evidence of an erasure: the receipt and the read models' residue report.

Data types only, below the facade: the erasure workflow (`shredstore.erasure`) builds them and
`EventStore.erase_subject` returns them. The receipt signs itself (`ErasureReceipt.signed`);
checking and writing receipts is `shredstore.erasure`'s (`verify_receipt`, `write_receipt`).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shredstore.storage.chain import LogHead
from shredstore.subject import CiphertextCheck, Footprint

__all__ = [
    "NOT_SCANNED",
    "RECEIPT_FORMAT",
    "ErasureReceipt",
    "PhysicalCheck",
    "PhysicalFinding",
    "ResidueFinding",
    "ResidueReport",
    "canonical_json",
    "public_key_id",
    "raw_public_key",
]

RECEIPT_FORMAT = "shredstore.erasure-receipt/2"
"""Version 2: the signature also covers its own block (algorithm, public key, key id)."""


@dataclass(frozen=True, slots=True)
class ResidueFinding:
    projection: str
    table: str
    column: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"projection": self.projection, "table": self.table, "column": self.column,
                "rows": self.rows}


@dataclass(frozen=True, slots=True)
class PhysicalFinding:
    """A database file that holds some of the values: how many places."""

    file: str
    places: int

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "places": self.places}


@dataclass(frozen=True, slots=True)
class PhysicalCheck:
    """Whether the database files' bytes were scanned for the values, and what was found.

    ``str()`` reads "verified clean: ...", "found in N place(s): ..." or "not verified: why".
    """

    verified: bool
    """Whether the files were scanned."""
    findings: tuple[PhysicalFinding, ...] = ()
    detail: str = ""
    """What was scanned, and how; or why nothing was."""

    @property
    def found(self) -> bool:
        return bool(self.findings)

    def __str__(self) -> str:
        if self.findings:
            where = ", ".join(f"{f.file} ({f.places})" for f in self.findings)
            places = sum(f.places for f in self.findings)
            return f"found in {places} place(s): {where}; {self.detail}"
        return f"{'verified clean' if self.verified else 'not verified'}: {self.detail}"


NOT_SCANNED = PhysicalCheck(False, detail="no byte scan of the database files was made")


@dataclass(frozen=True, slots=True)
class ResidueReport:
    """What the scan of the read models found: logically (their tables' live rows) and
    physically (the database files' bytes, where that can be checked).

    `clean` only if the logical check could look everywhere and found nothing, and the
    physical check found nothing; `physical` says whether one could be made.
    """

    checked: tuple[str, ...]
    """``projection: table`` for every table scanned."""
    values: int
    """How many distinct values of the subject were looked for."""
    lagging: tuple[str, ...] = ()
    """Projections that had not applied the erasure when the wait ended: not scanned."""
    findings: tuple[ResidueFinding, ...] = ()
    """Live rows that hold a value (the logical check)."""
    note: str | None = None
    physical: PhysicalCheck = NOT_SCANNED
    """The byte scan of the read-model database's files."""

    @property
    def clean(self) -> bool:
        return not self.findings and not self.lagging and not self.physical.found

    @property
    def result(self) -> str:
        """"clean", "RESIDUE" (found logically or physically) or "incomplete" (lagging)."""
        if self.clean:
            return "clean"
        return "RESIDUE" if self.findings or self.physical.found else "incomplete"

    def logical(self) -> str:
        """What the logical check verified, in a sentence."""
        if self.findings:
            where = ", ".join(f"{f.table}.{f.column} ({f.rows} row(s))" for f in self.findings)
            return f"RESIDUE in {where}"
        if self.lagging:
            return f"incomplete: not caught up: {', '.join(self.lagging)}"
        if not self.checked:
            return f"nothing scanned: {self.note}" if self.note else "nothing scanned"
        return f"clean: live rows of {len(self.checked)} read-model table(s) scanned"

    def summary(self) -> str:
        """One line for a terminal: the result, the logical and the physical check."""
        return f"residue {self.result}; logically {self.logical()}; physically {self.physical}"

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result,
                "read_models": list(self.checked), "values_looked_for": self.values,
                "lagging": list(self.lagging),
                "findings": [finding.to_dict() for finding in self.findings],
                "logical": self.logical(), "physical": str(self.physical),
                **({"physical_findings": [f.to_dict() for f in self.physical.findings]}
                   if self.physical.found else {}),
                **({"note": self.note} if self.note else {})}


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
        public = raw_public_key(key.public_key())
        block = {"algorithm": "Ed25519", "public_key": base64.b64encode(public).decode(),
                 "key_id": public_key_id(public)}
        value = key.sign(canonical_json({**self.body(), "signature": block}))
        return dataclasses.replace(
            self, signature={**block, "value": base64.b64encode(value).decode()})


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """The bytes a receipt's signature covers: sorted keys, no spaces, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_id(public: bytes) -> str:
    """A public key's id: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public).hexdigest()[:16]
