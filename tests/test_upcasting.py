"""The upcast step: a chain of functions lifts stored data to the class's schema version."""

from __future__ import annotations

from typing import Any

import pytest

from shredstore import ConfigurationError, EventDecodingError
from shredstore.upcasting import Upcasters


def rename(data: dict[str, Any]) -> dict[str, Any]:
    data["full_name"] = data.pop("name")
    return data


def add_country(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "country": "unknown"}


def test_the_chain_runs_from_the_stored_version_to_the_target() -> None:
    upcasters = Upcasters()
    upcasters.add("t", 1, rename)
    upcasters.add("t", 2, add_country)
    assert upcasters.upcast("t", 1, 3, {"name": "N"}, where="here") == {
        "full_name": "N", "country": "unknown"}
    assert upcasters.upcast("t", 2, 3, {"full_name": "N"}, where="here") == {
        "full_name": "N", "country": "unknown"}
    assert upcasters.upcast("t", 3, 3, {"full_name": "N"}, where="here") == {"full_name": "N"}


def test_a_gap_in_the_chain_names_the_missing_version() -> None:
    upcasters = Upcasters()
    upcasters.add("t", 2, add_country)
    with pytest.raises(EventDecodingError, match=r"event at position 5 .* version 1.*"
                                                 r"from_version=1"):
        upcasters.upcast("t", 1, 3, {}, where="event at position 5")


def test_an_upcaster_must_return_a_dict() -> None:
    upcasters = Upcasters()
    upcasters.add("t", 1, lambda data: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(EventDecodingError, match="returned NoneType, not a dict"):
        upcasters.upcast("t", 1, 2, {}, where="here")


def test_one_upcaster_per_type_and_version() -> None:
    upcasters = Upcasters()
    upcasters.add("t", 1, rename)
    upcasters.add("t", 1, rename)  # the same function again: idempotent
    with pytest.raises(ConfigurationError, match="already has an upcaster"):
        upcasters.add("t", 1, add_country)


@pytest.mark.parametrize("version", [0, -1, True, "1"])
def test_from_version_is_a_schema_version(version: Any) -> None:
    with pytest.raises(ConfigurationError, match="from_version"):
        Upcasters().add("t", version, rename)
