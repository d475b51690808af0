"""What `append` accepts, every reader returns; what no reader could return, append refuses.

The log is immutable, so an event that its readers refuse would stop every replay and
subscription at its position for good. Append refuses such an event with `InvalidEventError`
(a ValueError) and writes nothing; bad text is that error too, never a raw traceback. Each
test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import uuid
from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, JsonValue

from keyvault import MasterKey
from shredstore import (
    ConfigurationError,
    Event,
    EventRegistry,
    EventStore,
    InvalidEventError,
    PersonalData,
    ShredstoreError,
    SubjectId,
)
from tests.shredding.contract import PROPERTY_SETTINGS

MASTER = MasterKey.generate()


class Document(Event, type_name="test.reads_back.Document", register=False):
    customer_id: SubjectId
    body: Any = None
    """Any: pydantic does not limit the depth of what it holds (JsonValue would)."""
    secret: Annotated[Any, PersonalData()] = None
    ratio: float | None = None
    loose: Any = None


class Inner(BaseModel):
    note: Annotated[str, PersonalData()]


class Tagged(Event, type_name="test.reads_back.Tagged", register=False):
    customer_id: SubjectId
    inner: Inner


def store_at(url: str) -> EventStore:
    registry = EventRegistry()
    registry.register(Document)
    registry.register(Tagged)
    return EventStore(url, master_key=MASTER, registry=registry)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [150, 198])
def test_deep_but_readable_values_are_kept(any_url: str, depth: int) -> None:
    """Values nested up to what readers parse are stored, plain or personal, and read back."""
    with store_at(any_url) as store:
        event = Document(customer_id="c1", body=nested(depth), secret=nested(depth - 2))
        store.append("deep", [event])
        assert [r.event for r in store.read_all()] == [event]


@pytest.mark.parametrize(("field", "depth"), [
    ("body", 205), ("body", 254), ("body", 2000), ("secret", 230), ("secret", 2000),
])
def test_values_nested_deeper_than_readers_parse_are_refused(
    any_url: str, field: str, depth: int,
) -> None:
    """About 200 levels is where readers stop parsing; deeper values, plain or personal, are
    refused with a ValueError that says why, and nothing is written."""
    with store_at(any_url) as store:
        with pytest.raises(InvalidEventError, match="deep") as caught:
            store.append("deep", [Document(customer_id="c1", **{field: nested(depth)})])
        assert isinstance(caught.value, ValueError)
        assert store.head().position == 0
        assert list(store.read_all()) == []


@pytest.mark.parametrize("text", ["lone \udc80 surrogate", "\ud800", "x\udfff"])
@pytest.mark.parametrize("field", ["body", "secret"])
def test_text_that_is_not_valid_unicode_is_refused(any_url: str, text: str, field: str) -> None:
    """A lone surrogate in a value is an InvalidEventError, never UnicodeEncodeError."""
    with store_at(any_url) as store:
        with pytest.raises(InvalidEventError, match="not valid Unicode"):
            store.append("text", [Document(customer_id="c1", **{field: text})])
        with pytest.raises(InvalidEventError, match="not valid Unicode"):
            store.append("text", [Tagged(customer_id="c1", inner=Inner(note=text))])
        assert store.head().position == 0


@pytest.mark.parametrize("bad", [
    pytest.param({"stream_id": "s\udc80"}, id="stream id"),
    pytest.param({"customer_id": "c\udc80"}, id="subject id"),
    pytest.param({"metadata": {"note": "m\udc80"}}, id="metadata"),
    pytest.param({"metadata": {"deep": nested(230)}}, id="deep metadata"),
])
def test_bad_ids_and_metadata_are_clear_errors(any_url: str, bad: dict[str, Any]) -> None:
    """Ids and metadata that could not be stored or read back are shredstore errors with a
    message, and nothing is written."""
    with store_at(any_url) as store:
        event = Document(customer_id=bad.get("customer_id", "c1"), body="plain")
        with pytest.raises((ConfigurationError, InvalidEventError)) as caught:
            store.append(bad.get("stream_id", "s"), [event], metadata=bad.get("metadata"))
        assert isinstance(caught.value, ShredstoreError | ValueError)
        assert store.head().position == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_float_json_cannot_hold_is_refused(any_url: str, value: float) -> None:
    """Standard JSON has no NaN or infinity: they would read back as None, so they are
    refused, naming the field (also where no model type limits them)."""
    with store_at(any_url) as store:
        with pytest.raises(InvalidEventError, match="ratio"):
            store.append("f", [Document(customer_id="c1", ratio=value)])
        with pytest.raises(InvalidEventError, match="secret"):
            store.append("f", [Document(customer_id="c1", secret={"x": value})])


def test_a_value_that_reads_back_differently_is_refused(any_url: str) -> None:
    """A tuple under Any would read back as a list: refused, naming the field."""
    with store_at(any_url) as store, pytest.raises(InvalidEventError, match="loose"):
        store.append("t", [Document(customer_id="c1", loose=(1, 2))])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=40,
)


@st.composite
def payloads(draw: st.DrawFn) -> JsonValue:
    """JSON values of many shapes and sizes, some wrapped to nest near readers' limit."""
    value = draw(json_values)
    wrap = draw(st.sampled_from([0, 0, 0, 50, 190, 199, 201, 260]))
    for _ in range(wrap):
        value = [value]
    if draw(st.booleans()):
        value = {"big": draw(st.text(min_size=1, max_size=5)) * draw(st.integers(1, 20_000)),
                 "v": value}
    return value


@PROPERTY_SETTINGS
@given(body=payloads(), secret=payloads())
def test_whatever_append_accepts_reads_back_equal(
    any_url: str, body: JsonValue, secret: JsonValue,
) -> None:
    """For any payload shape and size: append refuses it with InvalidEventError and writes
    nothing, or every reader returns it equal."""
    with store_at(any_url) as store:
        head = store.head().position
        stream = f"p-{uuid.uuid4().hex[:8]}"
        event = Document(customer_id="c1", body=body, secret=secret)
        try:
            store.append(stream, [event])
        except InvalidEventError:
            assert store.head().position == head
            return
        assert [r.event for r in store.read_stream(stream)] == [event]
        assert [r.event for r in store.read_all(after=head)] == [event]
