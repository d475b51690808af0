"""Declaring personal data, and finding where it is in a model's type.

``customer_id: SubjectId`` marks the field that names a data subject;
``name: Annotated[str, PersonalData()]`` marks a personal field. A personal field's subject is
the one named by ``PersonalData(subject="field")``, or, without it, the only subject field of
the nearest model (the field's own, then the enclosing ones) that has any. A declaration that
cannot be resolved fails when the class is defined, and so does a shape in which shredstore
could not see every personal value it writes (computed fields or custom serializers on a model
that holds personal data, `PersonalData` on a part of a field's type).

Finding the values is pydantic's own job: `PersonalData` attaches a serializer, so wherever
pydantic writes a personal value (nested models, dataclasses, tuples, dicts, recursive models,
aliases, even under ``Any``), the mapping step's dump receives it and stores a placeholder in
its place (see `shredstore.mapping.split`). The `PersonalPlan` made here says where those
values are expected and whose subject each belongs to.

A personal field also accepts `REDACTED`: after its subject is erased, that is what it reads as
(or the declaration's ``replacement``). The event is still an instance of its class.
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import dataclasses
import types
import typing
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Union

from pydantic import BaseModel, PlainSerializer, TypeAdapter, ValidationError, WrapSerializer
from pydantic.fields import FieldInfo
from pydantic.functional_serializers import SerializeAsAny
from pydantic_core import core_schema

from shredstore.errors import ConfigurationError

__all__ = [
    "REDACTED",
    "PersonalData",
    "PersonalPlan",
    "Redacted",
    "SubjectId",
    "plan_of",
]

class Redacted:
    """The type of `REDACTED`: the value of a personal field whose subject was erased."""

    _instance: Redacted | None = None

    def __new__(cls) -> Redacted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REDACTED"

    def __str__(self) -> str:
        return "[redacted]"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "REDACTED"


REDACTED: Final[Any] = Redacted()
"""What a personal field of an erased subject reads as, where no replacement is declared.

Typed `Any`: it stands in a field of any declared type (``name: str`` reads as REDACTED once
its subject is erased), so ``rec.event.name is REDACTED`` type-checks for every field."""

_UNSET: Any = object()


class _SubjectMarker:
    """Annotation metadata of a subject-id field."""

    def __repr__(self) -> str:
        return "SubjectId"


SubjectId = Annotated[str, _SubjectMarker()]
"""A field naming the data subject of personal data (a customer id, a patient id)."""


@dataclass(frozen=True, slots=True)
class PersonalData:
    """Marks a personal field: sealed with its subject's key, redacted when the subject is erased.

    `subject` names the subject field (required where several are in scope); `replacement` is
    what the field reads as after erasure (default: `REDACTED`).
    """

    subject: str | None = None
    replacement: Any = _UNSET

    @property
    def has_replacement(self) -> bool:
        return self.replacement is not _UNSET

    def __get_pydantic_core_schema__(
        self, source: Any, handler: Any
    ) -> core_schema.CoreSchema:
        inner = handler(source)
        redacted: core_schema.CoreSchema = core_schema.is_instance_schema(Redacted)
        if self.has_replacement:
            replacement = self.replacement
            redacted = core_schema.no_info_after_validator_function(
                lambda _: copy.deepcopy(replacement), redacted)
        return core_schema.union_schema(
            [redacted, inner],
            mode="left_to_right",
            serialization=core_schema.wrap_serializer_function_ser_schema(
                _serialize, info_arg=True),
        )

    def __repr__(self) -> str:
        parts = [f"subject={self.subject!r}"] if self.subject else []
        if self.has_replacement:
            parts.append(f"replacement={self.replacement!r}")
        return f"PersonalData({', '.join(parts)})"


def _serialize(value: Any, handler: core_schema.SerializerFunctionWrapHandler,
               info: core_schema.SerializationInfo) -> Any:
    # A dump that seals (shredstore.mapping.split) passes a collector as the context: the
    # value goes to it, and the dump holds a placeholder instead.
    collect = getattr(info.context, "collect_personal", None)
    if collect is not None:
        return collect(value, handler)
    return None if value is REDACTED else handler(value)


# The plan: where personal values and subject ids are, by type.


class Node:
    """Where personal data may be inside a value of some type (see the subclasses)."""

    __slots__ = ()


@dataclass(eq=False, slots=True)
class ModelNode(Node):
    """A model or dataclass: its subject fields, personal fields and nested values."""

    cls: type
    subjects: tuple[str, ...] = ()
    """Attribute names of its SubjectId fields."""
    subject_keys: tuple[tuple[str, str], ...] = ()
    """(attribute, stored key) of its SubjectId fields."""
    personal: tuple[PersonalRule, ...] = ()
    nested: tuple[tuple[str, str, Node], ...] = ()
    """(attribute, stored key, node) of fields that hold models with personal data or subjects."""
    relevant: bool = True
    """Whether it or anything inside it has personal data or subject ids (else not walked)."""


@dataclass(frozen=True, slots=True)
class PersonalRule:
    """A personal field: its attribute, its stored key, and how its subject is found."""

    attribute: str
    key: str
    declaration: PersonalData
    optional: bool


@dataclass(eq=False, slots=True)
class ItemsNode(Node):
    """A list, set, sequence or ``tuple[X, ...]``: every item is an `item`."""

    item: Node


@dataclass(eq=False, slots=True)
class TupleNode(Node):
    """A fixed tuple: item i is `items[i]` (None: nothing to look for)."""

    items: tuple[Node | None, ...]


@dataclass(eq=False, slots=True)
class ValuesNode(Node):
    """A dict or mapping: every value is a `value`."""

    value: Node


@dataclass(eq=False, slots=True)
class UnionNode(Node):
    """One of several types, told apart by the instance's class."""

    variants: tuple[tuple[type | tuple[type, ...], Node], ...]


