"""Every personal value is sealed, whatever the model's shape, or the shape is refused.

The measured escapes of issue 14 (recursive models, the second item of a tuple, dataclasses,
aliases, computed fields, models under Any or SerializeAsAny) each have a test, and a property
test builds random nested shapes (models, lists, tuples, dicts, dataclasses, optionals, unions,
recursion, aliases) and scans every stored row for the personal values' bytes. Each runs on
SQLite and PostgreSQL. Personal values are random and distinctive; assertions name them by
label, never print them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, computed_field, create_model

from keyvault import MasterKey
from shredstore import (
    REDACTED,
    ConfigurationError,
    Event,
    EventRegistry,
    EventStore,
    InvalidEventError,
    PersonalData,
    SubjectId,
)
from tests.shredding.contract import PROPERTY_SETTINGS, found_in, table_dumps

Personal = Annotated[str, PersonalData()]


def secret(label: str) -> str:
    """A distinctive made-up personal value."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


class Node(BaseModel):
    label: Personal
    children: list[Node] = []


class Contact(BaseModel):
    email: Personal


class Plain(BaseModel):
    count: int


@dataclasses.dataclass(frozen=True)
class StdAddress:
    street: Personal


@pydantic.dataclasses.dataclass(frozen=True)
class PydanticAddress:
    street: Personal


class AliasedContact(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)
    email: Personal = Field(alias="e-mail")


class Shapes(Event, type_name="test.shapes.Shapes", register=False):
    customer_id: SubjectId
    root: Node
    pair: tuple[Plain, Contact]
    std: StdAddress
    pyd: PydanticAddress
    aliased: AliasedContact
    by_key: dict[str, Contact]
    maybe: Contact | None = None


class Carried(Event, type_name="test.shapes.Carried", register=False):
    customer_id: SubjectId
    anything: Any = None
    as_any: SerializeAsAny[BaseModel] | None = None


def registry(*classes: type[Event]) -> EventRegistry:
    found = EventRegistry()
    for cls in classes:
        found.register(cls)
    return found


def measured_shapes(customer: str) -> tuple[Shapes, dict[str, str]]:
    """The shapes measured in issue 14, each holding a personal value of `customer`."""
    values = {label: secret(label) for label in (
        "root", "child", "grandchild", "tuple item", "stdlib dataclass", "pydantic dataclass",
        "aliased", "dict value", "optional")}
    event = Shapes(
        customer_id=customer,
        root=Node(label=values["root"], children=[
            Node(label=values["child"], children=[Node(label=values["grandchild"])])]),
        pair=(Plain(count=1), Contact(email=values["tuple item"])),
        std=StdAddress(street=values["stdlib dataclass"]),
        pyd=PydanticAddress(street=values["pydantic dataclass"]),
        aliased=AliasedContact(email=values["aliased"]),
        by_key={"home": Contact(email=values["dict value"])},
        maybe=Contact(email=values["optional"]),
    )
    return event, values


def test_every_measured_shape_is_sealed_and_redacted_after_erasure(any_url: str) -> None:
    """Recursive models, tuple items, dataclasses, aliases, dict values: nothing is stored in
    the clear, the event reads back as written, and after erasure every one reads REDACTED."""
    event, values = measured_shapes("cust-shapes")
    with EventStore(any_url, master_key=MasterKey.generate(),
                    registry=registry(Shapes)) as store:
        store.append("shapes-1", [event])
        assert found_in(table_dumps(any_url), values) == []
        (record,) = store.read_stream("shapes-1")
        assert record.event == event
        assert record.personal_fields == {
            "root.label", "root.children.0.label", "root.children.0.children.0.label",
            "pair.1.email", "std.street", "pyd.street", "aliased.e-mail", "by_key.home.email",
            "maybe.email"}
        receipt = store.erase_subject("cust-shapes")
        assert receipt.ok
        (record,) = store.read_stream("shapes-1")
        redacted: Any = record.event
        assert redacted.root.label is REDACTED
        assert redacted.root.children[0].children[0].label is REDACTED
        assert redacted.pair[1].email is REDACTED
        assert redacted.std.street is REDACTED
        assert redacted.pyd.street is REDACTED
        assert redacted.aliased.email is REDACTED
        assert redacted.by_key["home"].email is REDACTED
        assert record.redacted_fields == record.personal_fields


