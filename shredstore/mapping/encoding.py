"""The encode step for what is stored as plain JSON text: a record's plain data, its
metadata, and each subject's personal values as the text to be sealed; and back.

Appends write standard JSON only (NaN and infinities become null, so that the read-back check
refuses them), and say which class could not be written, never the value. Reads raise
`EventDecodingError` for text that is not JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, JsonValue
from pydantic_core import PydanticSerializationError

from shredstore.errors import ConfigurationError, EventDecodingError, InvalidEventError

__all__ = [
    "EMPTY_METADATA",
    "checked_dump",
    "decode_metadata",
    "decode_payload",
    "decode_values",
    "encode_metadata",
    "encode_model",
    "encode_payload",
    "encode_values",
    "to_json",
]

EMPTY_METADATA = "{}"
"""Stored metadata of an event without any."""

T = TypeVar("T")

_DUMP_ERRORS = (PydanticSerializationError, ValueError, RecursionError, UnicodeError)
"""What a pydantic dump raises for a value it cannot write."""


def to_json(value: Any) -> bytes:
    """Standard JSON, as `model_dump_json` writes it: NaN and infinities become null (so
    that the read-back check refuses them), never the non-standard NaN/Infinity."""
    return pydantic_core.to_json(value, inf_nan_mode="null")


def checked_dump(write: Callable[[], T], cls: type) -> T:
    """Run a pydantic dump of a `cls` instance; its failures become `InvalidEventError`,
    naming the class and the kind of problem, never the values."""
    try:
        return write()
    except _DUMP_ERRORS as error:
        raise _unwritable(cls, error) from None


# The encoders of the append's hot path catch the errors themselves (no closure per call).


def encode_model(model: BaseModel) -> str:
    """A model without personal data (nor subjects) as its stored payload."""
    try:
        return model.model_dump_json(by_alias=True)
    except _DUMP_ERRORS as error:
        raise _unwritable(type(model), error) from None


def encode_payload(data: dict[str, Any], cls: type) -> str:
    """A `cls` record's plain data (its personal values split off) as its stored payload."""
    try:
        return to_json(data).decode()
    except _DUMP_ERRORS as error:
        raise _unwritable(cls, error) from None


def encode_values(values: Iterable[Any], cls: type) -> bytes:
    """One subject's personal values of a `cls` record (in the order of its group's paths)
    as the JSON text to be sealed."""
    try:
        return to_json(list(values))
    except _DUMP_ERRORS as error:
        raise _unwritable(cls, error) from None


def decode_values(opened: bytes, count: int) -> list[Any]:
    """The values of an opened group; ValueError unless a JSON list of `count` values."""
    values = pydantic_core.from_json(opened)
    if type(values) is not list or len(values) != count:
        raise ValueError("the opened values do not match the group's paths")
    return values


def decode_payload(text: str, where: object) -> Any:
    """A record's stored plain data (or any stored JSON text), parsed."""
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        raise EventDecodingError(f"{where} is not valid JSON; run verify()") from None


def encode_metadata(metadata: Mapping[str, JsonValue] | None) -> str:
    """Event metadata as stored: a JSON object."""
    if not metadata:
        return EMPTY_METADATA
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


def decode_metadata(text: str, where: object) -> Any:
    """Stored event metadata, parsed."""
    return {} if text == EMPTY_METADATA else decode_payload(text, where)


def _unwritable(cls: type, error: BaseException) -> InvalidEventError:
    return InvalidEventError(
        f"{cls.__qualname__} cannot be written as JSON ({_reason(error)}); nothing was written")


def _reason(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, UnicodeError) or "surrogate" in text:
        return "text that is not valid Unicode: a lone surrogate"
    if (isinstance(error, RecursionError) or "depth" in text or "recursion" in text.lower()
            or "Circular reference" in text):
        return "a value nested too deeply, or holding itself"
    return type(error).__name__
