"""Declaring personal data, and finding it in a model's data.

``customer_id: SubjectId`` marks the field that names a data subject;
``name: Annotated[str, PersonalData()]`` marks a personal field. A personal field's subject is
the one named by ``PersonalData(subject="field")``, or, without it, the only subject field of
the nearest model (the field's own, then the enclosing ones) that has any. A declaration that
cannot be resolved fails when the class is defined.

A personal field also accepts `REDACTED`: after its subject is erased, that is what it reads as
(unless the declaration gives a ``replacement``). The event is still an instance of its class.
"""

from __future__ import annotations

import types
import typing
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Union

from pydantic import BaseModel, TypeAdapter, ValidationError
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

Path = tuple[str | int, ...]


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


REDACTED: Final = Redacted()
"""What a personal field of an erased subject reads as, where no replacement is declared."""

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
        return core_schema.union_schema(
            [core_schema.is_instance_schema(Redacted), inner],
            mode="left_to_right",
            serialization=core_schema.wrap_serializer_function_ser_schema(_serialize),
        )

    def __repr__(self) -> str:
        parts = [f"subject={self.subject!r}"] if self.subject else []
        if self.has_replacement:
            parts.append(f"replacement={self.replacement!r}")
        return f"PersonalData({', '.join(parts)})"


def _serialize(value: Any, handler: core_schema.SerializerFunctionWrapHandler) -> Any:
    return None if value is REDACTED else handler(value)


@dataclass(frozen=True, slots=True)
class _Rule:
    """A personal field of a model, and where its subject is: `up` scopes out, field `field`."""

    name: str
    up: int
    field: str
    declaration: PersonalData


@dataclass(frozen=True, slots=True)
class PersonalPlan:
    """Where a model's personal data and subject ids are, found once per class."""

    personal: tuple[_Rule, ...] = ()
    nested: tuple[tuple[str, PersonalPlan, bool], ...] = ()
    subjects: tuple[str, ...] = ()

    @property
    def has_personal_data(self) -> bool:
        return bool(self.personal) or any(p.has_personal_data for _, p, _ in self.nested)

    @property
    def has_replacements(self) -> bool:
        return any(rule.declaration.has_replacement for rule in self.personal) or any(
            p.has_replacements for _, p, _ in self.nested)

    @property
    def has_subjects(self) -> bool:
        return bool(self.subjects) or any(p.has_subjects for _, p, _ in self.nested)

    def extract(self, data: dict[str, Any]) -> tuple[dict[str, dict[Path, Any]], set[str]]:
        """Remove the personal values from `data` (JSON-mode), grouped by subject.

        Returns the groups and every subject id named anywhere in the data.
        """
        groups: dict[str, dict[Path, Any]] = {}
        subjects: set[str] = set()
        self._extract(data, (), (), groups, subjects)
        return groups, subjects

    def _extract(
        self,
        data: dict[str, Any],
        scopes: tuple[dict[str, Any], ...],
        path: Path,
        groups: dict[str, dict[Path, Any]],
        subjects: set[str],
    ) -> None:
        scopes = (*scopes, data)
        for name in self.subjects:
            value = data.get(name)
            if value is not None:
                subjects.add(value)
        for rule in self.personal:
            if rule.name not in data:
                continue
            subject = scopes[-1 - rule.up].get(rule.field)
            if not isinstance(subject, str) or not subject:
                raise ConfigurationError(
                    f"personal field {_dotted((*path, rule.name))} has no subject: "
                    f"{rule.field} is empty"
                )
            groups.setdefault(subject, {})[(*path, rule.name)] = data.pop(rule.name)
        for name, plan, many in self.nested:
            value = data.get(name)
            if value is None:
                continue
            if many:
                for index, item in enumerate(value):
                    plan._extract(item, scopes, (*path, name, index), groups, subjects)
            else:
                plan._extract(value, scopes, (*path, name), groups, subjects)

    def replace_redacted(self, data: dict[str, Any]) -> None:
        """Put declared replacements where `data` holds `REDACTED`."""
        for rule in self.personal:
            if rule.declaration.has_replacement and data.get(rule.name) is REDACTED:
                data[rule.name] = rule.declaration.replacement
        for name, plan, many in self.nested:
            value = data.get(name)
            if isinstance(value, dict):
                plan.replace_redacted(value)
            elif many and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        plan.replace_redacted(item)


def put(data: dict[str, Any], path: Sequence[str | int], value: Any) -> None:
    """Set `value` at `path` in nested dicts and lists."""
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def redacted_paths(data: Any, path: Path = ()) -> Iterator[str]:
    """The dotted paths at which `data` (dicts, lists, models) holds `REDACTED`."""
    if data is REDACTED:
        yield _dotted(path)
    elif isinstance(data, BaseModel):
        for key, value in data.__dict__.items():
            yield from redacted_paths(value, (*path, key))
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from redacted_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from redacted_paths(value, (*path, index))


def dotted(path: Sequence[str | int]) -> str:
    """A path as ``lines.0.name``."""
    return _dotted(path)


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in path)