def test_a_model_under_any_or_serialize_as_any_is_refused_with_its_path(any_url: str) -> None:
    """shredstore cannot tell the subject of personal data held under Any: the append is
    refused, names the path, and writes nothing."""
    with EventStore(any_url, master_key=MasterKey.generate(),
                    registry=registry(Carried)) as store:
        value = secret("under any")
        with pytest.raises(InvalidEventError, match=r"anything\.email.*own type") as caught:
            store.append("c", [Carried(customer_id="c1", anything=Contact(email=value))])
        with pytest.raises(InvalidEventError, match=r"as_any\.email"):
            store.append("c", [Carried(customer_id="c1", as_any=Contact(email=value))])
        assert value not in str(caught.value)
        assert store.head().position == 0
        assert found_in(table_dumps(any_url), {"under any": value}) == []
        store.append("c", [Carried(customer_id="c1", anything={"plain": [1, 2]})])
        assert next(r.event for r in store.read_stream("c")).anything == {"plain": [1, 2]}


def _computed() -> type:
    class WithComputed(Event, register=False):
        customer_id: SubjectId
        name: Personal

        @computed_field  # type: ignore[prop-decorator]
        @property
        def shout(self) -> str:
            return self.name.upper()

    return WithComputed


def _nested_computed() -> type:
    class Inner(BaseModel):
        name: Personal

        @computed_field  # type: ignore[prop-decorator]
        @property
        def initials(self) -> str:
            return self.name[:2]

    class Outer(Event, register=False):
        customer_id: SubjectId
        inner: Inner

    return Outer


def _field_serializer() -> type:
    class WithSerializer(Event, register=False):
        customer_id: SubjectId
        name: Personal
        note: str = ""

        @pydantic.field_serializer("note")
        def _note(self, note: str) -> str:
            return f"{note} {self.name}"

    return WithSerializer


def _model_serializer() -> type:
    class WithModelSerializer(Event, register=False):
        customer_id: SubjectId
        name: Personal

        @pydantic.model_serializer
        def _all(self) -> dict[str, Any]:
            return {"name": self.name}

    return WithModelSerializer


def _serializer_after_personal_data() -> type:
    class Shouting(Event, register=False):
        customer_id: SubjectId
        name: Annotated[str, PersonalData(), pydantic.PlainSerializer(str.upper)]

    return Shouting


def _serializer_before_personal_data() -> type:
    class Lowered(Event, register=False):
        customer_id: SubjectId
        email: Annotated[str, pydantic.PlainSerializer(str.lower), PersonalData()]

    return Lowered


def _personal_inside_list() -> type:
    class Listed(Event, register=False):
        customer_id: SubjectId
        names: list[Personal]

    return Listed


@pytest.mark.parametrize("declare", [
    pytest.param(_computed, id="computed field"),
    pytest.param(_field_serializer, id="field serializer"),
    pytest.param(_model_serializer, id="model serializer"),
    pytest.param(_serializer_after_personal_data, id="serializer after PersonalData"),
    pytest.param(_serializer_before_personal_data, id="serializer before PersonalData"),
    pytest.param(_personal_inside_list, id="PersonalData on list items"),
    pytest.param(_nested_computed, id="computed field on a nested model"),
])
def test_shapes_that_could_write_personal_data_unsealed_are_refused_when_defined(
    declare: Callable[[], type],
) -> None:
    """A computed field or custom serializer on a model with personal data, or PersonalData on
    part of a type, fails when the class is defined, naming the field and what to do."""
    with pytest.raises(ConfigurationError, match=r"\w+\.\w+: .*(property|convert the value|"
                                                 r"whole field)"):
        declare()


def test_a_nested_model_with_its_own_subject_is_sealed_for_that_subject(any_url: str) -> None:
    """A recursive model whose nodes name their own subjects: each label is redacted exactly
    when its own subject is erased."""

    class Person(BaseModel):
        person_id: SubjectId
        name: Personal
        friends: list[Person] = []

    class Circle(Event, type_name="test.shapes.Circle", register=False):
        owner_id: SubjectId
        title: Personal
        members: list[Person]

    with EventStore(any_url, master_key=MasterKey.generate(),
                    registry=registry(Circle)) as store:
        event = Circle(owner_id="o1", title=secret("title"), members=[
            Person(person_id="p1", name=secret("p1"),
                   friends=[Person(person_id="p2", name=secret("p2"))])])
        store.append("circle", [event])
        store.erase_subject("p2")
        (record,) = store.read_stream("circle")
        read: Any = record.event
        assert read.title == event.title
        assert read.members[0].name == event.members[0].name
        assert read.members[0].friends[0].name is REDACTED
        assert record.redacted_fields == {"members.0.friends.0.name"}
        assert [r.stream_id for r in store.read_subject("p2")] == ["circle", "$erasures"]


# The property: random nested shapes.

@dataclasses.dataclass
class Shape:
    """A random type with personal data somewhere inside, and how to make a value of it."""

    annotation: Any
    make: Callable[[st.DataObject, list[str]], Any]
    """Draws a value; appends each personal value it puts in to the list."""


_counter = iter(range(10**9))
MASTER = MasterKey.generate()
"""One master key for every example of a property test (they share the test's database)."""


