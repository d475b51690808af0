"""The seal step: a subject's values sealed with its key and bound to their record and
paths; opened again, or REDACTED where the key was erased, and never redacted on tampering."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keyvault
from keyvault import KeyRing, KeyVault
from shredstore import REDACTED, ConfigurationError, TamperedError
from shredstore.mapping.column import (
    decode_column,
    encode_column,
    encode_paths,
    encode_redacted_group,
    encode_sealed_group,
)
from shredstore.mapping.encoding import encode_values
from shredstore.mapping.sealing import (
    event_context,
    open_groups,
    seal,
    snapshot_context,
    unseal,
)

NAME_EMAIL = encode_paths((("name",), ("email",)))
EVENT = event_context(uuid.UUID(int=1))


def sealed_column(ring: KeyRing, subject: str, values: list[Any], context: bytes = EVENT,
                  paths: bytes = NAME_EMAIL) -> str:
    plaintext = encode_values(values, object)
    column = encode_column(
        [encode_sealed_group(subject, paths, seal(ring, subject, paths, plaintext, context))])
    assert column is not None
    return column


def test_the_contexts_are_part_of_the_stored_format() -> None:
    """Changing them would make every stored value fail authentication."""
    assert event_context(uuid.UUID(int=1)) == b"shredstore.event.v1\x00" + (1).to_bytes(16, "big")
    assert snapshot_context("s-1", 7) == (b"shredstore.snapshot.v1\x00" + b"\x00\x00\x00\x03s-1"
                                          + (7).to_bytes(8, "big"))


@settings(max_examples=30, deadline=None)
@given(plaintext=st.binary(max_size=300), subject=st.sampled_from(["a-1", "a-2"]))
def test_unseal_returns_what_seal_sealed(vault: KeyVault, plaintext: bytes,
                                         subject: str) -> None:
    with vault.keyring() as ring:
        sealed = seal(ring, subject, NAME_EMAIL, plaintext, EVENT)
        assert unseal(ring, subject, NAME_EMAIL, sealed, EVENT) == plaintext


@pytest.mark.parametrize("moved", ["other-record", "other-paths", "other-subject"])
def test_a_value_moved_elsewhere_fails_authentication(ring: KeyRing, moved: str) -> None:
    sealed = seal(ring, "m-1", NAME_EMAIL, b'["Ann","a@x"]', EVENT)
    ring.prepare({"m-2"})
    subject, paths, context = "m-1", NAME_EMAIL, EVENT
    if moved == "other-record":
        context = event_context(uuid.UUID(int=2))
    elif moved == "other-paths":
        paths = encode_paths((("email",), ("name",)))
    else:
        subject = "m-2"
    with pytest.raises(keyvault.TamperedError):
        unseal(ring, subject, paths, sealed, context)


def test_an_erased_subjects_value_unseals_as_none(vault: KeyVault) -> None:
    with vault.keyring() as ring:
        sealed = seal(ring, "e-1", NAME_EMAIL, b'["Ann","a@x"]', EVENT)
    vault.erase("e-1")
    with vault.keyring() as ring:
        assert unseal(ring, "e-1", NAME_EMAIL, sealed, EVENT) is None


def test_open_groups_puts_the_values_back_and_names_the_fields(ring: KeyRing) -> None:
    column = sealed_column(ring, "o-1", ["Ann", "ann@example.com"])
    data: dict[str, Any] = {"customer_id": "o-1"}
    fields, redacted = open_groups(ring, decode_column(column), data, EVENT, where="here")
    assert data == {"customer_id": "o-1", "name": "Ann", "email": "ann@example.com"}
    assert (fields, redacted) == (frozenset({"name", "email"}), False)


def test_open_groups_redacts_an_erased_subject(vault: KeyVault) -> None:
    with vault.keyring() as ring:
        column = sealed_column(ring, "o-2", ["Ann", "ann@example.com"])
    vault.erase("o-2")
    data: dict[str, Any] = {}
    with vault.keyring() as ring:
        fields, redacted = open_groups(ring, decode_column(column), data, EVENT, where="here")
    assert data == {"name": REDACTED, "email": REDACTED}
    assert (fields, redacted) == (frozenset({"name", "email"}), True)


def test_a_redacted_group_is_accepted_only_where_allowed(ring: KeyRing) -> None:
    """Snapshots store redacted groups; in an event one would let an altered row pass for an
    erasure."""
    column = encode_column([encode_redacted_group("o-3", NAME_EMAIL)])
    assert column is not None
    with pytest.raises(TamperedError, match="event at position 2"):
        open_groups(ring, decode_column(column), {}, EVENT, where="event at position 2")
    data: dict[str, Any] = {}
    assert open_groups(ring, decode_column(column), data, EVENT, where="here",
                       allow_redacted=True) == (frozenset({"name", "email"}), True)
    assert data == {"name": REDACTED, "email": REDACTED}


def test_personal_data_without_a_ring_is_a_configuration_error(ring: KeyRing) -> None:
    """No master key: an error, never REDACTED; redacted groups need no key."""
    column = sealed_column(ring, "o-4", ["Ann", "a@x"])
    with pytest.raises(ConfigurationError, match="master_key"):
        open_groups(None, decode_column(column), {}, EVENT, where="here")
    redacted = encode_column([encode_redacted_group("o-4", NAME_EMAIL)])
    assert redacted is not None
    assert open_groups(None, decode_column(redacted), {}, EVENT, where="here",
                       allow_redacted=True)[1] is True


@pytest.mark.parametrize("change", ["values-count", "not-base64", "flipped-byte",
                                    "path-not-in-data"])
def test_a_malformed_or_altered_group_is_tampered(ring: KeyRing, change: str) -> None:
    """Never REDACTED: an error naming the record."""
    values = ["Ann"] if change == "values-count" else ["Ann", "a@x"]
    paths = NAME_EMAIL
    if change == "path-not-in-data":
        paths = encode_paths((("name",), ("billing", "street")))
    (group,) = decode_column(sealed_column(ring, "o-5", values, paths=paths))
    if change == "not-base64":
        group["sealed"] = "*" + group["sealed"]
    elif change == "flipped-byte":
        sealed = base64.b64decode(group["sealed"])
        group["sealed"] = base64.b64encode(sealed[:-1] + bytes([sealed[-1] ^ 1])).decode()
    with pytest.raises(TamperedError, match="event at position 6"):
        open_groups(ring, [group], {}, EVENT, where="event at position 6")
