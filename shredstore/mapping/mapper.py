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

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from keyvault import KeyRing
from shredstore.errors import (
    ConfigurationError,
    EventDecodingError,
    InvalidEventError,
    TamperedError,
)
from shredstore.events import Event, EventRegistry, RecordedEvent, UnknownEvent, recorded_event
from shredstore.mapping.column import (
    Path,
    StoredGroup,
    decode_column,
    encode_column,
    encode_paths,
    encode_redacted_group,
    encode_sealed_group,
    sealed_value,
    stored_paths,
)
from shredstore.mapping.encoding import (
    EMPTY_METADATA,
    checked_dump,
    decode_metadata,
    decode_payload,
    encode_model,
    encode_payload,
    encode_values,
)
from shredstore.mapping.exact import exact_form
from shredstore.mapping.registry import class_for, registered_class
from shredstore.mapping.sealing import event_context, native_groups, open_groups, seal
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
        self, events: list[Event], metadata: str | Sequence[str], ring: KeyRing | None
    ) -> list[NewRow]:
        """The stored form of a batch, with already-encoded `metadata` (one for every event,
        or one per event).

        Each event is checked to read back as written before anything is sealed. The
        subjects' keys are fetched, or created, for the whole batch at once.
        """
        split = [self._split(event) for event in events]
        sealed_for = {subject for _, _, parts, _, _ in split if parts is not None
                      for subject in parts.groups}
        if sealed_for:
            if ring is None:
                raise ConfigurationError(
                    "this event holds personal data, and the store has no master key: "
                    "pass master_key= to EventStore"
                )
            ring.prepare(sealed_for)
        each = [metadata] * len(events) if isinstance(metadata, str) else metadata
        rows = []
        for event, (cls, payload, parts, plaintexts, erased), stored in zip(
                events, split, each, strict=True):
            if parts is None:
                rows.append(NewRow(event.event_id, cls.__event_type__, cls.__schema_version__,
                                   stored, payload))
                continue
            personal = (seal_groups(ring, parts.groups, event_context(event.event_id),
                                    plaintexts, erased)
                        if (parts.groups and ring is not None) or erased else None)
            rows.append(NewRow(
                event.event_id, cls.__event_type__, cls.__schema_version__, stored,
                payload, personal,
                frozenset(parts.subjects) | frozenset(parts.groups) | frozenset(erased),
                frozenset(parts.groups),
            ))
        return rows

    def _split(self, event: Event) -> tuple[
            type[Event], str, Split | None, dict[str, bytes], dict[str, tuple[Path, ...]]]:
        """The event's class, its stored payload, its personal parts to seal (None: it has
        none), each subject's values as the text to be sealed, and the paths that hold
        REDACTED by subject (only a class that keeps redacted values may have them)."""
        cls = registered_class(self._registry, event)
        plan = plan_of(cls)
        exact = exact_form(cls, plan)
        if exact is not None and exact.holds(event):  # it reads back as written: no check
            if not plan.needs_split:
                return cls, encode_model(event), None, {}, {}
            quick = exact.split(checked_dump(
                lambda: event.model_dump(mode="json", by_alias=True), cls))
            return (cls, encode_payload(quick.data, cls), quick,
                    {subject: encode_values(values.values(), cls)
                     for subject, values in quick.groups.items()}, {})
        if not plan.needs_split:
            payload = encode_model(event)
            check_reads_back(cls, event, payload, {}, {})
            return cls, payload, None, {}, {}
        parts = split(event, plan)
        erased: dict[str, tuple[Path, ...]] = {}
        for subject, values in parts.groups.items():
            if REDACTED in values.values():  # JSON-mode values: only REDACTED is REDACTED
                if not cls.__keeps_redacted__:
                    raise InvalidEventError(
                        f"{cls.__qualname__}: a personal field holds REDACTED (its subject was "
                        "erased); an erased value cannot be stored again")
                erased[subject] = tuple(path for path, value in values.items()
                                        if value is REDACTED)
        if erased:  # kept as redacted groups, without a value: only the rest is sealed
            sealable = {subject: {path: value for path, value in values.items()
                                  if value is not REDACTED}
                        for subject, values in parts.groups.items()}
            parts = parts._replace(groups={subject: values for subject, values
                                           in sealable.items() if values})
        payload = encode_payload(parts.data, cls)
        plaintexts = {subject: encode_values(values.values(), cls)
                      for subject, values in parts.groups.items()}
        check_reads_back(cls, event, payload, parts.groups, plaintexts, redacted=erased)
        return cls, payload, parts, plaintexts, erased

    def to_recorded(
        self, row: StoredRow, ring: KeyRing | None, groups: list[StoredGroup] | None = None
    ) -> RecordedEvent:
        """The recorded event for a stored row (`groups`: its personal column, if decoded)."""
        if native_groups is not None and (groups is not None or row.personal is None):
            # The usual row, in C where it was built: it returns None, having changed
            # nothing, for any row that is not (or fails), which the code below then decodes.
            reader = _READERS.get(self._registry.find(row.event_type))  # type: ignore[arg-type]
            if reader is not None and row.schema_version == reader[0]:
                made: RecordedEvent | None = native_groups.recorded(
                    row, groups, None if ring is None else ring.open_unless_erased, reader[1])
                if made is not None:
                    return made
        where = _Where(row.position)
        data = decode_payload(row.payload, where)
        if type(data) is not dict:  # only an edit of the table stores another JSON value
            raise EventDecodingError(f"{where} does not hold a JSON object; run verify()")
        metadata = ({} if row.metadata == EMPTY_METADATA
                    else decode_metadata(row.metadata, where))
        personal_fields = _NO_FIELDS
        redacted = False
        cls = self._registry.find(row.event_type)
        if row.personal is not None:
            if groups is None:
                groups = decode_column(row.personal, where)
            # Redacted groups (no value) only where the class keeps them: elsewhere they
            # would let an altered row pass for an erasure.
            personal_fields, redacted = open_groups(
                ring, groups, data, event_context(row.event_id), where=where,
                allow_redacted=cls is not None and cls.__keeps_redacted__)
        reader = _READERS.get(cls) if cls is not None else None
        if cls is None or reader is None or row.schema_version != reader[0]:
            return self._to_recorded_slowly(row, data, metadata, where, groups,
                                            personal_fields, redacted)
        validate_python = reader[1]
        data["event_id"] = row.event_id
        try:
            event: Event = validate_python(data)
        except ValidationError:
            validate(cls, data, where)  # raises it as EventDecodingError, without the values
            raise EventDecodingError(f"{where} does not fit {cls.__qualname__}") from None
        redacted_names = redacted_fields(groups or (), data) if redacted else _NO_FIELDS
        # Positional and without the dataclass's __init__: this runs once per event read.
        return recorded_event(row.position, row.stream_id, row.version, row.event_id,
                              row.event_type, row.schema_version, row.recorded_at, metadata,
                              event, redacted_names, personal_fields)

    def _to_recorded_slowly(  # noqa: PLR0917 (to_recorded's state, handed over)
        self, row: StoredRow, data: dict[str, Any], metadata: Any, where: _Where,
        groups: list[StoredGroup] | None, personal_fields: frozenset[str], redacted: bool,
    ) -> RecordedEvent:
        """`to_recorded`'s general case: an unknown type, an older schema version (upcast), or
        a class read for the first time (then remembered in `_READERS`)."""
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
            if not upcast and len(_READERS) < _READERS_KEPT:
                _READERS[cls] = (cls.__schema_version__,
                                 cls.__pydantic_validator__.validate_python)
        return recorded_event(row.position, row.stream_id, row.version, row.event_id,
                              row.event_type, row.schema_version, row.recorded_at, metadata,
                              event, redacted_names, personal_fields)


