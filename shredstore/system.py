"""The events shredstore itself writes, to its system streams (names starting with ``$``).

They hold no personal data, and every store registers them in its registry, so they read as
themselves in any application (`erasure` and `records` use them; they are defined here,
below the store, so that the store can register them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from shredstore.events import Event
from shredstore.personal import SubjectId

__all__ = ["ACCESS_STREAM", "LEDGER_STREAM", "SYSTEM_EVENTS", "PersonalDataRevealed",
           "SubjectErased"]

LEDGER_STREAM = "$erasures"
"""The system stream of `SubjectErased` events: the erasure ledger."""

ACCESS_STREAM = "$access"
"""The system stream recording every read that revealed personal data."""

class SubjectErased(Event, type_name="shredstore.SubjectErased"):
    """A subject's key was destroyed. The erasure ledger's event: no personal data.

    `recorded_by` is "erase", or "reconcile" where the ledger entry was added afterwards for a
    tombstone the ledger lacked.
    """

    subject_id: SubjectId
    erased_at: datetime
    request_id: str | None = None
    reason: str | None = None
    key_fingerprint: str | None = None
    recorded_by: Literal["erase", "reconcile"] = "erase"


class PersonalDataRevealed(Event, type_name="shredstore.PersonalDataRevealed"):
    """A report, an export or a saga shown (`sagas show --reveal`) held personal data in the
    clear: who, when, what (no values)."""

    kind: Literal["report", "export", "saga"]
    actor: str
    at: datetime
    scope: dict[str, str]
    """The filters of the read (subject ids are identifiers, not personal values)."""
    purpose: str | None = None


SYSTEM_EVENTS: tuple[type[Event], ...] = (SubjectErased, PersonalDataRevealed)
