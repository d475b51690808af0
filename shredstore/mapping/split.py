"""The split step of the mapping pipeline: a model to its plain data and its personal values.

pydantic's own serializer does the traversal. `PersonalData` attaches a serializer that, during
a dump made here, hands each personal value to a collector and writes a placeholder in its
place; so no personal value reaches the plain data, whatever the model's shape (nested and
recursive models, dataclasses, tuples, dicts, aliases). The model's `PersonalPlan` then says
where placeholders are expected and whose subject each value belongs to. A placeholder found
anywhere else (a model held under ``Any``, say) cannot be given a subject: the dump is refused,
and the error names the path. So is a personal field whose value arrives without a placeholder
(a serializer replaced PersonalData's).

The load side puts values back where the split took them (`join`), or `REDACTED` where their
subject's key was erased (`redact`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel

from shredstore.errors import InvalidEventError
from shredstore.mapping.column import Path, StoredGroup
from shredstore.mapping.encoding import checked_dump
from shredstore.personal import (
    REDACTED,
    ItemsNode,
    ModelNode,
    Node,
    PersonalPlan,
    PersonalRule,
    TupleNode,
    UnionNode,
    ValuesNode,
    dotted,
)

__all__ = ["Split", "join", "put", "redact", "redacted_fields", "redacted_paths", "split",
           "subject_of"]

_PLACEHOLDER = "\x00shredstore.personal:"
"""Starts the text written in a personal value's place during a split dump (never stored:
every placeholder is removed from the data, or the dump is refused)."""
_PLACES = [f"{_PLACEHOLDER}{index}" for index in range(256)]


class Split(NamedTuple):
    """A model split for storage."""

    data: dict[str, Any]
    """Its JSON-mode data without the personal values (by alias, as readers validate it)."""
    groups: dict[str, dict[Path, Any]]
    """Each subject's personal values (JSON-mode, or `REDACTED`) by their path in `data`."""
    subjects: set[str]
    """Every subject id the model names (for the subject index)."""


def split(model: BaseModel, plan: PersonalPlan) -> Split:
    """Dump `model` and take its personal values out, grouped by subject.

    Raises `InvalidEventError` (naming the path, never a value) where a personal value could
    not be given a subject or was written past `PersonalData`, or the model cannot be written
    as JSON at all.
    """
    collector = _Collector()
    data = checked_dump(
        lambda: model.model_dump(mode="json", by_alias=True, context=collector), type(model))
    walk = _Walk(collector)
    walk.model(plan.root, data, (), (), model if plan.has_unions else None)
    if collector.places:
        where = _find_placeholder(data, set(collector.places))
        raise InvalidEventError(
            f"{type(model).__qualname__}: personal data at {where or '<a custom serializer>'} is "
            "held where shredstore cannot tell its subject (a field typed Any, object or "
            "SerializeAsAny, or a custom serializer): give the field the model's own type")
    return Split(data, walk.groups, walk.subjects)