def seal_groups(ring: KeyRing | None, groups: Mapping[str, Mapping[Path, Any]],
                context: bytes, plaintexts: Mapping[str, bytes],
                redacted: Mapping[str, tuple[Path, ...]] | None = None) -> str | None:
    """Seal each subject's personal values (`plaintexts`, their JSON text) as one value;
    the stored personal column (groups in the order of their subjects), with a redacted
    group, holding no value, for each subject's `redacted` paths."""
    stored = []
    for subject in sorted({*groups, *(redacted or {})}):
        if subject in groups:
            if ring is None:
                raise ConfigurationError("personal data to seal, and no key ring")
            paths = encode_paths(tuple(groups[subject]))
            stored.append(encode_sealed_group(
                subject, paths, seal(ring, subject, paths, plaintexts[subject], context)))
        if redacted and subject in redacted:
            stored.append(encode_redacted_group(subject, encode_paths(redacted[subject])))
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


def _python_page_subjects(rows: Iterable[StoredRow]
                          ) -> tuple[list[list[StoredGroup] | None], set[str]]:
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


page_subjects: Callable[[Iterable[StoredRow]],
                        tuple[list[list[StoredGroup] | None], set[str]]] = (
    _python_page_subjects if native_groups is None else native_groups.page_subjects)
"""Each row's decoded personal column (None: it has none, or it is malformed: decoded
again, and reported with its position, by `to_recorded`), and the subjects whose keys
they need (in C where it was built)."""


_READERS: dict[type[Event], tuple[int, Callable[[Any], Any]]] = {}
"""Each event class read so far: its schema version and its validator's `validate_python`.
On a pydantic model class, every attribute read goes through its metaclass's ``__getattr__``
hook (about as costly as validating a field); a read would make several per event."""
_READERS_KEPT = 4096

if native_groups is not None:
    native_groups.configure(record=RecordedEvent, record_fields=tuple(
        field.name for field in dataclasses.fields(RecordedEvent)), empty_metadata=EMPTY_METADATA,
        page_subjects=_python_page_subjects)


class _Where(int):
    """Names an event (by its position) in an error message; formatted only if there is an
    error. An int: a read makes one per event, and an int is made without a Python call."""

    __slots__ = ()

    def __str__(self) -> str:
        return f"event at position {int(self)}"

    def __format__(self, spec: str) -> str:
        return str(self)
