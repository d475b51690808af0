"""The validate step: plain data (opened or redacted, upcast) to its model; and, on append,
the check that a reader will do exactly that.

The log is immutable: an event its readers refuse would stop every replay and subscription at
its position for good. So an append does what a reader does, on the very text to be stored
(`check_reads_back`): parse the payload, put the personal values back (parsed from the text
that is sealed), validate, and compare with the event. Errors name fields and kinds of
problem, never values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from shredstore.errors import EventDecodingError, InvalidEventError
from shredstore.events import Event
from shredstore.mapping.column import Path
from shredstore.mapping.split import join, redact

__all__ = ["check_reads_back", "describe", "validate"]

M = TypeVar("M", bound=BaseModel)


def validate(cls: type[M], data: dict[str, Any], where: object) -> M:
    """`cls` validated from `data`, or an EventDecodingError without the values."""
    try:
        # The model's validator itself: what `model_validate` calls, without its keyword
        # handling (a read validates once per event).
        made: M = cls.__pydantic_validator__.validate_python(data)
    except ValidationError as error:
        raise EventDecodingError(
            f"{where} does not fit {cls.__qualname__}: {describe(error)}; "
            "register an upcaster if its schema changed"
        ) from None
    return made


def check_reads_back(cls: type[Event], event: Event, payload: str,
                     groups: Mapping[str, Mapping[Path, Any]],
                     plaintexts: Mapping[str, bytes], *,
                     redacted: Mapping[str, Sequence[Path]] | None = None) -> None:
    """Raise `InvalidEventError` unless a reader would return `event` from `payload` (its
    stored plain data), `plaintexts` (each subject's values in `groups`, as sealed) and the
    `redacted` paths (stored without a value, read as REDACTED)."""
    try:
        data = pydantic_core.from_json(payload)
        for subject, values in groups.items():
            join(data, values, pydantic_core.from_json(plaintexts[subject]))
        for paths in (redacted or {}).values():
            redact(data, paths)
    except ValueError as error:
        raise InvalidEventError(
            f"{cls.__qualname__} could not be read back ({_parse_problem(error)}); nothing "
            "was written") from None
    data["event_id"] = event.event_id
    try:
        back = cls.__pydantic_validator__.validate_python(data)
    except ValidationError as error:
        raise InvalidEventError(
            f"{cls.__qualname__} would not read back as written: {describe(error)}; nothing "
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


def describe(error: ValidationError) -> str:
    """The locations and kinds of validation errors, without the offending values."""
    problems = [
        f"{'.'.join(str(part) for part in issue['loc']) or '<event>'}: {issue['type']}"
        for issue in error.errors(include_input=False, include_url=False)
    ]
    return "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")


def _parse_problem(error: ValueError) -> str:
    text = str(error)
    if "recursion" in text:
        return "nested more deeply than readers accept: about 200 levels"
    return "not valid JSON"
