"""Event classes whose stored form provably reads back as written, and their fast split.

An append checks that each event reads back as written (`validation.check_reads_back`): parse
the payload, put the personal values back, validate, compare. That costs about as much as the
read itself. For some classes the check cannot fail, and this module says which, from the
class's pydantic core schema, once per class:

- every field is a plain ``str``, ``int``, ``bool``, ``UUID``, ``date`` or ``datetime``, an
  enum of str or int values, a literal of those, optional or with a default, or a
  `PersonalData` field of one of these; no constraints, no validator or serializer functions
  (other than PersonalData's own), no aliases, no excluded fields but the event id, no computed
  or extra fields, no custom ``__init__`` or ``model_post_init``, no configuration that
  changes a value on its way in or out;
- so JSON holds each value exactly, and validating the JSON gives an equal value back.

A class proven so still has each instance checked, cheaply: each field's value must be of
exactly its field's type (an instance made by ``model_construct`` or altered past validation
may hold anything; `REDACTED` in a personal field is not a value either), and a datetime
naive or at a fixed offset from UTC in whole minutes (JSON keeps no zone rules and no
seconds of an offset). An instance that
passes skips the read-back check; any other takes the full path, which reports the problem.

Such a class holds no model inside (nor ``Any``): its personal fields and subject fields are
all at the top level, so it is also split without the placeholder dump (`split.split`): its
plain dump, with the personal values taken out by key. The schema proves there is nowhere else
a personal value could be.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from enum import Enum, Flag
from typing import Any, cast
from uuid import UUID

from pydantic import BaseModel

from shredstore.mapping.column import Path
from shredstore.mapping.split import Split, subject_of
from shredstore.personal import PersonalPlan, Redacted

__all__ = ["ExactForm", "exact_form"]

_SCALARS: dict[str, type] = {"str": str, "int": int, "bool": bool, "uuid": UUID,
                             "date": date, "datetime": datetime}
"""Core schema types whose JSON form reads back as an equal value of exactly this type."""
_PLAIN_KEYS = frozenset({"type", "metadata", "ref"})
"""Keys a scalar's schema may have (any other is a constraint or a conversion)."""
_STRICT_READS_JSON = frozenset({"str", "int", "bool"})
"""Scalars that a strict field still reads from their JSON form (a reader validates parsed
JSON as Python data, where a strict UUID, date or datetime field refuses the text)."""
_MODEL_KEYS = frozenset({"type", "cls", "schema", "config", "custom_init", "root_model",
                         "post_init", "metadata", "ref"})
_CONFIG_KEYS = frozenset({"title", "extra_fields_behavior"})
_FIELD_KEYS = frozenset({"type", "schema", "metadata", "frozen", "serialization_exclude"})

Check = Callable[[Any], bool]
Fit = Check | type
"""What a field's value must be: exactly of a type, or pass a check."""
_MINUTE = timedelta(minutes=1)
_MISSING = object()
"""A field missing from an instance's values (deleted past pydantic): it fits no check."""


class ExactForm:
    """A class proven to read back exactly (see the module): how to check an instance, and how
    to split it fast."""

    __slots__ = ("_checks", "_plan", "_subject_keys", "_types")

    def __init__(self, fits: tuple[tuple[str, Fit], ...], plan: PersonalPlan) -> None:
        # Most fields need their value's type only: compared in a loop, without a call each.
        self._types = tuple((name, fit) for name, fit in fits if isinstance(fit, type))
        self._checks = tuple((name, _as_check(fit)) for name, fit in fits
                             if not isinstance(fit, type))
        self._plan = plan
        keys = dict(plan.root.subject_keys)
        first = plan.root.subject_keys[0][1] if plan.root.subject_keys else None
        self._subject_keys = tuple(
            first if rule.declaration.subject is None else keys.get(rule.declaration.subject)
            for rule in plan.root.personal)
        """Where each personal field's subject id is in the dump (None: not at the top, which
        `split.subject_of` reports)."""

    def holds(self, event: BaseModel) -> bool:
        """Whether every field of `event` holds a value of exactly its field's type."""
        values = event.__dict__
        for name, expected in self._types:
            if type(values.get(name, _MISSING)) is not expected:
                return False
        return all(check(values.get(name, _MISSING)) for name, check in self._checks)

    def split(self, data: dict[str, Any]) -> Split:
        """`split.split` of an instance that `holds`, from its plain JSON-mode dump `data`
        (personal values included, taken out of it here)."""
        root = self._plan.root
        subjects = {value for _, key in root.subject_keys
                    if isinstance(value := data.get(key), str) and value}
        groups: dict[str, dict[Path, Any]] = {}
        for rule, key in zip(root.personal, self._subject_keys, strict=True):
            where = (rule.key,)
            subject = data.get(key) if key is not None else None
            if type(subject) is not str or not subject:
                named = {attribute: data.get(at) for attribute, at in root.subject_keys}
                subject = subject_of(rule, (named,) if named else (), where)  # raises
            value = data.pop(rule.key)
            if subject in groups:
                groups[subject][where] = value
            else:
                groups[subject] = {where: value}
        return Split(data, groups, subjects)


_FORMS: weakref.WeakKeyDictionary[type, ExactForm | None] = weakref.WeakKeyDictionary()


