"""The seal step: each subject's personal values of a record sealed as one value with that
subject's key; and back: opened, or redacted where the key was erased.

A sealed value is AES-256-GCM (keyvault) over the values' JSON text. Its associated data is
the record's *context* (an event's id, or a snapshot's stream and version) followed by the
group's encoded paths; keyvault adds the subject and the key version. So a sealed value moved
to another record, subject or set of fields fails authentication.

Opening keeps the promise of the whole store: only an erased key (`keyvault.KeyErasedError`)
reads as `REDACTED`; a value that fails authentication, or a malformed group, is
`TamperedError`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import keyvault
from keyvault import KeyRing
from shredstore.errors import ConfigurationError, TamperedError
from shredstore.mapping.column import StoredGroup, sealed_value, stored_paths
from shredstore.mapping.encoding import decode_values
from shredstore.mapping.split import join, redact
from shredstore.personal import dotted

__all__ = ["event_context", "open_groups", "seal", "snapshot_context", "unseal"]

_EVENT_CONTEXT = b"shredstore.event.v1\x00"
_SNAPSHOT_CONTEXT = b"shredstore.snapshot.v1\x00"


def event_context(event_id: UUID) -> bytes:
    """The associated data that binds an event's sealed values to the event."""
    return _EVENT_CONTEXT + event_id.bytes


def snapshot_context(stream_id: str, version: int) -> bytes:
    """The associated data that binds a snapshot's sealed values to its stream and version."""
    encoded = stream_id.encode()
    return (_SNAPSHOT_CONTEXT + len(encoded).to_bytes(4, "big") + encoded
            + version.to_bytes(8, "big"))


def seal(ring: KeyRing, subject: str, paths: bytes, plaintext: bytes, context: bytes) -> bytes:
    """One subject's values (`plaintext`, their JSON text) sealed with its key, bound to the
    record's `context` and the group's encoded `paths`. Raises as `KeyRing.seal` does
    (`keyvault.SubjectErasedError` for an erased subject)."""
    return ring.seal(subject, plaintext, aad=context + paths)


def unseal(ring: KeyRing, subject: str, paths: bytes, sealed: bytes, context: bytes
           ) -> bytes | None:
    """The values' JSON text of a value sealed by `seal` with the same `paths` and
    `context`, or None if the subject's key was erased. Raises as `KeyRing.open` does
    otherwise (`keyvault.TamperedError` where authentication fails)."""
    if ring.is_erased(subject):  # known erased: no need to raise and catch per record
        return None
    try:
        return ring.open(subject, sealed, aad=context + paths)
    except keyvault.KeyErasedError:
        return None


def open_groups(
    ring: KeyRing | None,
    groups: list[StoredGroup],
    data: dict[str, Any],
    context: bytes,
    *,
    where: object,
    allow_redacted: bool = False,
) -> tuple[frozenset[str], bool]:
    """Put each group's opened values (or REDACTED) into `data`: the record's load through
    the seal and split steps.

    Returns the personal fields' dotted paths, and whether anything was redacted. Redacted
    groups are accepted only where `allow_redacted` (snapshots): in an event they would let an
    altered row pass for an erasure. Anything malformed, or failing authentication, is
    `TamperedError`; personal data without a `ring` (no master key) is `ConfigurationError`.
    """
    fields: frozenset[str] = frozenset()
    redacted = False
    if ring is None and any(group.get("redacted") is not True for group in groups):
        raise ConfigurationError(
            f"{where} holds personal data, and the store has no master key to open it: "
            "pass master_key= to EventStore"
        )
    try:
        for group in groups:
            paths = group["paths"]
            encoded = stored_paths(group)
            names = _FIELD_NAMES.get(encoded) or _field_names(encoded, paths)
            fields = fields | names if fields else names
            if group.get("redacted") is True:
                if not allow_redacted:
                    raise TamperedError(f"{where}: its personal data is malformed; run verify()")
                redact(data, paths)
                redacted = True
                continue
            if ring is None:  # excluded above; not a data error, so outside the handlers
                raise RuntimeError("no keyring to open personal data with")
            opened = unseal(ring, group["subject"], encoded, sealed_value(group, where), context)
            if opened is None:
                redact(data, paths)
                redacted = True
            else:
                join(data, paths, decode_values(opened, len(paths)))
    except TamperedError:
        raise  # already says what is wrong (a subclass of keyvault's)
    except (keyvault.TamperedError, keyvault.VaultConfigurationError):
        raise TamperedError(
            f"{where}: a subject's personal data failed authentication: the stored record "
            "was altered; run verify()"
        ) from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise TamperedError(f"{where}: its personal data is malformed; run verify()") from None
    return fields, redacted


_FIELD_NAMES: dict[bytes, frozenset[str]] = {}
_FIELD_NAMES_KEPT = 4096


def _field_names(encoded: bytes, paths: list[list[Any]]) -> frozenset[str]:
    """The dotted names of a group's paths, remembered by their encoded form in
    `_FIELD_NAMES` (a log has few field layouts, and a read names them once per record)."""
    names = frozenset(map(dotted, paths))
    if len(_FIELD_NAMES) < _FIELD_NAMES_KEPT:
        _FIELD_NAMES[encoded] = names
    return names