_PLANS: weakref.WeakKeyDictionary[type[BaseModel], PersonalPlan] = weakref.WeakKeyDictionary()


def plan_of(cls: type[BaseModel]) -> PersonalPlan:
    """The personal-data plan of a top-level model class (an event or an aggregate).

    A plan is only ever made from a fully built model: an incomplete one (forward references
    not yet resolvable) has no field metadata to find personal data in, and a plan made from
    it would store personal data in the clear.
    """
    plan = _PLANS.get(cls)
    if plan is None:
        _complete(cls)
        plan = _build(cls, (), (cls,))
        _PLANS[cls] = plan
    return plan


def is_complete(cls: type[BaseModel]) -> bool:
    """Whether pydantic has finished building `cls` (all its annotations resolved)."""
    return bool(getattr(cls, "__pydantic_complete__", False))


def _complete(cls: type[BaseModel]) -> None:
    if is_complete(cls):
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


def _build(
    cls: type[BaseModel], scopes: tuple[tuple[str, ...], ...], stack: tuple[type, ...]
) -> PersonalPlan:
    _complete(cls)
    subjects = tuple(name for name, info in cls.model_fields.items()
                     if any(isinstance(m, _SubjectMarker) for m in info.metadata))
    scopes = (*scopes, subjects)
    personal: list[_Rule] = []
    nested: list[tuple[str, PersonalPlan, bool]] = []
    for name, info in cls.model_fields.items():
        where = f"{cls.__qualname__}.{name}"
        declaration = next((m for m in info.metadata if isinstance(m, PersonalData)), None)
        if declaration is None:
            declaration = _declaration_inside(where, info.annotation)
        if declaration is not None:
            if name in subjects:
                raise ConfigurationError(f"{where} cannot be both a SubjectId and PersonalData")
            up, field = _resolve(where, declaration, scopes)
            _check_replacement(where, info.annotation, declaration)
            personal.append(_Rule(name, up, field, declaration))
            continue
        for model, many in _models_in(where, info.annotation):
            if model in stack:
                continue  # a recursive model: personal data inside it is not followed
            plan = _build(model, scopes, (*stack, model))
            if plan.has_personal_data or plan.has_subjects:
                nested.append((name, plan, many))
    return PersonalPlan(tuple(personal), tuple(nested), subjects)


def _declaration_inside(where: str, annotation: Any) -> PersonalData | None:
    """A PersonalData of an optional field (``Annotated[T, PersonalData()] | None``).

    PersonalData anywhere else inside a type (list items, dict values, a union of several
    types) is refused: silently ignored, it would let personal data through in the clear.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and typing.get_origin(others[0]) is Annotated:
            found = [m for m in others[0].__metadata__ if isinstance(m, PersonalData)]
            if found:
                return found[0]
    if _mentions_personal_data(annotation):
        raise ConfigurationError(
            f"{where}: PersonalData must mark the whole field (optionally as "
            "`Annotated[T, PersonalData()] | None`), not a part of its type; write e.g. "
            "`Annotated[list[str], PersonalData()]`"
        )
    return None


def _mentions_personal_data(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated and any(
        isinstance(m, PersonalData) for m in annotation.__metadata__
    ):
        return True
    return any(_mentions_personal_data(arg) for arg in typing.get_args(annotation)
               if arg is not Ellipsis)


def _resolve(
    where: str, declaration: PersonalData, scopes: tuple[tuple[str, ...], ...]
) -> tuple[int, str]:
    if declaration.subject is not None:
        for up, names in enumerate(reversed(scopes)):
            if declaration.subject in names:
                return up, declaration.subject
        raise ConfigurationError(
            f"{where}: PersonalData(subject={declaration.subject!r}) names no SubjectId "
            "field of this model or an enclosing one"
        )
    for up, names in enumerate(reversed(scopes)):
        if len(names) == 1:
            return up, names[0]
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


def _models_in(where: str, annotation: Any) -> Iterator[tuple[type[BaseModel], bool]]:
    """Nested models a field holds: (model, False) for one, (model, True) for a list of them."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        yield from _models_in(where, args[0])
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False
    elif origin in (Union, types.UnionType):
        for arg in args:
            yield from _models_in(where, arg)
    elif origin in (list, tuple, Sequence, typing.Sequence) and args:
        for model, many in _models_in(where, args[0]):
            if many:
                raise ConfigurationError(f"{where}: lists of lists of models are not supported")
            yield model, True
    elif origin is not None:
        for arg in args:
            for model, _ in _models_in(where, arg) if arg is not Ellipsis else ():
                if _declares_personal(model, ()):
                    raise ConfigurationError(
                        f"{where}: personal data inside {origin.__name__}[...] is not "
                        "supported; use a model, a list of models, or mark the whole field "
                        "PersonalData"
                    )


def _declares_personal(model: type[BaseModel], stack: tuple[type, ...]) -> bool:
    for info in model.model_fields.values():
        if any(isinstance(m, PersonalData) for m in info.metadata):
            return True
        for inner, _ in _models_in(model.__qualname__, info.annotation):
            if inner not in stack and _declares_personal(inner, (*stack, model)):
                return True
    return False
