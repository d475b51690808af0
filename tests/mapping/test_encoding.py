"""The encode step of plain JSON text: plain data, metadata and each subject's values, as
stored and back; errors name the class, never a value."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shredstore import ConfigurationError, EventDecodingError, InvalidEventError
from shredstore.mapping.encoding import (
    EMPTY_METADATA,
    checked_dump,
    decode_metadata,
    decode_payload,
    decode_values,
    encode_metadata,
    encode_values,
    to_json,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(json_values, max_size=6))
def test_a_subjects_values_round_trip(values: list[Any]) -> None:
    """The text to be sealed is a JSON list of the values, in the order of their paths."""
    assert decode_values(encode_values(iter(values), BaseModel), len(values)) == values


def test_opened_values_must_match_their_paths() -> None:
    """As many values as paths, in a list: anything else is a ValueError (the reader says
    TamperedError)."""
    with pytest.raises(ValueError, match="paths"):
        decode_values(b'["a", "b"]', 3)
    with pytest.raises(ValueError, match="paths"):
        decode_values(b'{"a": 1}', 1)


def test_nan_and_infinities_become_null() -> None:
    """Standard JSON only: the read-back check then refuses a float that would not return."""
    assert to_json([float("nan"), float("inf"), -float("inf")]) == b"[null,null,null]"


class Holder(BaseModel):
    text: str


def test_a_dump_that_fails_names_the_class_and_the_problem_never_the_value() -> None:
    """A lone surrogate cannot be written as UTF-8 JSON: InvalidEventError without the text."""
    text = "private-\udc80"
    with pytest.raises(InvalidEventError, match="Holder cannot be written as JSON") as raised:
        checked_dump(lambda: Holder(text=text).model_dump_json(), Holder)
    assert "not valid Unicode" in str(raised.value)
    assert "private" not in str(raised.value)


@settings(max_examples=100, deadline=None)
@given(metadata=st.dictionaries(st.text(), json_values, max_size=5))
def test_metadata_round_trips(metadata: dict[str, Any]) -> None:
    """Metadata is stored as a JSON object ("{}" when empty) and parsed back."""
    stored = encode_metadata(metadata)
    assert decode_metadata(stored, "event at position 1") == metadata
    if not metadata:
        assert stored == EMPTY_METADATA


def test_metadata_keys_must_be_strings() -> None:
    with pytest.raises(ConfigurationError, match="keys must be strings"):
        encode_metadata({1: "a"})  # type: ignore[dict-item]


def test_metadata_that_readers_could_not_parse_is_refused() -> None:
    """Nested more deeply than readers parse: refused on append, not on every later read."""
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ConfigurationError, match="200 levels"):
        encode_metadata({"deep": deep})


def test_a_stored_payload_that_is_not_json_names_the_event() -> None:
    with pytest.raises(EventDecodingError, match="event at position 9 is not valid JSON"):
        decode_payload("{not json", "event at position 9")