@dataclass(frozen=True, slots=True)
class PersonalPlan:
    """Where a top-level model's personal data and subject ids are, found once per class."""

    root: ModelNode
    has_personal_data: bool
    has_subjects: bool
    has_unions: bool = False
    """Whether a union of types that hold personal data or subject ids is inside: then the
    split walks the instance beside its dump, to tell which type each value has."""
    opaque: tuple[str, ...] = field(default=())
    """Fields typed ``Any``/``object``/``SerializeAsAny`` (dotted): values there are only
    known when written, so every dump of the class is checked for personal data in them."""

    @property
    def needs_split(self) -> bool:
        """Whether a dump must look for personal values and subject ids at all."""
        return self.has_personal_data or self.has_subjects or bool(self.opaque)


def dotted(path: Sequence[str | int]) -> str:
    """A field path as people name it: ``lines.0.name``."""
    return ".".join(str(part) for part in path)


_PLANS: weakref.WeakKeyDictionary[type, PersonalPlan] = weakref.WeakKeyDictionary()


def plan_of(cls: type[BaseModel]) -> PersonalPlan:
    """The personal-data plan of a top-level model class (an event or an aggregate).

    A plan is only ever made from a fully built model: an incomplete one (forward references
    not yet resolvable) has no field metadata to find personal data in, and a plan made from
    it would store personal data in the clear.
    """
    plan = _PLANS.get(cls)
    if plan is None:
        _complete(cls)
        builder = _Builder()
        root = builder.model(cls)
        builder.finish()
        _check_subjects(root, cls.__qualname__)
        plan = PersonalPlan(root, builder.personal_below(root), builder.subjects_below(root),
                            builder.unions_below(root), tuple(builder.opaque))
        _PLANS[cls] = plan
    return plan


def is_complete(cls: type[BaseModel]) -> bool:
    """Whether pydantic has finished building `cls` (all its annotations resolved)."""
    return bool(getattr(cls, "__pydantic_complete__", False))


def _complete(cls: type) -> None:
    if (not isinstance(cls, type) or not issubclass(cls, BaseModel) or cls is BaseModel
            or is_complete(cls)):
        return
    try:
        cls.model_rebuild()
    except Exception as error:  # noqa: BLE001 - pydantic raises several kinds here
        raise ConfigurationError(
            f"{cls.__qualname__} is not fully defined ({type(error).__name__}: {error}); "
            f"define the types it names, then call {cls.__qualname__}.model_rebuild()"
        ) from None
    if not is_complete(cls):
        raise ConfigurationError(
            f"{cls.__qualname__} is not fully defined; define the types it names, then call "
            f"{cls.__qualname__}.model_rebuild()"
        )


class _Field(typing.NamedTuple):
    attribute: str
    key: str
    annotation: Any
    metadata: list[Any]


