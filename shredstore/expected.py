"""Expected versions: the optimistic-concurrency condition of an append."""

from __future__ import annotations

import enum

from shredstore.errors import ConfigurationError

__all__ = ["ANY", "NO_STREAM", "STREAM_EXISTS", "ExpectedVersion", "satisfied"]


class ExpectedVersion(enum.Enum):
    """What an append expects of its stream, besides an exact version number."""

    ANY = "any"
    """Append whatever the stream holds."""
    NO_STREAM = "no stream"
    """The stream must have no events yet (the same as expecting version 0)."""
    STREAM_EXISTS = "stream exists"
    """The stream must have at least one event."""

    def __str__(self) -> str:
        return self.value


ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM
STREAM_EXISTS = ExpectedVersion.STREAM_EXISTS


def validate(expected: int | ExpectedVersion) -> int | ExpectedVersion:
    """Return `expected` if it is a usable expected version, else raise ConfigurationError."""
    if isinstance(expected, ExpectedVersion):
        return expected
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ConfigurationError(
            "expected_version must be ANY, NO_STREAM, STREAM_EXISTS or a version number >= 0, "
            f"not {expected!r}"
        )
    return expected


def satisfied(expected: int | ExpectedVersion, actual: int) -> bool:
    """Whether a stream at version `actual` (0: no events) meets `expected`."""
    if expected is ANY:
        return True
    if expected is NO_STREAM:
        return actual == 0
    if expected is STREAM_EXISTS:
        return actual > 0
    return expected == actual