def exact_form(cls: type[BaseModel], plan: PersonalPlan) -> ExactForm | None:
    """`cls`'s `ExactForm`, or None where it cannot be proven (once per class)."""
    known = _FORMS.get(cls, _MISSING)
    if known is not _MISSING:
        return cast("ExactForm | None", known)
    checks = _model_checks(cls.__pydantic_core_schema__, cls)
    # No model and no Any inside: nothing nested, no union or opaque field, in the plan either.
    form = (None if checks is None or plan.root.nested or plan.has_unions or plan.opaque
            else ExactForm(checks, plan))
    _FORMS[cls] = form
    return form


def _model_checks(  # noqa: PLR0911 (one return per thing that rules it out)
        schema: Any, cls: type) -> tuple[tuple[str, Fit], ...] | None:
    if (schema.get("type") != "model" or schema.get("cls") is not cls
            or not _MODEL_KEYS.issuperset(schema) or schema.get("custom_init")
            or schema.get("root_model") or schema.get("post_init")):
        return None
    config = schema.get("config", {})
    if not _CONFIG_KEYS.issuperset(config) or config.get(
            "extra_fields_behavior", "ignore") not in ("ignore", "forbid"):
        return None
    fields = schema.get("schema", {})
    if (fields.get("type") != "model-fields" or fields.get("computed_fields")
            or fields.get("extras_schema") is not None or set(fields.get("fields", {}))
            != set(getattr(cls, "__pydantic_fields__", {}))):
        return None
    checks = []
    for name, field in fields["fields"].items():
        if field.get("type") != "model-field" or not _FIELD_KEYS.issuperset(field):
            return None
        if field.get("serialization_exclude") and name != "event_id":
            return None  # the event id is stored apart from the payload, and read back
        fit = _value_fit(field["schema"])
        if fit is None:
            return None
        checks.append((name, fit))
    return tuple(checks)


def _value_fit(schema: Any) -> Fit | None:  # noqa: PLR0911 (one return per kind)
    """What a value must be to fit `schema` exactly and read back from JSON as itself; None
    if the schema is not one of those this module can prove."""
    kind = schema.get("type")
    if kind in _SCALARS:
        expected = _SCALARS[kind]
        allowed = (_PLAIN_KEYS | ({"microseconds_precision"} if kind == "datetime" else set())
                   | ({"strict"} if kind in _STRICT_READS_JSON else set()))
        if not allowed.issuperset(schema) or schema.get(
                "microseconds_precision", "truncate") != "truncate":
            return None
        return _whole_minutes_offset if expected is datetime else expected
    if kind == "default":
        if not {"type", "schema", "default", "default_factory", "default_factory_takes_data",
                "metadata", "ref"}.issuperset(schema):
            return None  # validate_default, on_error: a conversion on the way in
        return _value_fit(schema["schema"])
    if kind == "nullable":
        inner = _value_fit(schema["schema"]) if (_PLAIN_KEYS | {"strict"}).issuperset(
            set(schema) - {"schema"}) else None
        if inner is None:
            return None
        check = _as_check(inner)
        return lambda value: value is None or check(value)
    if kind == "enum":
        return _enum_fit(schema)
    if kind == "literal":
        if not (_PLAIN_KEYS | {"expected", "strict"}).issuperset(schema):
            return None
        expected_values = schema.get("expected", [])
        if not all(type(each) in (str, int) for each in expected_values):
            return None
        pairs = frozenset((type(each), each) for each in expected_values)
        return lambda value: (type(value), value) in pairs
    if kind == "union":
        return _personal_fit(schema)
    return None


def _as_check(fit: Fit) -> Check:
    """`fit` as a check (a type: the value's type is exactly it)."""
    if isinstance(fit, type):
        expected = fit
        return lambda value: type(value) is expected
    return fit


def _whole_minutes_offset(value: Any) -> bool:
    """A datetime that JSON holds exactly: naive, or with a fixed offset from UTC
    (`datetime.timezone`) in whole minutes. pydantic writes the offset as hours and minutes
    (seconds would be lost), and reads a fixed offset back (a zone's rules would be lost: such
    times take the full check, as before)."""
    if type(value) is not datetime:
        return False
    zone = value.tzinfo
    if zone is None:
        return True
    offset = zone.utcoffset(value) if type(zone) is timezone else None
    return offset is not None and not offset % _MINUTE


def _enum_fit(schema: Any) -> Fit | None:
    enum = schema.get("cls")
    if (not isinstance(enum, type) or not issubclass(enum, Enum) or issubclass(enum, Flag)
            or not {"type", "cls", "members", "sub_type", "metadata", "ref"}.issuperset(schema)
            or not all(type(member.value) in (str, int) for member in enum)):
        return None
    return enum


def _personal_fit(schema: Any) -> Fit | None:
    """A `PersonalData` field's schema (`shredstore.personal`): REDACTED, or its type."""
    choices = schema.get("choices", [])
    serialization = schema.get("serialization", {})
    if (len(choices) != 2 or schema.get("mode") != "left_to_right"
            or serialization.get("type") != "function-wrap"
            or getattr(serialization.get("function"), "__module__", None)
            != "shredstore.personal"):
        return None
    redacted = choices[0]
    if redacted.get("type") == "function-after":  # with a replacement: made after the fact
        redacted = redacted.get("schema", {})
    if redacted.get("type") != "is-instance" or redacted.get("cls") is not Redacted:
        return None
    return _value_fit(choices[1])  # REDACTED itself fails it: the full path handles it
