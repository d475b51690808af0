"""Events to stored rows and back: the mapping pipeline's steps, put together for events.

Append (dump), per event:
  registry (`registry.registered_class`) -> split personal fields (`split.split`) -> encode
  the plain data and each subject's values (`encoding`), checked to read back
  (`validation.check_reads_back`) -> seal per subject (`sealing.seal`) -> encode the personal
  column (`column`).
Read (load), per row:
  decode the payload and the personal column -> open or redact (`sealing.open_groups`) ->
  upcast (`shredstore.upcasting`) -> validate the model (`validation.validate`), or an
  `UnknownEvent` where no class is registered (`registry.class_for`).

The personal column is self-describing, so any stored event can be opened or redacted without
the class that wrote it (see `shredstore.mapping.column`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from keyvault import KeyRing
from shredstore.errors import ConfigurationError, InvalidEventError, TamperedError
from shredstore.events import Event, EventRegistry, RecordedEvent, UnknownEvent, recorded_event
from shredstore.mapping.column import (
    Path,
    StoredGroup,
    decode_column,
    encode_column,
    encode_paths,
    encode_sealed_group,
    sealed_value,
    stored_paths,
)
from shredstore.mapping.encoding import (
    EMPTY_METADATA,
    decode_metadata,
    decode_payload,
    encode_model,
    encode_payload,
    encode_values,
)
from shredstore.mapping.registry import class_for, registered_class
from shredstore.mapping.sealing import event_context, open_groups, seal
from shredstore.mapping.split import Split, redacted_fields, redacted_paths, split
from shredstore.mapping.validation import check_reads_back, validate
from shredstore.personal import REDACTED, plan_of
from shredstore.storage.chain import StoredRow
from shredstore.storage.log import NewRow

__all__ = ["EventMapper", "open_one", "page_subjects"]


_NO_FIELDS: frozenset[str] = frozenset()


class EventMapper:
    """Maps events to stored rows and back, using one registry of event classes."""

    def __init__(self, registry: EventRegistry) -> None:
        self._registry = registry

    def needs_keys(self, event: Event) -> bool:
        """Whether storing `event` seals personal data."""
        return plan_of(type(event)).has_personal_data

    def to_rows(
        self, events: list[Event], metadata: str, ring: KeyRing | None
    ) -> list[NewRow]:
        """The stored form of a batch, with already-encoded `metadata`.

        Each event is checked to read back as written before anything is sealed. The
        subjects' keys are fetched, or created, for the whole batch at once.
        """
        split = [self._split(event) for event in events]
        sealed_for = {subject for _, _, parts, _ in split if parts is not None
                      for subject in parts.groups}
        if sealed_for:
            if ring is None:
                raise ConfigurationError(
                    "this event holds personal data, and the store has no master key: "
                    "pass master_key= to EventStore"
                )
            ring.prepare(sealed_for)
        rows = []
        for event, (cls, payload, parts, plaintexts) in zip(events, split, strict=True):
            if parts is None:
                rows.append(NewRow(event.event_id, cls.__event_type__, cls.__schema_version__,
                                   metadata, payload))
                continue
            personal = (seal_groups(ring, parts.groups, event_context(event.event_id),
                                    plaintexts)
                        if parts.groups and ring is not None else None)
            rows.append(NewRow(
                event.event_id, cls.__event_type__, cls.__schema_version__, metadata,
                payload, personal, frozenset(parts.subjects) | frozenset(parts.groups),
                frozenset(parts.groups),
            ))
        return rows

    def _split(self, event: Event
               ) -> tuple[type[Event], str, Split | None, dict[str, bytes]]:
        """The event's class, its stored payload, its personal parts (None: it has none) and
        each subject's values as the text to be sealed."""
        cls = registered_class(self._registry, event)
        plan = plan_of(cls)
        if not plan.needs_split:
            payload = encode_model(event)
            check_reads_back(cls, event, payload, {}, {})
            return cls, payload, None, {}
        parts = split(event, plan)
        for values in parts.groups.values():
            if REDACTED in values.values():  # JSON-mode values: only REDACTED is REDACTED
                raise InvalidEventError(
                    f"{cls.__qualname__}: a personal field holds REDACTED (its subject was "
                    "erased); an erased value cannot be stored again")
        payload = encode_payload(parts.data, cls)
        plaintexts = {subject: encode_values(values.values(), cls)
                      for subject, values in parts.groups.items()}
        check_reads_back(cls, event, payload, parts.groups, plaintexts)
        return cls, payload, parts, plaintexts

    def to_recorded(
        self, row: StoredRow, ring: KeyRing | None, groups: list[StoredGroup] | None = None
    ) -> RecordedEvent:
        """The recorded event for a stored row (`groups`: its personal column, if decoded)."""
        where = _Where(row.position)
        data = decode_payload(row.payload, where)
        metadata = ({} if row.metadata == EMPTY_METADATA
                    else decode_metadata(row.metadata, where))
        personal_fields = _NO_FIELDS
        redacted = False
        if row.personal is not None:
            if groups is None:
                groups = decode_column(row.personal, where)
            personal_fields, redacted = open_groups(
                ring, groups, data, event_context(row.event_id), where=where)
        cls = class_for(self._registry, row.event_type, row.schema_version, where)
        redacted_names = _NO_FIELDS
        if cls is None:
            event: Event = UnknownEvent(type_name=row.event_type,
                                        schema_version=row.schema_version,
                                        data=data, event_id=row.event_id)
            if redacted:
                redacted_names = frozenset(redacted_paths(data))
        else:
            upcast = row.schema_version != cls.__schema_version__
            if upcast:
                data = self._registry.upcasters.upcast(
                    row.event_type, row.schema_version, cls.__schema_version__, data,
                    where=where)
            if redacted:
                # Upcasters may move fields: then find the markers where they ended up.
                redacted_names = (frozenset(redacted_paths(data)) if upcast
                                    else redacted_fields(groups or (), data))
            data["event_id"] = row.event_id
            event = validate(cls, data, where)
        # Positional and without the dataclass's __init__: this runs once per event read.
        return recorded_event(row.position, row.stream_id, row.version, row.event_id,
                             row.event_type, row.schema_version, row.recorded_at, metadata,
                             event, redacted_names, personal_fields)


