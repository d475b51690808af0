"""What the store knows of data subjects: one's footprint in the log, whether its ciphertext
still opens, the outcome of shredding it, and where the erasure ledger and the vault disagree.
The facade's results for the erasure workflow (`shredstore.erasure` builds receipts from them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from keyvault import ErasureResult

__all__ = ["CiphertextCheck", "Footprint", "LedgerGaps", "Shredded", "SubjectScan"]


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
class Shredded:
    """The outcome of `shred`: the vault's answer and where the ledger records the erasure."""

    result: ErasureResult
    ledger_position: int


class SubjectScan(NamedTuple):
    """What one pass over a subject's rows found (see `EventStore.subject_scan`)."""

    footprint: Footprint
    sealed: int
    samples: tuple[tuple[UUID, dict[str, Any]], ...]