def _fields(cls: type) -> list[_Field]:
    """A model's or dataclass's fields, with the keys a dump ``by_alias=True`` writes."""
    if issubclass(cls, BaseModel):
        infos: dict[str, FieldInfo] = cls.model_fields
    elif hasattr(cls, "__pydantic_fields__"):  # a pydantic dataclass
        infos = cls.__pydantic_fields__
    else:  # a standard dataclass: pydantic reads the same annotations
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception as error:  # noqa: BLE001 - any unresolvable annotation
            raise ConfigurationError(
                f"{cls.__qualname__}: its annotations cannot be resolved "
                f"({type(error).__name__})") from None
        infos = {f.name: FieldInfo.from_annotation(hints[f.name])
                 for f in dataclasses.fields(typing.cast(Any, cls)) if f.name in hints}
    return [_Field(name, info.serialization_alias or info.alias or name, info.annotation,
                   list(info.metadata))
            for name, info in infos.items()]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and (
        issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation))


_AS_ANY = typing.cast(type, SerializeAsAny)
"""``SerializeAsAny[T]`` is ``Annotated[T, SerializeAsAny()]``."""
_ABC = collections.abc
_ITEMS: set[Any] = {list, set, frozenset, tuple, collections.deque, _ABC.Sequence,
                    _ABC.MutableSequence, _ABC.Set, _ABC.MutableSet, _ABC.Collection,
                    _ABC.Iterable}
"""Origins whose values pydantic writes as JSON lists (typing's aliases have these origins)."""
_MAPPINGS: set[Any] = {dict, collections.OrderedDict, collections.defaultdict, _ABC.Mapping,
                       _ABC.MutableMapping}


class _Builder:
    """Builds the nodes of one top-level class; a model met again reuses its node (recursion)."""

    def __init__(self) -> None:
        self.models: dict[type, ModelNode] = {}
        self.opaque: list[str] = []

    def model(self, cls: type, where: str = "") -> ModelNode:
        known = self.models.get(cls)
        if known is not None:
            return known
        _complete(cls)
        node = ModelNode(cls)
        self.models[cls] = node
        subjects: list[tuple[str, str]] = []
        personal: list[PersonalRule] = []
        nested: list[tuple[str, str, Node]] = []
        for item in _fields(cls):
            here = f"{cls.__qualname__}.{item.attribute}"
            is_subject = any(isinstance(m, _SubjectMarker) for m in item.metadata)
            if is_subject:
                subjects.append((item.attribute, item.key))
            declaration, optional = _declaration_of(here, item)
            if declaration is not None:
                if is_subject:
                    raise ConfigurationError(f"{here} cannot be both a SubjectId and PersonalData")
                _check_replacement(here, item.annotation, declaration)
                personal.append(PersonalRule(item.attribute, item.key, declaration, optional))
                continue
            if any(isinstance(m, _AS_ANY) for m in item.metadata):
                self.opaque.append(here)
            child = self.node(item.annotation, here)
            if child is not None:
                nested.append((item.attribute, item.key, child))
        node.subjects = tuple(attribute for attribute, _ in subjects)
        node.subject_keys = tuple(subjects)
        node.personal = tuple(personal)
        node.nested = tuple(nested)
        return node

    def node(self, annotation: Any, where: str) -> Node | None:  # noqa: PLR0911, PLR0912
        """The node for values of `annotation`, or None where no model can be inside."""
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Annotated:
            if any(isinstance(m, _AS_ANY) for m in annotation.__metadata__):
                self.opaque.append(where)
            if any(isinstance(m, PersonalData) for m in annotation.__metadata__):
                raise _partial(where)
            return self.node(args[0], where)
        if annotation is Any or annotation is object:
            self.opaque.append(where)
            return None
        if _is_model(annotation):
            return self.model(annotation, where)
        if origin in (Union, types.UnionType):
            variants = []
            for arg in args:
                child = self.node(arg, where)
                if child is not None:
                    variants.append((_runtime_class(arg), child))
            return UnionNode(tuple(variants)) if variants else None
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = tuple(self.node(arg, f"{where}[{index}]") for index, arg in enumerate(args))
            return TupleNode(items) if any(item is not None for item in items) else None
        if origin in _ITEMS and args:
            child = self.node(args[0], f"{where}[]")
            return ItemsNode(child) if child is not None else None
        if origin in _MAPPINGS and len(args) == 2:
            if self._holds_models(args[0], where):
                raise ConfigurationError(
                    f"{where}: models as dict keys cannot hold personal data or subject ids; "
                    "use a list of models")
            child = self.node(args[1], f"{where}[]")
            return ValuesNode(child) if child is not None else None
        if origin is not None and not isinstance(origin, type(typing.Literal)):
            for arg in args:
                if arg is not Ellipsis and self._holds_models(arg, where):
                    raise ConfigurationError(
                        f"{where}: personal data or subject ids inside "
                        f"{getattr(origin, '__name__', origin)}[...] are not supported; use a "
                        "model, a list, tuple or dict of models, or mark the whole field "
                        "PersonalData")
        return None

    def _holds_models(self, annotation: Any, where: str) -> bool:
        probe = _Builder()
        probe.models = dict(self.models)
        try:
            child = probe.node(annotation, where)
        except ConfigurationError:
            return True
        if child is None:
            return False
        probe.finish()
        return probe.relevant(child)

    def finish(self) -> None:
        """Mark the models with nothing to look for inside, and check what must be refused."""
        for node in self.models.values():
            node.relevant = self._reaches(node, lambda m: bool(m.personal or m.subjects))
        for node in self.models.values():
            if self._reaches(node, lambda m: bool(m.personal)):
                _refuse_hidden_serialization(node.cls)

    def relevant(self, node: Node) -> bool:
        return any(m.relevant for m in _models_in(node, set()))

    def personal_below(self, node: ModelNode) -> bool:
        return self._reaches(node, lambda m: bool(m.personal))

    def subjects_below(self, node: ModelNode) -> bool:
        return self._reaches(node, lambda m: bool(m.subjects))

    def unions_below(self, node: ModelNode) -> bool:
        return any(isinstance(child, UnionNode) for m in _models_in(node, set())
                   for child in _containers(m))

    @staticmethod
    def _reaches(node: ModelNode, test: typing.Callable[[ModelNode], bool]) -> bool:
        return any(test(m) for m in _models_in(node, set()))


