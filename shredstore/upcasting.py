"""Upcasters: functions that lift a stored record's data from one schema version to the next.

They run as a chain on read, for events and snapshots alike, on plain data: personal fields
are already opened, or hold `REDACTED` where their subject was erased, so an upcaster that
renames or reshapes a personal field works the same for erased subjects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shredstore.errors import ConfigurationError, EventDecodingError

__all__ = ["Upcaster", "Upcasters"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
F = TypeVar("F", bound=Upcaster)


class Upcasters:
    """The upcasters of one registry, by (type name, schema version they lift from)."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def add(self, type_name: str, from_version: int, function: Upcaster) -> None:
        """Register `function` to lift `type_name` data from `from_version` to the next."""
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise ConfigurationError("from_version is a schema version >= 1")
        key = (type_name, from_version)
        if key in self._steps and self._steps[key] is not function:
            raise ConfigurationError(
                f"{type_name!r} already has an upcaster from schema version {from_version}"
            )
        self._steps[key] = function

    def upcast(
        self, type_name: str, version: int, target: int, data: dict[str, Any], *, where: object
    ) -> dict[str, Any]:
        """Run the chain from `version` up to `target`; raise EventDecodingError on a gap."""
        while version < target:
            step = self._steps.get((type_name, version))
            if step is None:
                raise EventDecodingError(
                    f"{where} is {type_name!r} schema version {version}, and no upcaster "
                    f"lifts it towards version {target}; register one with "
                    f"@upcaster({type_name!r}, from_version={version})"
                )
            data = step(data)
            if not isinstance(data, dict):
                raise EventDecodingError(
                    f"the upcaster of {type_name!r} from version {version} returned "
                    f"{type(data).__name__}, not a dict"
                )
            version += 1
        return data
