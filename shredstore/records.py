"""The log read without the application's classes: events with the state of every personal
field, for audit reports and exports (`shredstore.audit`) and the erasure's residue check.

Works on stored records alone (invariant 10): no application class is needed or imported. A
personal field is *held* (its subject's key exists: shown masked, or opened when revealing) or
*erased* (its subject's key was destroyed: with the erasure's date). Reading never opens a
sealed value unless the caller reveals, so a masked report needs no master key.
"""

from __future__ import annotations

import collections
import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from shredstore.errors import ConfigurationError, ReadOnlyStoreError, TamperedError
from shredstore.mapping.column import StoredGroup, try_decode_column
from shredstore.mapping.sealing import event_context, open_groups
from shredstore.personal import REDACTED, dotted
from shredstore.storage.chain import StoredRow
from shredstore.storage.scope import Scope
from shredstore.system import ACCESS_STREAM, PersonalDataRevealed

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["ACCESS_STREAM", "AuditEvent", "PersonalDataRevealed", "PersonalField", "Scope",
           "Tally", "audit_events", "current_user", "record_access"]

_HELD_CACHE = 100_000
"""Subjects remembered as held between pages (erased ones are all remembered: they are few)."""


@dataclass(frozen=True, slots=True)
class PersonalField:
    """One personal field of an event, and what the store can still show of it."""

    path: str
    subject: str
    state: Literal["held", "erased"]
    erased_at: datetime | None = None
    """When its subject was erased. Set on a *held* field too when the read is as of a
    moment (a scope's `until`) before the erasure: held then, erased since."""
    value: Any = None
    """The value, when revealed (never for an erased subject); else None."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """An event as an audit shows it: its place, its plain fields and its personal fields."""

    position: int
    stream_id: str
    version: int
    event_type: str
    recorded_at: datetime
    plain: dict[str, Any]
    personal: tuple[PersonalField, ...]
    tampered: bool = False
    """Its personal data is malformed or failed authentication: `verify` names the row."""


@dataclass(slots=True)
class Tally:
    """Counts gathered while reading, for a report's summary."""

    events: int = 0
    held_fields: int = 0
    redacted_fields: int = 0
    erased_later_fields: int = 0
    """Held fields (as of a scope's `until`) whose subject was erased after that moment."""
    tampered_events: int = 0
    erased_subjects: set[str] = field(default_factory=set)


def audit_events(store: EventStore, scope: Scope, *, reveal: bool = False,
                 only_subject: str | None = None, tally: Tally | None = None
                 ) -> Iterator[AuditEvent]:
    """The events in `scope`, in log order, page by page (memory: one page).

    `reveal` opens held values (needs the master key). `only_subject` keeps only that
    subject's personal fields (an export: other subjects' data is left out). With a
    `scope.until`, field states are as of that moment: a subject erased later shows as held
    then, with its erasure date (its values cannot be revealed: the key is gone).
    """
    if reveal and not store.has_master_key:
        raise ConfigurationError("revealing personal data needs the master key")
    states = _ErasureStates(store)
    tally = tally if tally is not None else Tally()
    for page in store.scan(scope):
        parsed = [try_decode_column(row.personal) for row in page]
        states.learn({group["subject"] for groups in parsed if groups for group in groups})
        opened: list[dict[str, Any] | None] = [None] * len(page)
        if reveal and any(parsed):
            with store.opening() as ring:
                for n, (row, groups) in enumerate(zip(page, parsed, strict=True)):
                    mine = [g for g in groups or ()
                            if only_subject is None or g["subject"] == only_subject]
                    if not mine:
                        continue
                    data = _parse_payload(row)  # nested personal values go into it
                    try:
                        open_groups(ring, mine, data, event_context(row.event_id),
                                    where=f"event at position {row.position}")
                    except TamperedError:
                        parsed[n] = None
                    opened[n] = data
        for row, groups, values in zip(page, parsed, opened, strict=True):
            yield _audit_event(row, groups, values, states, only_subject=only_subject,
                               as_of=scope.until, tally=tally)


