"""The erasure ledger against the vault: read the ledger, find where they disagree, repair.

The ledger (``$erasures`` in the log) outranks the vault. A vault restored from a backup brings
erased keys back or loses tombstones; an erasure interrupted between the vault and the ledger
(a vault in its own database) leaves a tombstone the ledger lacks. `ledger_gaps` finds both
kinds, `reconcile` repairs them: it erases again every subject the ledger names that the vault
does not hold as erased, and records every tombstone the ledger lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from shredstore.subject import LedgerGaps
from shredstore.system import SubjectErased

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["ReconcileReport", "ledger", "ledger_entry", "ledger_event_id", "ledger_gaps",
           "reconcile", "resurrected"]


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


def ledger(store: EventStore) -> dict[str, tuple[int, SubjectErased]]:
    """The erasure ledger: each subject's first `SubjectErased` entry, with its position."""
    return store.ledger()


def ledger_entry(store: EventStore, subject_id: str) -> tuple[int, SubjectErased] | None:
    """The subject's entry in the erasure ledger and its position; None if it has none.
    One indexed lookup (by the entry's keyed event id)."""
    return store.ledger_entry(subject_id)


def ledger_event_id(store: EventStore, subject_id: str) -> UUID:
    """The event id of the subject's entry in the erasure ledger: the same for every erasure
    of the subject in this store (so the ledger holds it once), and a keyed hash of its id.

    HMAC-SHA256 under a random key the store made with its tables (`shredstore_settings`):
    an unkeyed hash (a UUIDv5, say) in a copy of the id outside the store, such as a consumer's
    marker table or a broker's message id, would name the erased subject to anyone who hashes
    candidate ids. Inside the database the key adds nothing: the entry names the subject.
    """
    return store.ledger_event_id(subject_id)


def ledger_gaps(store: EventStore) -> LedgerGaps:
    """Where the erasure ledger and the vault's tombstones disagree, both ways (reads the whole
    ledger and every tombstone once)."""
    return store.ledger_gaps()


def reconcile(store: EventStore, *, progress: Callable[[int, int], None] | None = None
              ) -> ReconcileReport:
    """Make the ledger and the vault agree (`ledger_gaps`): erase again every subject the
    ledger names that the vault does not hold as erased (a key held again, or no tombstone);
    add to the ledger every tombstone it lacks. Idempotent."""
    entries = ledger(store)
    gaps = store.ledger_gaps(entries)
    missing = [*gaps.resurrected, *gaps.untombstoned]
    re_erased = []
    for done, (subject, _) in enumerate(sorted(missing), start=1):
        entry = entries[subject][1]
        store.erase_key(subject, request_id=entry.request_id,
                        reason="re-erased by reconcile (the vault did not hold the erasure)")
        re_erased.append(subject)
        if progress is not None:
            progress(done, len(missing))
    recorded = []
    for subject in gaps.unrecorded:
        status = store.vault.status(subject)
        store.record_erasure(SubjectErased(
            subject_id=subject, erased_at=status.erased_at or datetime.now(UTC),
            request_id=status.request_id, reason=status.reason,
            key_fingerprint=status.key_fingerprint, recorded_by="reconcile"))
        recorded.append(subject)
    return ReconcileReport(len(entries), tuple(re_erased), tuple(recorded))


def resurrected(store: EventStore) -> list[tuple[str, int]]:
    """Subjects the ledger says are erased for which the vault holds a key again, each with
    the position of its ledger entry."""
    return list(ledger_gaps(store).resurrected)


