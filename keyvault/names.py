"""What the vault accepts as a subject id, a service key's name, and a note on an erasure.

Checked before anything is stored or looked up, so that an id that could not be stored as
written (a control character, a lone surrogate, an unbounded length) is refused with a message
that says what to pass instead, never with the id itself (it may be personal data).
"""

from __future__ import annotations

import re

from keyvault.errors import VaultConfigurationError

__all__ = ["MAX_NOTE", "MAX_SUBJECT_ID", "check_note", "check_service_name", "check_subject",
           "is_utf8"]

MAX_SUBJECT_ID = 200
"""The longest subject id (and service key name), in characters."""

MAX_NOTE = 2000
"""The longest reason or request id stored with an erasure, in characters."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_subject(subject_id: object) -> None:
    """Refuse a subject id that is not a non-empty, bounded, storable string."""
    if (not isinstance(subject_id, str) or not subject_id or len(subject_id) > MAX_SUBJECT_ID
            or _CONTROL.search(subject_id)):
        raise VaultConfigurationError(
            f"a subject id is a non-empty string of at most {MAX_SUBJECT_ID} characters "
            "without control characters"
        )
    if not is_utf8(subject_id):
        raise VaultConfigurationError(
            "a subject id must be valid Unicode text: this one holds a lone surrogate "
            "(text decoded with errors='surrogateescape'?); pass the id as valid text")


def check_service_name(name: object) -> None:
    """Refuse a service key's name that is not a non-empty, bounded, storable string."""
    if (not isinstance(name, str) or not name or len(name) > MAX_SUBJECT_ID
            or _CONTROL.search(name) or not is_utf8(name)):
        raise VaultConfigurationError(
            f"a service key's name is a non-empty string of at most {MAX_SUBJECT_ID} "
            "characters of valid Unicode without control characters")


def check_note(name: str, value: object) -> str | None:
    """`value` if it can be stored as the erasure's `name` (a reason, a request id)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NOTE:
        raise VaultConfigurationError(f"{name} is a string of at most {MAX_NOTE} characters")
    return value


def is_utf8(text: str) -> bool:
    """Whether `text` can be stored: lone surrogates cannot be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
