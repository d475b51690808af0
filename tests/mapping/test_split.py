"""The split step: a model's personal values taken out of its plain data, grouped by subject,
and put back (`join`), or replaced by REDACTED (`redact`)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from shredstore import REDACTED, InvalidEventError, PersonalData, SubjectId
from shredstore.mapping.split import (
    join,
    redact,
    redacted_fields,
    redacted_paths,
    split,
)
from shredstore.personal import plan_of


class Line(BaseModel):
    recipient_id: SubjectId
    recipient: Annotated[str, PersonalData()]
    quantity: int


class Order(BaseModel):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str | None, PersonalData()] = Field(default=None, alias="e-mail")
    lines: list[Line] = []
    note: str = ""


class Loose(BaseModel):
    customer_id: SubjectId
    extra: Any = None


def order(data: st.DataObject) -> Order:
    text = st.text(max_size=20)
    subjects = st.sampled_from(["c-1", "c-2", "c-3"])
    lines = data.draw(st.lists(st.builds(Line, recipient_id=subjects, recipient=text,
                                         quantity=st.integers()), max_size=4))
    return Order(customer_id=data.draw(subjects), name=data.draw(text),
                 **{"e-mail": data.draw(st.none() | text)}, lines=lines, note=data.draw(text))


def test_personal_values_leave_the_plain_data_grouped_by_subject() -> None:
    model = Order(customer_id="c-1", name="Ann", **{"e-mail": "ann@example.com"}, lines=[
        Line(recipient_id="c-2", recipient="Bob", quantity=1),
        Line(recipient_id="c-1", recipient="Ann again", quantity=2)])
    data, groups, subjects = split(model, plan_of(Order))
    assert data == {"customer_id": "c-1", "lines": [
        {"recipient_id": "c-2", "quantity": 1}, {"recipient_id": "c-1", "quantity": 2}],
        "note": ""}
    assert groups == {
        "c-1": {("name",): "Ann", ("e-mail",): "ann@example.com",
                ("lines", 1, "recipient"): "Ann again"},
        "c-2": {("lines", 0, "recipient"): "Bob"},
    }
    assert subjects == {"c-1", "c-2"}


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_join_puts_back_what_split_took_out(data: st.DataObject) -> None:
    """Any values: the plain data with every group joined back is the model's own dump (by
    alias, as readers validate it), and no personal value is left in the plain data."""
    model = order(data)
    plain, groups, _ = split(model, plan_of(Order))
    for values in groups.values():
        for path in values:
            target: Any = plain
            for part in path[:-1]:
                target = target[part]
            assert path[-1] not in target
        join(plain, values, values.values())
    assert plain == model.model_dump(mode="json", by_alias=True)


def test_personal_data_where_no_subject_can_be_told_is_refused() -> None:
    """A model under Any hides its personal fields from the plan: the dump names the path."""
    model = Loose(customer_id="c-1", extra=Line(recipient_id="c-2", recipient="x", quantity=1))
    with pytest.raises(InvalidEventError, match=r"extra\.recipient"):
        split(model, plan_of(Loose))


def test_redact_marks_the_paths_and_the_markers_are_found_again() -> None:
    data: dict[str, Any] = {"customer_id": "c-1", "lines": [{"quantity": 1}, {"quantity": 2}]}
    paths: list[list[str | int]] = [["name"], ["lines", 1, "recipient"]]
    redact(data, paths)
    assert data["name"] is REDACTED
    assert data["lines"][1]["recipient"] is REDACTED
    groups = [{"subject": "c-1", "paths": paths, "redacted": True}]
    assert redacted_fields(groups, data) == {"name", "lines.1.recipient"}
    assert sorted(redacted_paths(data)) == ["lines.1.recipient", "name"]


def test_only_the_redacted_paths_of_the_groups_are_reported() -> None:
    """A path the groups name whose value was opened is not redacted."""
    data: dict[str, Any] = {"name": "Ann", "email": REDACTED}
    groups = [{"subject": "c-1", "paths": [["name"]], "sealed": ""},
              {"subject": "c-2", "paths": [["email"]], "sealed": ""}]
    assert redacted_fields(groups, data) == {"email"}