def record_access(store: EventStore, kind: Literal["report", "export", "saga"],
                  scope: dict[str, str],
                  *, actor: str | None = None, purpose: str | None = None) -> int:
    """Append a `PersonalDataRevealed` entry to ``$access`` before anything is revealed;
    its position. A store that cannot record it cannot reveal."""
    entry = PersonalDataRevealed(kind=kind, actor=actor or current_user(),
                                 at=datetime.now(UTC), scope=scope, purpose=purpose)
    try:
        return store.append_system(ACCESS_STREAM, [entry]).positions[0]
    except ReadOnlyStoreError:
        raise ReadOnlyStoreError(
            f"the {kind} would reveal personal data, and the reveal cannot be recorded in "
            "$access (the store is read-only): nothing was revealed; reveal from a writable "
            "copy, or leave the values masked") from None


def _audit_event(row: StoredRow, groups: list[StoredGroup] | None,
                 values: dict[str, Any] | None, states: _ErasureStates, *,
                 only_subject: str | None, as_of: datetime | None, tally: Tally) -> AuditEvent:
    tally.events += 1
    plain = _parse_payload(row)
    if groups is None:
        tally.tampered_events += 1
        return AuditEvent(row.position, row.stream_id, row.version, row.event_type,
                          row.recorded_at, plain, (), tampered=True)
    personal = []
    for group in groups:
        subject = group["subject"]
        if only_subject is not None and subject != only_subject:
            continue
        erased_at = states.erased_at(subject)
        for path in group["paths"]:
            value = _at(values, path) if values is not None else None
            if erased_at is None and value is REDACTED:  # erased while this read ran
                erased_at = states.erased_now(subject)
            if erased_at is not None and as_of is not None and erased_at > as_of:
                tally.held_fields += 1
                tally.erased_later_fields += 1
                personal.append(PersonalField(dotted(path), subject, "held", erased_at))
            elif erased_at is not None:
                tally.redacted_fields += 1
                tally.erased_subjects.add(subject)
                personal.append(PersonalField(dotted(path), subject, "erased", erased_at))
            else:
                tally.held_fields += 1
                personal.append(PersonalField(dotted(path), subject, "held", value=value))
    return AuditEvent(row.position, row.stream_id, row.version, row.event_type,
                      row.recorded_at, plain, tuple(personal))


class _ErasureStates:
    """Whether each subject is erased (and when), asked of the vault once per page."""

    def __init__(self, store: EventStore) -> None:
        self._vault = store.vault
        self._erased: dict[str, datetime] = {}
        self._held: collections.OrderedDict[str, None] = collections.OrderedDict()

    def learn(self, subjects: set[str]) -> None:
        unknown = [s for s in subjects if s not in self._erased and s not in self._held]
        if not unknown:
            return
        erased = self._vault.erased_subjects(unknown)
        for subject in unknown:
            if subject in erased:
                self.erased_now(subject)
            else:
                self._held[subject] = None
        while len(self._held) > _HELD_CACHE:
            self._held.popitem(last=False)

    def erased_at(self, subject: str) -> datetime | None:
        return self._erased.get(subject)

    def erased_now(self, subject: str) -> datetime:
        """The subject's erasure date (for a subject found erased while reading)."""
        if subject not in self._erased:
            status = self._vault.status(subject)
            self._erased[subject] = status.erased_at or datetime.now(UTC)
            self._held.pop(subject, None)
        return self._erased[subject]


def _at(data: Any, path: list[Any]) -> Any:
    for part in path:
        data = data[part]
    return data


def _parse_payload(row: StoredRow) -> dict[str, Any]:
    try:
        plain = json.loads(row.payload)
    except ValueError:
        return {}
    return plain if isinstance(plain, dict) else {}


def current_user() -> str:
    """Who runs this process, as recorded with a reveal or an operator's request."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