def _models_in(node: Node | None, seen: set[int]) -> Iterator[ModelNode]:
    """Every model node reachable from `node` (each once)."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, ModelNode):
        yield node
        for _, _, child in node.nested:
            yield from _models_in(child, seen)
    elif isinstance(node, ItemsNode):
        yield from _models_in(node.item, seen)
    elif isinstance(node, ValuesNode):
        yield from _models_in(node.value, seen)
    elif isinstance(node, TupleNode):
        for item in node.items:
            yield from _models_in(item, seen)
    elif isinstance(node, UnionNode):
        for _, variant in node.variants:
            yield from _models_in(variant, seen)


def _containers(model: ModelNode) -> Iterator[Node]:
    """The nodes directly below a model's fields, through containers (not into models)."""
    stack: list[Node | None] = [child for _, _, child in model.nested]
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, ModelNode):
            continue
        yield node
        if isinstance(node, ItemsNode):
            stack.append(node.item)
        elif isinstance(node, ValuesNode):
            stack.append(node.value)
        elif isinstance(node, TupleNode):
            stack.extend(node.items)
        elif isinstance(node, UnionNode):
            stack.extend(variant for _, variant in node.variants)


def _runtime_class(annotation: Any) -> type | tuple[type, ...]:
    """The class(es) an instance of `annotation` has (to tell union variants apart)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in _MAPPINGS:
        return _ABC.Mapping
    if origin in _ITEMS:
        return (list, tuple, set, frozenset, collections.deque)
    if origin is not None:
        annotation = origin
    if not isinstance(annotation, type):
        raise ConfigurationError(f"cannot tell values of {annotation!r} apart in a union")
    return annotation


def _declaration_of(where: str, item: _Field) -> tuple[PersonalData | None, bool]:
    """A field's PersonalData and whether the field is optional (``Annotated[...] | None``).

    PersonalData anywhere else inside a type (list items, dict values, a union of several
    types) is refused: silently ignored, it would let personal data through in the clear. A
    serializer beside PersonalData would replace its sealing (or be ignored), so it is
    refused too.
    """
    found = [m for m in item.metadata if isinstance(m, PersonalData)]
    if found:
        if any(isinstance(m, PlainSerializer | WrapSerializer) for m in item.metadata):
            raise ConfigurationError(
                f"{where}: a serializer on a personal field would either write the value "
                "unsealed or be ignored; convert the value before it reaches the model")
        return found[0], False
    annotation = item.annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(others) == 1 and typing.get_origin(others[0]) is Annotated:
            inside = [m for m in others[0].__metadata__ if isinstance(m, PersonalData)]
            if inside:
                return inside[0], True
    if _mentions_personal_data(annotation):
        raise _partial(where)
    return None, False


def _partial(where: str) -> ConfigurationError:
    return ConfigurationError(
        f"{where}: PersonalData must mark the whole field (optionally as "
        "`Annotated[T, PersonalData()] | None`), not a part of its type; write e.g. "
        "`Annotated[list[str], PersonalData()]`"
    )


def _mentions_personal_data(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated and any(
        isinstance(m, PersonalData) for m in annotation.__metadata__
    ):
        return True
    return any(_mentions_personal_data(arg) for arg in typing.get_args(annotation)
               if arg is not Ellipsis)


def _refuse_hidden_serialization(cls: type) -> None:
    """A model holding personal data may not write values shredstore does not see."""
    decorators = getattr(cls, "__pydantic_decorators__", None)
    if decorators is None:
        return
    for kind, found in (("computed field", decorators.computed_fields),
                        ("field serializer", decorators.field_serializers),
                        ("model serializer", decorators.model_serializers)):
        for name in found:
            raise ConfigurationError(
                f"{cls.__qualname__}.{name}: a {kind} on a model that holds personal data "
                "could write personal values unsealed; use a plain @property, which is not "
                "stored")


def _check_subjects(root: ModelNode, name: str) -> None:
    """Every personal field finds its subject, wherever its model is nested (also recursively).

    What a field's subject resolves to depends only on the model and the subject fields in
    scope around it, so each (model, scope) pair is checked once, and recursion ends.
    """
    seen: set[tuple[int, tuple[str, ...], frozenset[str]]] = set()

    def visit(node: Node | None, scopes: tuple[tuple[str, ...], ...]) -> None:
        if node is None:
            return
        if isinstance(node, ModelNode):
            if not node.relevant:
                return
            scopes = (*scopes, node.subjects) if node.subjects else scopes
            nearest = scopes[-1] if scopes else ()
            key = (id(node), nearest, frozenset(n for names in scopes for n in names))
            if key in seen:
                return
            seen.add(key)
            for rule in node.personal:
                _resolve(f"{node.cls.__qualname__}.{rule.attribute}", rule.declaration, scopes)
            for _, _, child in node.nested:
                visit(child, scopes)
        elif isinstance(node, ItemsNode):
            visit(node.item, scopes)
        elif isinstance(node, ValuesNode):
            visit(node.value, scopes)
        elif isinstance(node, TupleNode):
            for item in node.items:
                visit(item, scopes)
        elif isinstance(node, UnionNode):
            for _, variant in node.variants:
                visit(variant, scopes)

    visit(root, ())


def _resolve(where: str, declaration: PersonalData, scopes: Sequence[tuple[str, ...]]) -> str:
    """The subject field a personal field's values belong to, in `scopes` (outermost first)."""
    if declaration.subject is not None:
        for names in reversed(scopes):
            if declaration.subject in names:
                return declaration.subject
        raise ConfigurationError(
            f"{where}: PersonalData(subject={declaration.subject!r}) names no SubjectId "
            "field of this model or an enclosing one"
        )
    for names in reversed(scopes):
        if len(names) == 1:
            return names[0]
        if len(names) > 1:
            raise ConfigurationError(
                f"{where}: the model has several SubjectId fields ({', '.join(names)}); "
                "say which with PersonalData(subject=...)"
            )
    raise ConfigurationError(
        f"{where} is personal data without a subject: add a SubjectId field to the model"
    )


def _check_replacement(where: str, annotation: Any, declaration: PersonalData) -> None:
    if not declaration.has_replacement:
        return
    try:
        TypeAdapter(annotation).validate_python(declaration.replacement)
    except ValidationError:
        raise ConfigurationError(
            f"{where}: the replacement {declaration.replacement!r} is not a valid value "
            "of the field's type"
        ) from None
