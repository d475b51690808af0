"""Turns event models into stored rows and stored rows back into models.

Append: model -> JSON-mode data -> personal fields split off by subject -> each subject's
fields sealed as one value with its key -> payload (the plain fields) and the personal column.
Read: payload -> each subject's fields opened, or `REDACTED` if its key was erased -> upcast
-> declared replacements -> the model (or an `UnknownEvent` where no class is registered).

The personal column is self-describing, so any stored event can be opened or redacted without
the class that wrote it::

    [{"subject": "42", "paths": [["name"], ["billing", "street"]], "sealed": "<base64>"}]

Each sealed value is AES-256-GCM under the subject's key; its associated data binds the event
id and the field paths (keyvault adds the subject and key version).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import pydantic_core
from pydantic import JsonValue, ValidationError

import keyvault
from keyvault import KeyRing
from shredstore.errors import (
    ConfigurationError,
    EventDecodingError,
    InvalidEventError,
    TamperedError,
)
from shredstore.events import Event, EventRegistry, RecordedEvent, UnknownEvent
from shredstore.mapping.split import Split, dump, split
from shredstore.personal import REDACTED, dotted, plan_of, put, redacted_paths
from shredstore.storage.chain import StoredRow
from shredstore.storage.log import NewRow

__all__ = ["EventMapper", "encode_metadata", "open_groups", "open_one", "page_subjects",
           "parse_groups"]

_EMPTY_METADATA = "{}"
_AAD_PREFIX = b"shredstore.event.v1\x00"


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

        Each event is checked to read back as written before anything is sealed (see
        `_check_reads_back`). The subjects' keys are fetched, or created, for the whole batch
        at once.
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
            personal = (seal_groups(ring, parts.groups, aad_prefix(event.event_id), plaintexts)
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
        cls = self._check_registered(event)
        plan = plan_of(cls)
        if not plan.needs_split:
            payload = dump(lambda: event.model_dump_json(by_alias=True), cls)
            _check_reads_back(cls, event, payload, {}, {})
            return cls, payload, None, {}
        parts = split(event, plan)
        for values in parts.groups.values():
            if any(value is REDACTED for value in values.values()):
                raise InvalidEventError(
                    f"{cls.__qualname__}: a personal field holds REDACTED (its subject was "
                    "erased); an erased value cannot be stored again")
        payload = dump(lambda: to_json(parts.data).decode(), cls)
        plaintexts = {subject: _values_json(values, cls)
                      for subject, values in parts.groups.items()}
        _check_reads_back(cls, event, payload, parts.groups, plaintexts)
        return cls, payload, parts, plaintexts

    def to_recorded(
        self, row: StoredRow, ring: KeyRing | None, groups: list[dict[str, Any]] | None = None
    ) -> RecordedEvent:
        """The recorded event for a stored row (`groups`: its personal column, if parsed)."""
        where = _Where(row.position)
        data = _json(row.payload, where)
        metadata = {} if row.metadata == _EMPTY_METADATA else _json(row.metadata, where)
        personal_fields: frozenset[str] = frozenset()
        redacted = False
        if row.personal is not None:
            if groups is None:
                groups = parse_groups(row.personal, where)
            personal_fields, redacted = open_groups(
                ring, groups, data, aad_prefix(row.event_id), where=where)
        cls = self._registry.find(row.event_type)
        redacted_fields: frozenset[str] = frozenset()
        if cls is None:
            event: Event = UnknownEvent(type_name=row.event_type,
                                        schema_version=row.schema_version,
                                        data=data, event_id=row.event_id)
            redacted_fields = frozenset(redacted_paths(data)) if redacted else frozenset()
        else:
            if row.schema_version > cls.__schema_version__:
                raise EventDecodingError(
                    f"{where} is {row.event_type!r} schema version {row.schema_version}, newer "
                    f"than {cls.__qualname__} (version {cls.__schema_version__}); "
                    "upgrade the application"
                )
            upcast = row.schema_version != cls.__schema_version__
            if upcast:
                data = self._registry.upcasters.upcast(
                    row.event_type, row.schema_version, cls.__schema_version__, data,
                    where=where)
            if redacted:
                # Upcasters may move fields: then find the markers where they ended up.
                redacted_fields = (frozenset(redacted_paths(data)) if upcast
                                   else _redacted_fields(groups or (), data))
            data["event_id"] = row.event_id
            event = validate(cls, data, where)
        # Positional: this runs once per event read, and keywords cost a third more.
        return RecordedEvent(row.position, row.stream_id, row.version, row.event_id,
                             row.event_type, row.schema_version, row.recorded_at, metadata,
                             event, redacted_fields, personal_fields)

    def _check_registered(self, event: Event) -> type[Event]:
        cls = type(event)
        if not isinstance(event, Event) or isinstance(event, UnknownEvent):
            raise ConfigurationError(
                f"only instances of registered Event classes can be appended, not {cls.__name__}"
            )
        if self._registry.find(cls.__event_type__) is not cls:
            raise ConfigurationError(
                f"{cls.__qualname__} is not the class registered as {cls.__event_type__!r}; "
                "events of unregistered classes could not be read back"
            )
        return cls


def seal_groups(ring: KeyRing, groups: Mapping[str, Mapping[tuple[Any, ...], Any]],
                aad_prefix: bytes, plaintexts: Mapping[str, bytes]) -> str:
    """Seal each subject's personal values (`plaintexts`, their JSON text) as one value;
    the stored personal column.

    The same JSON as ``to_json([{"subject": ..., "paths": ..., "sealed": ...}, ...])``, built
    from parts: the encoded paths of a field layout are computed once (`_encoded_paths`).
    """
    stored = []
    for subject in sorted(groups):
        values = groups[subject]
        encoded_paths = _encoded_paths(tuple(values))
        sealed = ring.seal(subject, plaintexts[subject], aad=aad_prefix + encoded_paths)
        stored.append(b'{"subject":%s,"paths":%s,"sealed":"%s"}' % (
            pydantic_core.to_json(subject), encoded_paths, base64.b64encode(sealed)))
    return (b"[" + b",".join(stored) + b"]").decode()


@functools.lru_cache(maxsize=1024)
def _encoded_paths(paths: tuple[tuple[str | int, ...], ...]) -> bytes:
    """A group's field paths as stored and authenticated: a JSON list of lists."""
    return pydantic_core.to_json([list(path) for path in paths])


