"""One subject's erasure as the ledger and the vault each tell it, and where they disagree.

The erasure ledger (``$erasures`` in the log) outranks the vault, so a disagreement never makes
erased data open again; but it means the vault needs repair: a vault restored from a backup
holds an erased key again, or has lost a tombstone; an erasure interrupted between the vault
and the ledger (a vault in its own database) left a tombstone the ledger lacks. `consistency`
answers for one subject with two indexed lookups (``shredstore status`` uses it);
`ledger_gaps` answers for every subject, and `reconcile` repairs them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shredstore.errors import vault_configuration_errors

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["LedgerDisagreement", "consistency"]

_MESSAGES = {
    "resurrected": "the erasure ledger records the subject as erased, but the vault holds its "
                   "key again (restored from a backup?)",
    "untombstoned": "the erasure ledger records the subject as erased, but the vault has no "
                    "tombstone for it (restored from a backup? a deleted row?)",
    "unrecorded": "the vault erased the subject, but the erasure ledger does not record it (an "
                  "interrupted erasure?)",
}


@dataclass(frozen=True, slots=True)
class LedgerDisagreement:
    """How the vault disagrees with the erasure ledger about one subject; `reconcile` repairs
    it. The kinds are those of `ledger_gaps` and `EventStore.verify`'s findings."""

    subject_id: str
    kind: Literal["resurrected", "untombstoned", "unrecorded"]
    """"resurrected": the ledger names the subject, the vault holds its key again;
    "untombstoned": the ledger names it, the vault knows nothing of it; "unrecorded": the vault
    erased it, the ledger does not name it."""
    ledger_position: int | None
    """Where the ledger records the erasure (None for "unrecorded")."""

    @property
    def message(self) -> str:
        """What is wrong and its likely cause, in a sentence without personal data (nor the
        subject id); the remedy is `reconcile` (``shredstore reconcile``)."""
        return _MESSAGES[self.kind]


def consistency(store: EventStore, subject_id: str) -> LedgerDisagreement | None:
    """Whether the vault and the erasure ledger agree about the subject: None if they do, else
    how they differ. Two indexed lookups (the vault's status, the ledger's entry); reads only.
    """
    with vault_configuration_errors():
        held = store.vault.status(subject_id).state
    entry = store.ledger_entry(subject_id)
    if entry is not None and held != "erased":
        return LedgerDisagreement(subject_id, "resurrected" if held == "active"
                                  else "untombstoned", entry[0])
    if entry is None and held == "erased":
        return LedgerDisagreement(subject_id, "unrecorded", None)
    return None
