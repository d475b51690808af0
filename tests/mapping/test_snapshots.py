"""Aggregate state to a stored snapshot and back, personal fields sealed as in events:
redacted where the subject was erased before, or after, the snapshot was taken."""

from __future__ import annotations

from typing import Annotated

import pydantic_core
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from keyvault import KeyVault
from shredstore import REDACTED, EventRegistry, PersonalData, SubjectId
from shredstore.mapping.column import decode_column
from shredstore.mapping.snapshots import snapshot_of, state_from


class Customer(BaseModel):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData(replacement="erased@example.invalid")]
    visits: int = 0
    version: int = 0


REGISTRY = EventRegistry()


def save(state: Customer, vault: KeyVault) -> tuple[str, str | None]:
    with vault.keyring() as ring:
        row = snapshot_of(state, stream_id="s-1", version=4, type_name="customer",
                          schema_version=1, ring=ring)
    return row.state, row.personal


@settings(max_examples=30, deadline=None)
@given(name=st.text(max_size=30).map("N:".__add__), email=st.text(max_size=30),
       visits=st.integers())
def test_a_snapshot_loads_as_the_state_it_was_taken_of(
        vault: KeyVault, name: str, email: str, visits: int) -> None:
    state = Customer(customer_id="k-1", name=name, email=email, visits=visits)
    with vault.keyring() as ring:
        row = snapshot_of(state, stream_id="s-1", version=4, type_name="customer",
                          schema_version=1, ring=ring)
        assert "N:" not in row.state
        assert state_from(row, Customer, registry=REGISTRY, target_version=1,
                          ring=ring) == state
    assert row.personal is not None
    (group,) = decode_column(row.personal)
    assert (group["subject"], group["paths"]) == ("k-1", [["name"], ["email"]])
    assert row.personal == pydantic_core.to_json([group]).decode()


def test_a_snapshot_read_after_an_erasure_redacts_like_a_replay(vault: KeyVault) -> None:
    state = Customer(customer_id="k-2", name="Ann", email="ann@example.com")
    with vault.keyring() as ring:
        row = snapshot_of(state, stream_id="s-1", version=4, type_name="customer",
                          schema_version=1, ring=ring)
    vault.erase("k-2")
    with vault.keyring() as ring:
        back = state_from(row, Customer, registry=REGISTRY, target_version=1, ring=ring)
    assert back.name is REDACTED  # type: ignore[attr-defined]
    assert back.email == "erased@example.invalid"  # type: ignore[attr-defined]


def test_redacted_fields_and_erased_subjects_are_stored_without_a_value(
        vault: KeyVault) -> None:
    """A field already REDACTED, or a subject erased before the snapshot: a redacted group."""
    vault.erase("k-3")
    state = Customer(customer_id="k-3", name="Ann", email="ann@example.com")
    with vault.keyring() as ring:
        erased = snapshot_of(state, stream_id="s-1", version=1, type_name="customer",
                             schema_version=1, ring=ring)
        partly = snapshot_of(Customer(customer_id="k-4", name=REDACTED, email="b@x"),
                             stream_id="s-2", version=1, type_name="customer",
                             schema_version=1, ring=ring)
    assert erased.personal == '[{"subject":"k-3","paths":[["name"],["email"]],"redacted":true}]'
    assert partly.personal is not None
    sealed, redacted = decode_column(partly.personal)
    assert (sealed["paths"], "sealed" in sealed) == ([["email"]], True)
    assert redacted == {"subject": "k-4", "paths": [["name"]], "redacted": True}
    with vault.keyring() as ring:
        back = state_from(partly, Customer, registry=REGISTRY, target_version=1, ring=ring)
    assert (back.name, back.email) == (REDACTED, "b@x")  # type: ignore[attr-defined]