def _name(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


@st.composite
def shapes(draw: st.DrawFn, depth: int = 0) -> Shape:  # noqa: PLR0911 - a return per kind
    """A model (pydantic, dataclass, aliased or recursive) or a container of shapes."""
    kinds = ["model", "dataclass", "pydantic dataclass", "recursive"]
    if depth < 2:
        kinds += ["list", "tuple", "dict", "optional", "union"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("model", "dataclass", "pydantic dataclass"):
        return _model_shape(draw, kind, depth)
    if kind == "recursive":
        return _recursive_shape()
    inner = draw(shapes(depth + 1))
    if kind == "list":
        return Shape(list[inner.annotation], lambda data, found: [
            inner.make(data, found) for _ in range(data.draw(st.integers(0, 2)))])
    if kind == "tuple":
        return Shape(tuple[int, inner.annotation], lambda data, found: (
            data.draw(st.integers(0, 9)), inner.make(data, found)))
    if kind == "dict":
        return Shape(dict[str, inner.annotation], lambda data, found: {
            f"k{i}": inner.make(data, found) for i in range(data.draw(st.integers(0, 2)))})
    if kind == "optional":
        return Shape(inner.annotation | None, lambda data, found: (
            inner.make(data, found) if data.draw(st.booleans()) else None))
    other = _model_shape(draw, "model", depth)
    return Shape(inner.annotation | other.annotation, lambda data, found: (
        inner.make(data, found) if data.draw(st.booleans()) else other.make(data, found)))


def _model_shape(draw: st.DrawFn, kind: str, depth: int) -> Shape:
    name = _name("M")
    aliased = kind == "model" and draw(st.booleans())
    personal_names = [_name("p") for _ in range(draw(st.integers(1, 2)))]
    plain_name = _name("n")
    child = draw(shapes(depth + 1)) if depth < 2 and draw(st.booleans()) else None
    child_name = _name("c")
    fields: dict[str, Any] = {}
    for field in personal_names:
        fields[field] = (Personal, Field(alias=f"{field}-alias") if aliased else ...)
    fields[plain_name] = (int, ...)
    if child is not None:
        fields[child_name] = (child.annotation, ...)
    if kind == "model":
        config = ConfigDict(serialize_by_alias=True, validate_by_name=True, frozen=True)
        cls: Any = create_model(name, __config__=config, **fields)
    else:
        made = dataclasses.make_dataclass(
            name, [(field, annotation) for field, (annotation, _) in fields.items()],
            frozen=True)
        cls = (pydantic.dataclasses.dataclass(made, frozen=True) if kind == "pydantic dataclass"
               else made)

    def make(data: st.DataObject, found: list[str]) -> Any:
        values: dict[str, Any] = {}
        for field in personal_names:
            values[field] = secret(field)
            found.append(values[field])
        values[plain_name] = data.draw(st.integers(0, 99))
        if child is not None:
            values[child_name] = child.make(data, found)
        return cls(**values)

    return Shape(cls, make)


def _recursive_shape() -> Shape:
    def make(data: st.DataObject, found: list[str], depth: int = 0) -> Node:
        label = secret("node")
        found.append(label)
        width = data.draw(st.integers(0, 2)) if depth < 3 else 0
        return Node(label=label, children=[make(data, found, depth + 1) for _ in range(width)])

    return Shape(Node, make)


@PROPERTY_SETTINGS
@given(data=st.data(), shape=shapes())
def test_no_personal_value_of_a_random_shape_is_stored_in_the_clear(
    any_url: str, data: st.DataObject, shape: Shape,
) -> None:
    """Any nesting of models, dataclasses, lists, tuples, dicts, optionals, unions, recursion
    and aliases: every personal value is sealed (no stored row holds its bytes), the event
    reads back as written, and after erasure none of its values can be read."""
    cls = create_model("RandomShape", __base__=Event, __cls_kwargs__={
        "type_name": f"test.shapes.{uuid.uuid4().hex}", "register": False},
        customer_id=(SubjectId, ...), payload=(shape.annotation, ...))
    found: list[str] = []
    subject = f"cust-{uuid.uuid4().hex[:8]}"
    event = cls(customer_id=subject, payload=shape.make(data, found))
    with EventStore(any_url, master_key=MASTER, registry=registry(cls)) as store:
        stream = f"shape-{uuid.uuid4().hex[:8]}"
        store.append(stream, [event])
        labelled = {f"value {i}": value for i, value in enumerate(found)}
        assert found_in(table_dumps(any_url), labelled) == []
        (record,) = store.read_stream(stream)
        assert record.event == event
        assert len(record.personal_fields) == len(found)
        store.erase_subject(subject)
        (record,) = store.read_stream(stream)
        assert record.redacted_fields == record.personal_fields
        shown = repr(record.event)
        assert not [label for label, value in labelled.items() if value in shown]
