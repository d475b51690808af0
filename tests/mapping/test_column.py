"""The personal column's codec: the stored bytes are the format (existing databases must keep
reading, authenticators cover them), and decoding refuses anything but well-formed groups."""

from __future__ import annotations

import base64
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shredstore import TamperedError
from shredstore.mapping.column import (
    decode_column,
    encode_column,
    encode_paths,
    encode_redacted_group,
    encode_sealed_group,
    sealed_value,
    stored_paths,
    try_decode_column,
)

keys = st.text(min_size=1, max_size=12)
paths = st.lists(st.lists(st.one_of(keys, st.integers(0, 50)), min_size=1, max_size=4).map(
    lambda parts: (str(parts[0]), *parts[1:])), min_size=1, max_size=5, unique=True)
groups = st.lists(st.one_of(
    st.tuples(keys, paths, st.binary(min_size=1, max_size=200)),
    st.tuples(keys, paths, st.none()),
), max_size=4)


def as_dicts(spec: list[tuple[str, list[tuple[Any, ...]], bytes | None]]) -> list[dict[str, Any]]:
    """The groups as the dicts the format describes (`sealed` in base64, or `redacted`)."""
    return [{"subject": subject, "paths": [list(path) for path in where],
             **({"sealed": base64.b64encode(sealed).decode()} if sealed is not None
                else {"redacted": True})}
            for subject, where, sealed in spec]


def encoded(spec: list[tuple[str, list[tuple[Any, ...]], bytes | None]]) -> str | None:
    return encode_column([
        encode_sealed_group(subject, encode_paths(tuple(where)), sealed) if sealed is not None
        else encode_redacted_group(subject, encode_paths(tuple(where)))
        for subject, where, sealed in spec])


def test_a_sealed_group_is_stored_as_documented() -> None:
    """The bytes of docs/crypto-shredding.md's stored record, without spaces."""
    column = encode_column([
        encode_sealed_group("42", encode_paths((("name",), ("email",))), b"\x01\x02\x03"),
        encode_sealed_group("7", encode_paths((("lines", 0, "recipient_name"),)), b"\xff"),
    ])
    assert column == ('[{"subject":"42","paths":[["name"],["email"]],"sealed":"AQID"},'
                      '{"subject":"7","paths":[["lines",0,"recipient_name"]],"sealed":"/w=="}]')


def test_a_redacted_group_is_stored_as_snapshots_always_stored_it() -> None:
    """A redacted group names its subject and paths and holds no value."""
    column = encode_column([encode_redacted_group("42", encode_paths((("name",),)))])
    assert column == '[{"subject":"42","paths":[["name"]],"redacted":true}]'


def test_no_groups_is_no_personal_column() -> None:
    """A record without personal data stores NULL, never an empty list."""
    assert encode_column([]) is None
    assert try_decode_column(None) == []


@settings(max_examples=200, deadline=None)
@given(spec=groups)
def test_encoding_from_parts_writes_the_bytes_of_the_groups_as_json(
    spec: list[tuple[str, list[tuple[Any, ...]], bytes | None]],
) -> None:
    """The append's template writes exactly what ``to_json`` of the groups writes (any
    subject text, keys and indexes), and decoding returns those groups."""
    column = encoded(spec)
    if not spec:
        assert column is None
        return
    assert column == pydantic_core.to_json(as_dicts(spec)).decode()
    assert decode_column(column) == as_dicts(spec)


@settings(max_examples=100, deadline=None)
@given(spec=groups.filter(bool))
def test_a_decoded_group_gives_back_its_paths_and_sealed_value(
    spec: list[tuple[str, list[tuple[Any, ...]], bytes | None]],
) -> None:
    """`stored_paths` re-encodes a decoded group's paths to the bytes they were sealed with;
    `sealed_value` returns the raw sealed bytes."""
    column = encoded(spec)
    assert column is not None
    for group, (_, where, sealed) in zip(decode_column(column), spec, strict=True):
        assert stored_paths(group) == encode_paths(tuple(where))
        if sealed is not None:
            assert sealed_value(group) == sealed


@pytest.mark.parametrize("column", [
    pytest.param("not json", id="not-json"),
    pytest.param("null", id="json-null"),
    pytest.param("7", id="json-number"),
    pytest.param('"text"', id="json-string"),
    pytest.param('{"subject": "c-1"}', id="an-object"),
    pytest.param("[7]", id="list-of-numbers"),
    pytest.param('[{"paths": [["name"]], "sealed": "QUJD"}]', id="no-subject"),
    pytest.param('[{"subject": "", "paths": [["name"]], "sealed": "QUJD"}]', id="empty-subject"),
    pytest.param('[{"subject": 7, "paths": [["name"]], "sealed": "QUJD"}]',
                 id="subject-not-a-string"),
    pytest.param('[{"subject": "c-1", "sealed": "QUJD"}]', id="no-paths"),
    pytest.param('[{"subject": "c-1", "paths": "name", "sealed": "QUJD"}]',
                 id="paths-not-a-list"),
    pytest.param('[{"subject": "c-1", "paths": ["name"], "sealed": "QUJD"}]',
                 id="path-not-a-list"),
    pytest.param('[{"subject": "c-1", "paths": [[]], "sealed": "QUJD"}]', id="empty-path"),
    pytest.param('[{"subject": "c-1", "paths": [["name"]]}]', id="no-sealed"),
    pytest.param('[{"subject": "c-1", "paths": [["name"]], "sealed": 7}]',
                 id="sealed-not-a-string"),
    pytest.param('[{"subject": "c-1", "paths": [["name"]], "redacted": false}]',
                 id="redacted-false"),
    pytest.param('[{"subject": "c-1", "paths": [["a"]], "sealed": "QUJD"}, 7]',
                 id="one-good-group-one-bad"),
])
def test_a_malformed_column_is_tampered(column: str) -> None:
    """Anything but a list of well-formed groups is `TamperedError` naming the record, and
    `try_decode_column` says None (a reader that reports rather than stops)."""
    with pytest.raises(TamperedError, match="event at position 3: its personal data is malformed"):
        decode_column(column, "event at position 3")
    assert try_decode_column(column) is None


@pytest.mark.parametrize("sealed", ["*", "ÄÖÜ=", "QUJ"])
def test_a_sealed_value_that_is_not_base64_is_tampered(sealed: str) -> None:
    """Sealed values are strict base64: anything else is TamperedError, not garbage bytes."""
    (group,) = decode_column(
        f'[{{"subject": "c-1", "paths": [["name"]], "sealed": "{sealed}"}}]')
    with pytest.raises(TamperedError):
        sealed_value(group)


def test_paths_are_encoded_once_per_layout() -> None:
    """The append's fast path: a field layout's encoded paths come from a cache."""
    layout = (("lines", 0, "recipient"), ("lines", 1, "recipient"))
    assert encode_paths(layout) is encode_paths(layout)