class _Collector:
    """The serialization context of a split dump: keeps personal values, hands out places."""

    __slots__ = ("depth", "places", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.places: dict[str, int] = {}
        """Each placeholder written, and the index of its value; taken out as it is found."""
        self.depth = 0

    def collect_personal(self, value: Any, handler: Callable[[Any], Any]) -> Any:
        if self.depth:  # inside a personal value: sealed as part of it
            return None if value is REDACTED else handler(value)
        if value is REDACTED:
            self.values.append(REDACTED)
        else:
            self.depth += 1
            try:
                self.values.append(handler(value))
            finally:
                self.depth -= 1
        index = len(self.values) - 1
        place = _PLACES[index] if index < len(_PLACES) else f"{_PLACEHOLDER}{index}"
        self.places[place] = index
        return place


class _Walk:
    """Walks the plan and the dumped data together, and the model instance beside them where
    a union's type must be told apart (`PersonalPlan.has_unions`; else `instance` is None)."""

    __slots__ = ("groups", "places", "subjects", "values")

    def __init__(self, collector: _Collector) -> None:
        self.values = collector.values
        self.places = collector.places
        self.groups: dict[str, dict[Path, Any]] = {}
        self.subjects: set[str] = set()

    def model(self, node: ModelNode, data: Any, path: Path,
              scopes: tuple[Mapping[str, Any], ...], instance: Any) -> None:
        if not node.relevant or type(data) is not dict:
            return
        if node.subject_keys:
            named = {}
            for attribute, key in node.subject_keys:
                named[attribute] = value = data.get(key)
                if isinstance(value, str) and value:
                    self.subjects.add(value)
            scopes = (*scopes, named)
        if node.personal:
            groups = self.groups
            for rule in node.personal:
                if rule.key not in data:
                    continue  # excluded from the dump: nothing is stored
                where = (*path, rule.key)
                value = self._take(data.pop(rule.key), where)
                subject = subject_of(rule, scopes, where)
                if subject in groups:
                    groups[subject][where] = value
                else:
                    groups[subject] = {where: value}
        for attribute, key, child in node.nested:
            inner = data.get(key)
            if inner is not None:
                self.any(child, inner, (*path, key), scopes,
                         None if instance is None else getattr(instance, attribute, None))

    def any(self, node: Node, data: Any, path: Path,
            scopes: tuple[Mapping[str, Any], ...], instance: Any) -> None:
        if isinstance(node, ModelNode):
            self.model(node, data, path, scopes, instance)
        elif isinstance(node, UnionNode):
            for types, variant in node.variants:
                if isinstance(instance, types):
                    self.any(variant, data, path, scopes, instance)
                    return
        elif isinstance(node, ValuesNode) and type(data) is dict:
            self._each(data.items(), itertools.repeat(node.value), path, scopes,
                       None if instance is None else instance.values())
        elif isinstance(node, ItemsNode) and type(data) is list:
            self._each(enumerate(data), itertools.repeat(node.item), path, scopes, instance)
        elif isinstance(node, TupleNode) and type(data) is list:
            self._each(enumerate(data), node.items, path, scopes, instance)

    def _each(self, steps: Iterable[tuple[int | str, Any]], nodes: Iterable[Node | None],
              path: Path, scopes: tuple[Mapping[str, Any], ...], instances: Any) -> None:
        pairs = zip(steps, nodes, strict=False)
        if instances is None or not isinstance(instances, Iterable):
            for (step, inner), node in pairs:
                if node is not None:
                    self.any(node, inner, (*path, step), scopes, None)
            return
        for ((step, inner), node), instance in zip(pairs, instances, strict=False):
            if node is not None:
                self.any(node, inner, (*path, step), scopes, instance)

    def _take(self, written: Any, where: Path) -> Any:
        if written is None:
            return None  # an optional personal field without a value: sealed as None
        index = self.places.pop(written, None) if type(written) is str else None
        if index is None:
            raise InvalidEventError(
                f"personal field {dotted(where)} was written without PersonalData's sealing "
                "(a custom serializer replaced it): remove the serializer")
        return self.values[index]


def subject_of(rule: PersonalRule, scopes: tuple[Mapping[str, Any], ...], where: Path) -> str:
    """The subject id of personal field `rule` at `where`, from the subject fields of the
    models around it (`scopes`, outermost first)."""
    name = rule.declaration.subject
    subject: Any
    if name is None:  # the nearest model with subject fields; the plan checked it has one
        subject = next(iter(scopes[-1].values())) if scopes else None
    else:
        subject = next((named[name] for named in reversed(scopes) if name in named), None)
    if not isinstance(subject, str) or not subject:
        raise InvalidEventError(
            f"personal field {dotted(where)} has no subject: "
            f"{name or 'its subject field'} is empty")
    return subject


def _find_placeholder(data: Any, wanted: set[str]) -> str | None:
    """The dotted path of the first of `wanted` placeholders in `data` (iteratively: deep
    data must not overflow the stack)."""
    stack: list[tuple[Any, Path]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if value in wanted:
                return dotted(path) or "<root>"
        elif isinstance(value, dict):
            stack.extend((inner, (*path, key)) for key, inner in value.items())
        elif isinstance(value, list):
            stack.extend((inner, (*path, index)) for index, inner in enumerate(value))
    return None


# The load side.


def join(data: dict[str, Any], paths: Iterable[Sequence[Any]], values: Iterable[Any]) -> None:
    """Put each of `values` back into `data` at its path (as many paths as values)."""
    for path, value in zip(paths, values, strict=True):
        if len(path) == 1:
            data[path[0]] = value
        else:
            put(data, path, value)


def redact(data: dict[str, Any], paths: Iterable[Sequence[str | int]]) -> None:
    """Put `REDACTED` into `data` at each of `paths`."""
    for path in paths:
        put(data, path, REDACTED)


def put(data: dict[str, Any], path: Sequence[str | int], value: Any) -> None:
    """Set `value` at `path` in nested dicts and lists."""
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def redacted_fields(groups: Iterable[StoredGroup], data: dict[str, Any]) -> frozenset[str]:
    """The dotted paths at which `groups` put REDACTED into `data` (without walking all of
    `data`; see `redacted_paths` where upcasters may have moved fields)."""
    found = set()
    for group in groups:
        for path in group["paths"]:
            target: Any = data
            for part in path:
                target = target[part]
            if target is REDACTED:
                found.add(path[0] if len(path) == 1 else dotted(path))
    return frozenset(found)


def redacted_paths(data: Any, path: Path = ()) -> Iterator[str]:
    """The dotted paths at which `data` (dicts, lists, models) holds `REDACTED`."""
    if data is REDACTED:
        yield dotted(path)
    elif isinstance(data, BaseModel):
        for key, value in data.__dict__.items():
            yield from redacted_paths(value, (*path, key))
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from redacted_paths(value, (*path, key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from redacted_paths(value, (*path, index))
