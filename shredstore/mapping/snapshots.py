"""Aggregate state to a stored snapshot and back, with personal data sealed as in events.

A snapshot's personal fields are sealed with their subjects' keys, so a snapshot read after an
erasure shows the same redactions as a replay. Fields that already hold `REDACTED`, and fields
of subjects erased before the snapshot was taken, are stored as redacted, without a value.
"""

from __future__ import annotations

import base64
from typing import Any

import pydantic_core
from pydantic import BaseModel, ValidationError

import keyvault
from keyvault import KeyRing
from shredstore.errors import EventDecodingError
from shredstore.events import EventRegistry
from shredstore.mapping.mapper import open_groups, parse_groups
from shredstore.mapping.split import split
from shredstore.personal import REDACTED, plan_of
from shredstore.storage.snapshots import SnapshotRow

__all__ = ["snapshot_of", "state_from"]

_AAD_PREFIX = b"shredstore.snapshot.v1\x00"


def snapshot_of(
    aggregate: BaseModel, *, stream_id: str, version: int, type_name: str,
    schema_version: int, ring: KeyRing | None,
) -> SnapshotRow:
    """The stored snapshot of `aggregate` after event `version` of `stream_id`."""
    data, groups, _ = split(aggregate, plan_of(type(aggregate)))
    stored: list[dict[str, Any]] = []
    for subject in sorted(groups):
        values = groups[subject]
        redacted = [list(path) for path, value in values.items() if value is REDACTED]
        sealable = {path: value for path, value in values.items() if value is not REDACTED}
        if sealable and ring is not None:
            paths = [list(path) for path in sealable]
            try:
                sealed = ring.seal(subject, pydantic_core.to_json(list(sealable.values())),
                                   aad=_aad(stream_id, version) + pydantic_core.to_json(paths))
            except keyvault.SubjectErasedError:
                redacted.extend(paths)  # erased since its events were read: keep nothing
            else:
                stored.append({"subject": subject, "paths": paths,
                               "sealed": base64.b64encode(sealed).decode("ascii")})
        elif sealable:
            redacted.extend(list(path) for path in sealable)
        if redacted:
            stored.append({"subject": subject, "paths": redacted, "redacted": True})
    return SnapshotRow(
        stream_id=stream_id, version=version, type_name=type_name,
        schema_version=schema_version, state=pydantic_core.to_json(data).decode(),
        personal=pydantic_core.to_json(stored).decode() if stored else None,
    )


def state_from(
    row: SnapshotRow, cls: type[BaseModel], *, registry: EventRegistry, target_version: int,
    ring: KeyRing | None,
) -> BaseModel:
    """The aggregate a snapshot holds; EventDecodingError if it no longer fits `cls`."""
    where = f"snapshot of {row.stream_id!r} at version {row.version}"
    if row.schema_version > target_version:
        raise EventDecodingError(f"{where} was written by a newer schema version "
                                 f"({row.schema_version} > {target_version})")
    try:
        data = pydantic_core.from_json(row.state)
    except ValueError:
        raise EventDecodingError(f"{where} is not valid JSON") from None
    if row.personal is not None:
        open_groups(ring, parse_groups(row.personal, where), data,
                    _aad(row.stream_id, row.version), where=where, allow_redacted=True)
    data = registry.upcasters.upcast(row.type_name, row.schema_version, target_version, data,
                                     where=where)
    try:
        return cls.model_validate(data)
    except ValidationError:
        raise EventDecodingError(f"{where} does not fit {cls.__qualname__}") from None


def _aad(stream_id: str, version: int) -> bytes:
    encoded = stream_id.encode()
    return (_AAD_PREFIX + len(encoded).to_bytes(4, "big") + encoded
            + version.to_bytes(8, "big"))
