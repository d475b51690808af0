"""Aggregate state to a stored snapshot and back: the mapping pipeline's steps, put together
for snapshots, with personal data sealed as in events.

A snapshot's personal fields are sealed with their subjects' keys (bound to the snapshot's
stream and version), so a snapshot read after an erasure shows the same redactions as a
replay. Fields that already hold `REDACTED`, and fields of subjects erased before the
snapshot was taken, are stored as redacted groups, without a value.

Unlike events, a snapshot keeps what `pydantic_core.to_json` writes by default (NaN and
infinities as such): it is a cache that this library alone writes and reads.
"""

from __future__ import annotations

import pydantic_core
from pydantic import BaseModel

import keyvault
from keyvault import KeyRing
from shredstore.errors import EventDecodingError
from shredstore.events import EventRegistry
from shredstore.mapping.column import (
    Path,
    decode_column,
    encode_column,
    encode_paths,
    encode_redacted_group,
    encode_sealed_group,
)
from shredstore.mapping.sealing import open_groups, seal, snapshot_context
from shredstore.mapping.split import split
from shredstore.mapping.validation import validate
from shredstore.personal import REDACTED, plan_of
from shredstore.storage.snapshots import SnapshotRow

__all__ = ["snapshot_of", "state_from"]


def snapshot_of(
    aggregate: BaseModel, *, stream_id: str, version: int, type_name: str,
    schema_version: int, ring: KeyRing | None,
) -> SnapshotRow:
    """The stored snapshot of `aggregate` after event `version` of `stream_id`."""
    data, groups, _ = split(aggregate, plan_of(type(aggregate)))
    context = snapshot_context(stream_id, version)
    stored: list[bytes] = []
    for subject in sorted(groups):
        values = groups[subject]
        redacted: list[Path] = [path for path, value in values.items() if value is REDACTED]
        sealable = {path: value for path, value in values.items() if value is not REDACTED}
        if sealable and ring is not None:
            paths = encode_paths(tuple(sealable))
            try:
                sealed = seal(ring, subject, paths,
                              pydantic_core.to_json(list(sealable.values())), context)
            except keyvault.SubjectErasedError:
                redacted.extend(sealable)  # erased since its events were read: keep nothing
            else:
                stored.append(encode_sealed_group(subject, paths, sealed))
        elif sealable:
            redacted.extend(sealable)
        if redacted:
            stored.append(encode_redacted_group(subject, encode_paths(tuple(redacted))))
    return SnapshotRow(
        stream_id=stream_id, version=version, type_name=type_name,
        schema_version=schema_version, state=pydantic_core.to_json(data).decode(),
        personal=encode_column(stored),
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
        open_groups(ring, decode_column(row.personal, where), data,
                    snapshot_context(row.stream_id, row.version), where=where,
                    allow_redacted=True)
    data = registry.upcasters.upcast(row.type_name, row.schema_version, target_version, data,
                                     where=where)
    return validate(cls, data, where)