def open_groups(
    ring: KeyRing | None,
    groups: list[dict[str, Any]],
    data: dict[str, Any],
    aad_prefix: bytes,
    *,
    where: object,
    allow_redacted: bool = False,
) -> tuple[frozenset[str], bool]:
    """Put each subject's opened values (or REDACTED) into `data`.

    Returns the personal fields' dotted paths, and whether anything was redacted. Groups stored
    as already redacted are accepted only where `allow_redacted` (snapshots): in an event they
    would let an altered row pass for an erasure. Anything malformed is `TamperedError`.
    """
    fields: list[str] = []
    redacted = False
    if ring is None and any(not (isinstance(g, dict) and g.get("redacted") is True)
                            for g in groups):
        raise ConfigurationError(
            f"{where} holds personal data, and the store has no master key to open it: "
            "pass master_key= to EventStore"
        )
    try:
        for group in groups:
            paths = group["paths"]
            fields += [path[0] if len(path) == 1 else dotted(path) for path in paths]
            if group.get("redacted") is True:
                if not allow_redacted:
                    raise TamperedError(f"{where}: its personal data is malformed; run verify()")
                _redact(data, paths)
                redacted = True
            elif not _open_group(ring, group, data, aad_prefix, where):
                redacted = True
    except (keyvault.TamperedError, keyvault.VaultConfigurationError):
        raise TamperedError(
            f"{where}: a subject's personal data failed authentication: the stored event "
            "was altered; run verify()"
        ) from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, binascii.Error):
        raise TamperedError(f"{where}: its personal data is malformed; run verify()") from None
    return frozenset(fields), redacted


