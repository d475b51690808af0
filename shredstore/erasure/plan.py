"""Before an erasure: what it would touch (a dry run), and whether the store knows the subject.

A subject the store knows nothing of (no key, no erasure record, no event naming it) is most
likely a typo in a request: `erase` refuses it with `UnknownSubjectError` when asked to
(``allow_unknown=False``), and `plan` answers the same way, so that a service can do a dry run
or refuse unknown subjects exactly as ``shredstore erase`` does. Erasing an unknown subject on
purpose records a tombstone, so that data arriving later for it is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from keyvault import SubjectStatus
from shredstore.errors import UnknownSubjectError
from shredstore.subject import Footprint

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["ErasurePlan", "plan", "refuse_unknown"]

_UNKNOWN = ("unknown subject: the store holds no key, no erasure record and no event naming "
            "it (allow_unknown=True records the erasure anyway)")


@dataclass(frozen=True, slots=True)
class ErasurePlan:
    """What an erasure of the subject would do now; nothing was changed to find out."""

    status: SubjectStatus
    """As `EventStore.subject_status`: the erasure ledger outranks the vault."""
    footprint: Footprint
    """What the log holds of the subject's personal data: what would read as redacted."""

    @property
    def subject_id(self) -> str:
        return self.status.subject_id

    @property
    def state(self) -> Literal["active", "erased", "unknown"]:
        return self.status.state

    @property
    def known(self) -> bool:
        """Whether the store knows the subject at all: a key, an erasure record, or an event
        naming it (with or without its personal data)."""
        return self.state != "unknown" or self.footprint.mentions > 0

    @property
    def already_erased(self) -> bool:
        """Whether an erasure now would change nothing but write a receipt."""
        return self.state == "erased"

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject_id, "state": self.state, "known": self.known,
                "footprint": self.footprint.to_dict()}


def plan(store: EventStore, subject_id: str, *, allow_unknown: bool = True) -> ErasurePlan:
    """What `erase` would do to the subject, changing nothing: its state and its footprint (one
    pass over its rows through the subject index; nothing opened, no master key needed).

    With ``allow_unknown=False`` it answers as `erase` would: `UnknownSubjectError` for a
    subject the store knows nothing of.
    """
    found = ErasurePlan(store.subject_status(subject_id), store.subject_footprint(subject_id))
    if not allow_unknown and not found.known:
        raise UnknownSubjectError(_UNKNOWN)
    return found


def refuse_unknown(store: EventStore, status: SubjectStatus) -> None:
    """Raise `UnknownSubjectError` if the store knows nothing of the subject whose `status`
    (`EventStore.subject_status`) is given. Only a subject neither the vault nor the ledger
    knows costs a look at the log (the subject index)."""
    if status.state == "unknown" and \
            store.subject_footprint(status.subject_id).mentions == 0:
        raise UnknownSubjectError(_UNKNOWN)