def seal_groups(ring: KeyRing, groups: Mapping[str, Mapping[Path, Any]], context: bytes,
                plaintexts: Mapping[str, bytes]) -> str | None:
    """Seal each subject's personal values (`plaintexts`, their JSON text) as one value;
    the stored personal column (groups in the order of their subjects)."""
    stored = []
    for subject in sorted(groups):
        paths = encode_paths(tuple(groups[subject]))
        stored.append(encode_sealed_group(
            subject, paths, seal(ring, subject, paths, plaintexts[subject], context)))
    return encode_column(stored)


def open_one(ring: KeyRing, event_id: UUID, group: dict[str, Any]) -> bool:
    """Open one stored group of an event with `ring`: True if it opens (raises as
    `KeyRing.open` does, `keyvault.KeyErasedError` included; `TamperedError` if the group is
    malformed)."""
    try:
        sealed = sealed_value(group)
        aad = event_context(event_id) + stored_paths(group)
    except (KeyError, TypeError, ValueError):
        raise TamperedError("a stored personal group is malformed; run verify()") from None
    ring.open(group["subject"], sealed, aad=aad)
    return True


def page_subjects(rows: Iterable[StoredRow]) -> tuple[list[list[StoredGroup] | None], set[str]]:
    """Each row's decoded personal column (None: it has none, or it is malformed: decoded
    again, and reported with its position, by `to_recorded`), and the subjects whose keys
    they need."""
    parsed: list[list[StoredGroup] | None] = []
    subjects: set[str] = set()
    for row in rows:
        if row.personal is None:
            parsed.append(None)
            continue
        try:
            groups = decode_column(row.personal)
        except TamperedError:
            parsed.append(None)
            continue
        for group in groups:
            subjects.add(group["subject"])
        parsed.append(groups)
    return parsed, subjects


class _Where(int):
    """Names an event (by its position) in an error message; formatted only if there is an
    error. An int: a read makes one per event, and an int is made without a Python call."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"event at position {int(self)}"

    def __format__(self, spec: str) -> str:
        return str(self)