def _open_group(ring: KeyRing | None, group: dict[str, Any], data: dict[str, Any],
                aad_prefix: bytes, where: object) -> bool:
    """Put one subject's opened values into `data`; False if its key was erased (redacted)."""
    paths = group["paths"]
    sealed = base64.b64decode(group["sealed"], validate=True)
    if ring is None:  # excluded by the caller; not a data error, so outside its handlers
        raise RuntimeError("no keyring to open personal data with")
    subject = group["subject"]
    if ring.is_erased(subject):  # known erased: no need to raise and catch per event
        _redact(data, paths)
        return False
    try:
        opened = ring.open(subject, sealed, aad=aad_prefix + pydantic_core.to_json(paths))
    except keyvault.KeyErasedError:
        _redact(data, paths)
        return False
    values = pydantic_core.from_json(opened)
    if len(values) != len(paths):
        raise TamperedError(f"{where}: its personal data is malformed; run verify()")
    for path, value in zip(paths, values, strict=True):
        if len(path) == 1:
            data[path[0]] = value
        else:
            put(data, path, value)
    return True


def open_one(ring: KeyRing, event_id: UUID, group: dict[str, Any]) -> bool:
    """Open one stored group with `ring`: True if it opens (raises as `KeyRing.open` does)."""
    try:
        sealed = base64.b64decode(group["sealed"], validate=True)
        aad = aad_prefix(event_id) + pydantic_core.to_json(group["paths"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise TamperedError("a stored personal group is malformed; run verify()") from None
    ring.open(group["subject"], sealed, aad=aad)
    return True


def _redacted_fields(groups: Iterable[dict[str, Any]], data: dict[str, Any]) -> frozenset[str]:
    """The dotted paths the groups put REDACTED at (without walking the whole event)."""
    found = set()
    for group in groups:
        for path in group["paths"]:
            target: Any = data
            for part in path:
                target = target[part]
            if target is REDACTED:
                found.add(path[0] if len(path) == 1 else dotted(path))
    return frozenset(found)


def _redact(data: dict[str, Any], paths: list[list[str | int]]) -> None:
    for path in paths:
        put(data, path, REDACTED)


def parse_groups(personal: str, where: object) -> list[dict[str, Any]]:
    """A stored personal column as a list of groups; TamperedError if it is not one."""
    try:
        groups = pydantic_core.from_json(personal)
    except ValueError:
        raise TamperedError(f"{where}: its personal data is malformed; run verify()") from None
    if not isinstance(groups, list):
        raise TamperedError(f"{where}: its personal data is malformed; run verify()")
    return groups


def page_subjects(rows: Iterable[StoredRow]) -> tuple[list[list[dict[str, Any]] | None],
                                                       set[str]]:
    """Each row's parsed personal column (or None), and the subjects whose keys they need."""
    parsed: list[list[dict[str, Any]] | None] = []
    subjects: set[str] = set()
    for row in rows:
        if row.personal is None:
            parsed.append(None)
            continue
        try:
            groups = parse_groups(row.personal, "")
            subjects.update(group["subject"] for group in groups
                            if isinstance(group, dict) and isinstance(group.get("subject"), str))
        except TamperedError:
            groups = None  # parsed again, and reported with its position, on decoding
        parsed.append(groups)
    return parsed, subjects


def _check_reads_back(cls: type[Event], event: Event, payload: str,
                      groups: Mapping[str, Mapping[tuple[Any, ...], Any]],
                      plaintexts: Mapping[str, bytes]) -> None:
    """Raise `InvalidEventError` unless a reader would return `event` from what is stored.

    The log is immutable: an event its readers refuse would stop every replay and
    subscription at its position for good. So the append does what a reader does, on the
    very text to be stored: parse the payload, put the personal values back (parsed from the
    text that is sealed), validate, and compare with the event.
    """
    try:
        data = pydantic_core.from_json(payload)
        for subject, values in groups.items():
            opened = pydantic_core.from_json(plaintexts[subject])
            for path, value in zip(values, opened, strict=True):
                put(data, path, value)
    except ValueError as error:
        raise InvalidEventError(
            f"{cls.__qualname__} could not be read back ({_parse_problem(error)}); nothing "
            "was written") from None
    data["event_id"] = event.event_id
    try:
        back = cls.__pydantic_validator__.validate_python(data)
    except ValidationError as error:
        raise InvalidEventError(
            f"{cls.__qualname__} would not read back as written: {_describe(error)}; nothing "
            "was written") from None
    # The stored fields (and extra fields, if allowed); private attributes are not stored.
    if back.__dict__ != event.__dict__ or back.__pydantic_extra__ != event.__pydantic_extra__:
        changed = [name for name, value in event.__dict__.items()
                   if back.__dict__.get(name) != value]
        raise InvalidEventError(
            f"{cls.__qualname__} would not read back as written (field "
            f"{', '.join(changed) or 'extra'} would differ): JSON cannot hold the value as it is "
            "(NaN, infinity, a tuple or a model under Any, a serializer without a matching "
            "validator); nothing was written")


def to_json(value: Any) -> bytes:
    """Standard JSON, as `model_dump_json` writes it: NaN and infinities become null (so
    that the read-back check refuses them), never the non-standard NaN/Infinity."""
    return pydantic_core.to_json(value, inf_nan_mode="null")


def _values_json(values: Mapping[tuple[Any, ...], Any], cls: type[Event]) -> bytes:
    """One subject's personal values of an event as the JSON text to be sealed."""
    written: bytes = dump(lambda: to_json(list(values.values())), cls)
    return written


def _parse_problem(error: ValueError) -> str:
    text = str(error)
    if "recursion" in text:
        return "nested more deeply than readers accept: about 200 levels"
    return "not valid JSON"


def validate(cls: type[Event], data: dict[str, Any], where: object) -> Event:
    """`cls` validated from `data`, or an EventDecodingError without the values."""
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise EventDecodingError(
            f"{where} does not fit {cls.__qualname__}: {_describe(error)}; "
            "register an upcaster if its schema changed"
        ) from None


def encode_metadata(metadata: Mapping[str, JsonValue] | None) -> str:
    """Event metadata as stored: a JSON object."""
    if not metadata:
        return _EMPTY_METADATA
    if not all(isinstance(key, str) for key in metadata):
        raise ConfigurationError("event metadata keys must be strings")
    try:
        encoded = pydantic_core.to_json(dict(metadata))
        pydantic_core.from_json(encoded)  # what every reader does: it must not fail later
    except (ValueError, RecursionError, UnicodeError):  # includes pydantic's errors
        raise ConfigurationError(
            "event metadata must be JSON-serialisable, valid Unicode, and nested less than "
            "about 200 levels deep") from None
    return encoded.decode()


class _Where:
    """Names an event in an error message; formatted only if there is an error."""

    __slots__ = ("position",)

    def __init__(self, position: int) -> None:
        self.position = position

    def __str__(self) -> str:
        return f"event at position {self.position}"

    def __format__(self, spec: str) -> str:
        return str(self)


def aad_prefix(event_id: UUID) -> bytes:
    return _AAD_PREFIX + event_id.bytes


def _json(text: str, where: object) -> Any:
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        raise EventDecodingError(f"{where} is not valid JSON; run verify()") from None


def _describe(error: ValidationError) -> str:
    """The locations and kinds of validation errors, without the offending values."""
    problems = [
        f"{'.'.join(str(part) for part in issue['loc']) or '<event>'}: {issue['type']}"
        for issue in error.errors(include_input=False, include_url=False)
    ]
    return "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
