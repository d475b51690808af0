"""The stored personal column: the one codec for events, snapshots, audit and erasure.

A stored record's personal column is NULL when the record holds no personal data, or else a
JSON list of groups, each holding personal values of one subject::

    [{"subject":"42","paths":[["name"],["lines",0,"recipient"]],"sealed":"<base64>"},
     {"subject":"7","paths":[["email"]],"redacted":true}]

A *sealed* group is one subject's values (a JSON list, in the order of `paths`) sealed with
that subject's key (`shredstore.mapping.sealing`). A *redacted* group holds no value at all;
only snapshots store them (events would let an altered row pass for an erasure). Subject ids,
paths and the groups' order are stored in the clear, so any tool can tell which fields are
personal, and whose, without the application's classes.

These bytes are the stored format: existing databases must keep reading, and authenticators and
the hash chain cover them. Encoding builds them from parts, which is the append's fast path:
the paths of a field layout are encoded once (`encode_paths`), and a group is one ``%``
format. The result is byte for byte ``pydantic_core.to_json`` of the same groups as dicts.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from typing import Any

import pydantic_core

from shredstore.errors import TamperedError

__all__ = [
    "Path",
    "StoredGroup",
    "decode_column",
    "encode_column",
    "encode_paths",
    "encode_redacted_group",
    "encode_sealed_group",
    "sealed_value",
    "stored_paths",
    "try_decode_column",
]

Path = tuple[str | int, ...]
"""A value's place in a record's JSON data: keys of objects and indexes of lists."""


StoredGroup = dict[str, Any]
"""One decoded group: the parsed JSON object itself, as `decode_column` checked it (a read
decodes one per event, and a dict costs nothing more). ``subject``: a non-empty string;
``paths``: non-empty lists of keys and indexes; ``sealed``: the base64 of the sealed values
(see `sealed_value`), or instead ``"redacted": true`` (snapshots only)."""


@functools.lru_cache(maxsize=1024)
def encode_paths(paths: tuple[Path, ...]) -> bytes:
    """A group's field paths as stored, and as authenticated with its sealed value: a JSON
    list of lists (cached: an application has few field layouts)."""
    return pydantic_core.to_json([list(path) for path in paths])


def stored_paths(group: StoredGroup) -> bytes:
    """A decoded group's paths encoded again, as its sealed value was authenticated with them
    (the same bytes as `encode_paths` of the same paths)."""
    return pydantic_core.to_json(group["paths"])


def encode_sealed_group(subject: str, paths: bytes, sealed: bytes) -> bytes:
    """A sealed group as stored; `paths` from `encode_paths`, `sealed` the raw sealed value."""
    return b'{"subject":%s,"paths":%s,"sealed":"%s"}' % (
        pydantic_core.to_json(subject), paths, base64.b64encode(sealed))


def encode_redacted_group(subject: str, paths: bytes) -> bytes:
    """A redacted group as stored (snapshots only); `paths` from `encode_paths`."""
    return b'{"subject":%s,"paths":%s,"redacted":true}' % (pydantic_core.to_json(subject), paths)


def encode_column(groups: Sequence[bytes]) -> str | None:
    """The personal column of encoded `groups`; None (NULL: no personal data) for none."""
    if not groups:
        return None
    return (b"[" + b",".join(groups) + b"]").decode()


def decode_column(text: str, where: object = "a stored record") -> list[StoredGroup]:
    """The groups of a stored personal column; `TamperedError` naming `where` unless it is a
    JSON list of well-formed groups.

    Well-formed: an object with a non-empty string `subject`, `paths` a list of non-empty
    lists, and either a string `sealed` or ``"redacted": true``. Whether a sealed value
    opens (which authenticates its subject and paths), and whether a redacted group is
    allowed, is for the reader to say.
    """
    try:
        groups = pydantic_core.from_json(text)
    except ValueError:
        raise _malformed(where) from None
    if type(groups) is not list:
        raise _malformed(where)
    # Loops rather than all(...): a read decodes a column per event.
    for group in groups:
        if type(group) is not dict:
            raise _malformed(where)
        subject = group.get("subject")
        paths = group.get("paths")
        if type(subject) is not str or not subject or type(paths) is not list:
            raise _malformed(where)
        for path in paths:
            if type(path) is not list or not path:
                raise _malformed(where)
        if type(group.get("sealed")) is not str and group.get("redacted") is not True:
            raise _malformed(where)
    return groups


def try_decode_column(text: str | None) -> list[StoredGroup] | None:
    """The groups of a stored personal column: [] for NULL, None if it is malformed (for
    readers that report a tampered record rather than stop at it)."""
    if text is None:
        return []
    try:
        return decode_column(text)
    except TamperedError:
        return None


def sealed_value(group: StoredGroup, where: object = "a stored record") -> bytes:
    """The raw sealed value of a sealed group; `TamperedError` if it is not base64."""
    try:
        return base64.b64decode(group["sealed"], validate=True)
    except (KeyError, TypeError, ValueError):  # binascii.Error is a ValueError
        raise _malformed(where) from None


def _malformed(where: object) -> TamperedError:
    return TamperedError(f"{where}: its personal data is malformed; run verify()")
