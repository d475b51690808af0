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

import os
from binascii import a2b_base64
from types import ModuleType
from typing import Any
from uuid import UUID

from pydantic_core import from_json, to_json

import keyvault
from keyvault import KeyRing
from shredstore.errors import ConfigurationError, TamperedError
from shredstore.mapping.column import StoredGroup
from shredstore.mapping.split import put, redact
from shredstore.personal import REDACTED, dotted

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
    return ring.open_unless_erased(subject, sealed, aad=context + paths)


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
    if ring is None and any(group.get("redacted") is not True for group in groups):
        raise ConfigurationError(
            f"{where} holds personal data, and the store has no master key to open it: "
            "pass master_key= to EventStore"
        )
    try:
        # In C where it was built, for the groups appends write; it leaves any other column
        # to the loop, untouched.
        opened = (None if native_groups is None or ring is None
                  else native_groups.open_groups(ring.open_unless_erased, groups, data, context))
        return opened if opened is not None else _open_each(
            ring, groups, data, context, where=where, allow_redacted=allow_redacted)
    except TamperedError:
        raise  # already says what is wrong (a subclass of keyvault's)
    except (keyvault.TamperedError, keyvault.VaultConfigurationError):
        raise TamperedError(
            f"{where}: a subject's personal data failed authentication: the stored record "
            "was altered; run verify()"
        ) from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        # binascii.Error (not base64) is a ValueError
        raise TamperedError(f"{where}: its personal data is malformed; run verify()") from None


def _open_each(ring: KeyRing | None, groups: list[StoredGroup], data: dict[str, Any],
               context: bytes, *, where: object, allow_redacted: bool
               ) -> tuple[frozenset[str], bool]:
    """`open_groups`'s loop, which raises the errors it translates. The steps of
    `stored_paths`, `sealed_value`, `unseal`, `decode_values` and `join`, written out: a read
    runs this once per event where the C module was not built."""
    fields: frozenset[str] = frozenset()
    redacted = False
    for group in groups:
        paths = group["paths"]
        encoded = to_json(paths)  # as `stored_paths`: the authenticated form
        names = _FIELD_NAMES.get(encoded) or _field_names(encoded, paths)
        fields = fields | names if fields else names
        if group.get("redacted") is True:
            if not allow_redacted:
                raise TamperedError(f"{where}: its personal data is malformed; run verify()")
            redact(data, paths)
            redacted = True
            continue
        values = _opened(ring, group, context + encoded)
        if values is None:
            redact(data, paths)
            redacted = True
            continue
        if len(values) != len(paths):
            raise ValueError("the opened values do not match the group's paths")
        for path, value in zip(paths, values, strict=True):
            if len(path) == 1:
                data[path[0]] = value
            else:
                put(data, path, value)
    return fields, redacted


def _opened(ring: KeyRing | None, group: StoredGroup, aad: bytes) -> list[Any] | None:
    """A sealed group's values (`unseal` and `decode_values` in one step), None if its
    subject's key was erased; raises as `open_groups` handles."""
    if ring is None:  # excluded by open_groups; not a data error, so not one it handles
        raise RuntimeError("no keyring to open personal data with")
    opened = ring.open_unless_erased(group["subject"],
                                     a2b_base64(group["sealed"], strict_mode=True), aad=aad)
    if opened is None:
        return None
    values = from_json(opened)
    if type(values) is not list:
        raise ValueError("the opened values are not a list")
    return values


_FIELD_NAMES: dict[bytes, frozenset[str]] = {}
_FIELD_NAMES_KEPT = 4096


def _field_names(encoded: bytes, paths: list[list[Any]]) -> frozenset[str]:
    """The dotted names of a group's paths, remembered by their encoded form in
    `_FIELD_NAMES` (a log has few field layouts, and a read names them once per record)."""
    names = frozenset(map(dotted, paths))
    if len(_FIELD_NAMES) < _FIELD_NAMES_KEPT:
        _FIELD_NAMES[encoded] = names
    return names


def _native_groups() -> ModuleType | None:
    """`shredstore.mapping.native`, configured; None where it was not built or
    ``SHREDSTORE_PURE_PYTHON`` is set (tests/mapping/test_native_groups.py holds it to the loop
    of `open_groups`)."""
    if os.environ.get("SHREDSTORE_PURE_PYTHON"):
        return None
    try:
        from shredstore.mapping import native  # noqa: PLC0415 (optional: built where it can be)
    except ImportError:
        return None
    native.configure(to_json=to_json, from_json=from_json, a2b_base64=a2b_base64,
                     names_cache=_FIELD_NAMES, field_names=_field_names, redacted=REDACTED,
                     context_prefix=_EVENT_CONTEXT)
    return native


native_groups = _native_groups()
"""The configured C module, or None (then `open_groups` runs its own loop)."""
