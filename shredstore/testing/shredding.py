"""`ShreddingContract`: the crypto-shredding behaviour every backend must have.

Subclass it in a test module and give it a ``url`` fixture (a fresh, empty database) and a
``vault_url`` fixture (another fresh, empty database, for a vault kept apart from the
events); pytest collects it only through your subclass. Override `stored_bytes` to let the
plaintext scans see more than the tables' rows (the SQLite suite adds the database files).

It checks that no personal value is stored in plaintext, that every kind of personal field
round-trips, that erasure redacts exactly the erased subject's fields (in the suite's models
and in random ones), that appends for erased subjects write nothing, that tampered
ciphertext and wrong master keys are refused rather than read as redacted, and that a vault
in another database shreds the same. Needs pytest and hypothesis.

Personal values used here are made up and distinctive, so that a scan of the stored bytes
finds them only if they were stored in plaintext. Assertions about the scans name the values
by label, never by value.

The suite's events are in a registry of their own, passed to every store it opens: the
application's `shredstore.default_registry` is left alone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import create_model

import keyvault
import shredstore.testing._tampering as tampering
from keyvault import KeyRing, KeyVaultError, MasterKey, WrongMasterKeyError
from shredstore import (
    NO_STREAM,
    REDACTED,
    ConfigurationError,
    Event,
    EventRegistry,
    EventStore,
    PersonalData,
    RecordedEvent,
    SubjectErasedError,
    SubjectId,
    TamperedError,
    UnknownEvent,
    WrongExpectedVersion,
)
from shredstore.testing._shredding_events import (
    ERASED_EMAIL,
    REGISTRY,
    Address,
    CustomerRegistered,
    GiftSent,
    Line,
    Noted,
    OrderPlaced,
    PaymentSent,
    ProfileUpdated,
    ReferralMade,
    Tier,
)

__all__ = ["ShreddingContract"]

# Distinctive values: personal ones must never be stored in plaintext, plain ones must be.

PERSONAL = {
    "name": "Zelda-Quokka-7741",
    "email": "zelda.quokka7741@example.org",
    "iban": "GB33BUKB20201555555555",
    "payee name": "Xanthe-Narwhal-9904",
    "nickname": "Zoë-Ångström-6620",
    "age": "731904265118",
    "balance": "98765.4321",
    "born": "1987-06-05",
    "last seen": "2031-02-03T04:05:06",
    "phone": "+44-7700-900-123",
    "street": "Wombat-Lane-8812",
    "billing street": "Echidna-Road-3377",
    "recipient name": "Yorick-Pangolin-5523",
    "note": "Leave-with-Ignatius-4410",
    "sender name": "Vesper-Tapir-1029",
}

PLAIN = {
    "city": "Plain-Kölner-City-3141",
    "sku": "SKU-Plain-Okapi-2718",
    "plan": "plan-Plain-Lemur-1618",
    "credit limit": "918273645",
    "referral code": "REF-Plain-Ibis-5772",
}

SUBJECT = "cust-Quasar-42"
"""The subject of the distinctive events: an opaque id, stored in plaintext by design."""


def distinctive_events() -> list[Event]:
    """Events holding every value of `PERSONAL` as personal data and of `PLAIN` as plain."""
    p, q = PERSONAL, PLAIN
    return [
        CustomerRegistered(customer_id=SUBJECT, name=p["name"], email=p["email"],
                           credit_limit=int(q["credit limit"])),
        PaymentSent(payer_id=SUBJECT, payee_id="payee-7", payer_iban=p["iban"],
                    payee_name=p["payee name"], amount_cents=1250),
        ProfileUpdated(
            customer_id=SUBJECT, nickname=p["nickname"], age=int(p["age"]),
            balance=Decimal(p["balance"]), born=date.fromisoformat(p["born"]),
            last_seen=datetime.fromisoformat(p["last seen"]).replace(tzinfo=UTC),
            tier=Tier.GOLD, phone=p["phone"],
            home=Address(street=p["street"], city=q["city"]),
            billing=Address(street=p["billing street"], city="Billing-City"),
            plan=q["plan"],
        ),
        OrderPlaced(customer_id=SUBJECT, shipping=Address(street=p["street"], city=q["city"]),
                    lines=[Line(recipient_id="recipient-9", recipient_name=p["recipient name"],
                                sku=q["sku"])],
                    note=p["note"], total_cents=4200),
        GiftSent(sender_id=SUBJECT, sender_name=p["sender name"],
                 recipient=Line(recipient_id="recipient-9", recipient_name=p["recipient name"],
                                sku=q["sku"])),
        ReferralMade(referrer_id=SUBJECT, code=q["referral code"]),
    ]


def table_dumps(url: str) -> dict[str, bytes]:
    """Every row of every table of the database (the store's schema), as bytes by table."""
    engine = sa.create_engine(url)
    dumps: dict[str, bytes] = {}
    try:
        with engine.connect() as conn:
            for name in sa.inspect(conn).get_table_names():
                rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).all()
                dumps[name] = b"\n".join(
                    b"|".join(_as_bytes(value) for value in row) for row in rows)
    finally:
        engine.dispose()
    return dumps


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return f"{value!r} {value}".encode()


def found_in(stored: Mapping[str, bytes], values: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, where) for each value whose UTF-8 bytes occur in a stored blob."""
    return [(label, where) for label, value in values.items()
            for where, blob in stored.items() if value.encode() in blob]


def raw_rows(url: str, sql: str, **params: object) -> list[sa.Row[Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def personal_column(url: str, position: int) -> list[dict[str, Any]]:
    (row,) = raw_rows(url, "SELECT personal FROM shredstore_events WHERE position = :p",
                      p=position)
    groups: list[dict[str, Any]] = json.loads(row[0])
    return groups


def overwrite_personal(url: str, position: int, personal: str) -> None:
    """Change a stored event's personal column, past the immutability triggers."""
    engine = tampering.raw_engine(url)
    try:
        tampering.drop_triggers(engine)
        tampering.execute(engine, "UPDATE shredstore_events SET personal = :v "
                          "WHERE position = :p", v=personal, p=position)
    finally:
        engine.dispose()


ANY_REDACTED: Any = REDACTED
"""REDACTED where the static type of a field says otherwise."""


def is_redacted(value: object) -> bool:
    """Whether a field reads as REDACTED (its static type may say it cannot)."""
    return value is REDACTED


def interleave_after_prepare(monkeypatch: pytest.MonkeyPatch, store: EventStore,
                             meanwhile: Callable[[], object]) -> None:
    """Run `meanwhile` once, right after `store` prepared (but did not store) new keys.

    Watches the key rings `store.vault.keyring` hands out, and runs `meanwhile` after the
    first `KeyRing.prepare` of one of them.
    """
    vault = store.vault
    keyring = vault.keyring
    prepare = KeyRing.prepare
    rings: set[int] = set()
    pending = [meanwhile]

    @contextlib.contextmanager
    def watched_keyring(**options: Any) -> Iterator[KeyRing]:
        with keyring(**options) as ring:
            rings.add(id(ring))
            try:
                yield ring
            finally:
                rings.discard(id(ring))

    def prepare_then_interleave(ring: KeyRing, subject_ids: Collection[str]) -> None:
        prepare(ring, subject_ids)
        if id(ring) in rings and pending:
            pending.pop()()

    monkeypatch.setattr(vault, "keyring", watched_keyring)
    monkeypatch.setattr(KeyRing, "prepare", prepare_then_interleave)


def only(records: Iterator[RecordedEvent]) -> RecordedEvent:
    (record,) = records
    return record


def customer(subject: str, name: str = "Ada Example", email: str = "ada@example.org",
             credit_limit: int = 100) -> CustomerRegistered:
    return CustomerRegistered(customer_id=subject, name=name, email=email,
                              credit_limit=credit_limit)


def profile(subject: str, **changes: Any) -> ProfileUpdated:
    fields: dict[str, Any] = {
        "customer_id": subject, "nickname": "Ady", "age": 36,
        "balance": Decimal("1234.5600"), "born": date(1990, 2, 28),
        "last_seen": datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC), "tier": Tier.SILVER,
        "phone": "+1-555-0100", "fax": "+1-555-0199",
        "home": Address(street="1 Home Street", city="Hometown"),
        "billing": Address(street="2 Bill Road", city="Billtown"), "plan": "pro",
    }
    return ProfileUpdated(**{**fields, **changes})


def order(customer_id: str, recipients: list[str], note: str | None = "ring twice") -> OrderPlaced:
    return OrderPlaced(
        customer_id=customer_id, shipping=Address(street="3 Ship Lane", city="Porttown"),
        lines=[Line(recipient_id=r, recipient_name=f"Recipient {n}", sku=f"sku-{n}")
               for n, r in enumerate(recipients)],
        note=note, total_cents=999,
    )


# Random event models for the property tests

_KINDS: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    "str": (str, st.text(max_size=12)),
    "int": (int, st.integers()),
    "bool": (bool, st.booleans()),
    "float": (float, st.floats(allow_nan=False, allow_infinity=False)),
    "decimal": (Decimal, st.decimals(allow_nan=False, allow_infinity=False)),
    "date": (date, st.dates()),
    "datetime": (datetime, st.datetimes(timezones=st.just(UTC))),
}
_NO_REPLACEMENT = object()


@dataclass(frozen=True)
class FieldSpec:
    """One field of a random event model: its type, and whose personal data it is, if any."""

    kind: str
    optional: bool
    subject: int | None
    """None for a plain field, else the index of the SubjectId field (s0 or s1) it belongs to."""
    replacement: Any = _NO_REPLACEMENT

    def values(self) -> st.SearchStrategy[Any]:
        values = _KINDS[self.kind][1]
        return st.none() | values if self.optional else values


@dataclass(frozen=True)
class ModelSpec:
    subjects: int
    fields: tuple[FieldSpec, ...]

    def build(self) -> type[Event]:
        """A new event class, not in the default registry, with a type name of its own."""
        definitions: dict[str, Any] = {f"s{i}": (SubjectId, ...) for i in range(self.subjects)}
        for index, spec in enumerate(self.fields):
            annotation: Any = _KINDS[spec.kind][0]
            if spec.optional:
                annotation = annotation | None
            if spec.subject is not None:
                declaration = PersonalData(
                    subject=f"s{spec.subject}" if self.subjects > 1 else None,
                    **({} if spec.replacement is _NO_REPLACEMENT
                       else {"replacement": spec.replacement}))
                annotation = Annotated[annotation, declaration]
            definitions[f"f{index}"] = (annotation, ...)
        type_name = f"test.shredding.dyn.{uuid.uuid4().hex}"
        return create_model(
            "RandomEvent", __base__=Event,
            __cls_kwargs__={"type_name": type_name, "register": False}, **definitions)


@st.composite
def model_specs(draw: st.DrawFn, *, replacements: bool = False) -> ModelSpec:
    subjects = draw(st.integers(1, 2))
    fields = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(sorted(_KINDS)))
        optional = draw(st.booleans())
        subject = draw(st.none() | st.integers(0, subjects - 1))
        spec = FieldSpec(kind, optional, subject)
        if replacements and subject is not None and draw(st.booleans()):
            spec = FieldSpec(kind, optional, subject, draw(spec.values()))
        fields.append(spec)
    return ModelSpec(subjects, tuple(fields))


def draw_events(data: st.DataObject, cls: type[Event], spec: ModelSpec,
                pool: list[str]) -> list[Event]:
    events = []
    for _ in range(data.draw(st.integers(1, 3), label="events")):
        values: dict[str, Any] = {f"s{i}": data.draw(st.sampled_from(pool), label=f"s{i}")
                                  for i in range(spec.subjects)}
        for index, field in enumerate(spec.fields):
            values[f"f{index}"] = data.draw(field.values(), label=f"f{index}")
        events.append(cls(**values))
    return events


def same(read: Any, written: Any) -> bool:
    """Whether a value read back is exactly the one written: type, value and representation."""
    if type(read) is not type(written) or read != written:
        return False
    if isinstance(read, float):
        return math.copysign(1.0, read) == math.copysign(1.0, written)
    if isinstance(read, Decimal):
        return bool(read.as_tuple() == written.as_tuple())
    if isinstance(read, datetime):
        return bool(read.utcoffset() == written.utcoffset())
    return True


PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])


class ShreddingContract:
    """Subclasses provide `url` and `vault_url` fixtures naming fresh, empty databases."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError("subclasses provide the URL of a fresh, empty database")

    @pytest.fixture
    def vault_url(self) -> str:
        raise NotImplementedError("subclasses provide the URL of another fresh, empty database")

    @pytest.fixture
    def master(self) -> MasterKey:
        """A new master key."""
        return MasterKey.generate()

    @pytest.fixture
    def store(self, url: str, master: MasterKey) -> Iterator[EventStore]:
        """A store on `url` with `master` that knows the suite's events."""
        with EventStore(url, master_key=master, registry=REGISTRY) as store:
            yield store

    def stored_bytes(self, url: str) -> dict[str, bytes]:
        """What the database holds, by where: here every row of every table."""
        return {f"table {name}": dump for name, dump in table_dumps(url).items()}

    # Nothing personal in plaintext

    def test_no_personal_value_is_stored_in_plaintext(
        self, store: EventStore, url: str
    ) -> None:
        """After appending personal data of every kind, no stored byte holds any of it."""
        store.append("customer-42", distinctive_events())
        stored = self.stored_bytes(url)
        assert {"table shredstore_events", "table shredstore_event_subjects",
                "table keyvault_subjects", "table keyvault_state"} <= set(stored)
        leaks = found_in(stored, PERSONAL)
        assert leaks == [], leaks

    def test_the_plaintext_scan_sees_plain_values(self, store: EventStore, url: str) -> None:
        """The same scan finds every non-personal value, and the subject id in the index."""
        store.append("customer-42", distinctive_events())
        stored = self.stored_bytes(url)
        events_table = {"events": stored["table shredstore_events"]}
        assert sorted(label for label, _ in found_in(events_table, PLAIN)) == sorted(PLAIN)
        assert SUBJECT.encode() in stored["table shredstore_event_subjects"]

    @pytest.mark.parametrize("form", ["optional", "list", "dict"])
    def test_personal_data_marked_inside_a_container_is_sealed_or_refused(
        self, url: str, master: MasterKey, form: str
    ) -> None:
        """PersonalData inside `X | None`, `list[X]` or `dict[str, X]` is refused at class
        definition or sealed, never stored in plaintext."""
        secret = PERSONAL["name"]
        marked = Annotated[str, PersonalData()]
        annotation: Any
        value: Any
        annotation, value = {
            "optional": (marked | None, secret),
            "list": (list[marked], [secret]),
            "dict": (dict[str, marked], {"k": secret}),
        }[form]
        try:
            cls = create_model(
                "Wrapped", __base__=Event,
                __cls_kwargs__={"type_name": f"test.shredding.Wrapped.{form}",
                                "register": False},
                customer_id=(SubjectId, ...), secret=(annotation, ...))
        except ConfigurationError:
            return  # refused where the class is defined: as good as sealed
        registry = EventRegistry()
        registry.register(cls)
        with EventStore(url, master_key=master, registry=registry) as store:
            store.append("s", [cls(customer_id="c-1", secret=value)])
            leaks = found_in(self.stored_bytes(url), {"secret": secret})
            assert leaks == [], leaks

    # Round trips

    def test_every_kind_of_personal_field_round_trips(self, store: EventStore) -> None:
        """str, int, Decimal, date, datetime, enum, Optional (None and set), nested models,
        lists of models and models with their own subject read back equal."""
        events: list[Event] = [
            customer("c-1"),
            PaymentSent(payer_id="c-1", payee_id="c-2", payer_iban="DE44500105175407324931",
                        payee_name="Bo Example", amount_cents=1250),
            profile("c-1"),
            profile("c-1", phone=None, fax=None),
            order("c-1", ["c-2", "c-3"]),
            order("c-1", [], note=None),
            GiftSent(sender_id="c-1", sender_name="Ada",
                     recipient=Line(recipient_id="c-3", recipient_name="Cy", sku="g-1")),
        ]
        store.append("s", events)
        records = list(store.read_stream("s"))
        assert [r.event for r in records] == events
        assert [type(r.event) for r in records] == [type(e) for e in events]
        assert all(r.redacted_fields == frozenset() for r in records)
        read_profile = records[2].event
        assert isinstance(read_profile, ProfileUpdated)
        assert read_profile.tier is Tier.SILVER
        assert read_profile.balance.as_tuple() == Decimal("1234.5600").as_tuple()
        assert read_profile.last_seen.utcoffset() is not None
        assert read_profile.last_seen == datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
        assert [r.personal_fields for r in records] == [
            {"name", "email"},
            {"payer_iban", "payee_name"},
            {"nickname", "age", "balance", "born", "last_seen", "tier", "phone", "fax",
             "home.street", "billing"},
            {"nickname", "age", "balance", "born", "last_seen", "tier", "phone", "fax",
             "home.street", "billing"},
            {"shipping.street", "note", "lines.0.recipient_name", "lines.1.recipient_name"},
            {"shipping.street", "note"},
            {"sender_name", "recipient.recipient_name"},
        ]

    def test_events_without_personal_data_are_stored_as_before(
        self, store: EventStore, url: str
    ) -> None:
        """Events with no personal field (with or without a subject) have no personal column."""
        written = [Noted(text="hello"), ReferralMade(referrer_id="c-1", code="R1")]
        store.append("s", written)
        records = list(store.read_stream("s"))
        assert [r.event for r in records] == written
        assert all(r.personal_fields == frozenset() for r in records)
        assert [row[0] for row in raw_rows(
            url, "SELECT personal FROM shredstore_events ORDER BY position")] == [
            None, None]
        assert store.subject_status("c-1").state == "unknown"

    # Erasure

    def test_erasing_one_subject_of_two_redacts_only_its_fields(self, store: EventStore) -> None:
        """Erasing the payee redacts payee_name only; the payer's IBAN still reads."""
        payment = PaymentSent(payer_id="payer-1", payee_id="payee-1",
                              payer_iban="DE44500105175407324931", payee_name="Bo Example",
                              amount_cents=1250)
        store.append("s", [payment, customer("payee-1")])
        result = store.erase_subject("payee-1", reason="Art. 17", request_id="REQ-1")
        assert (result.already_erased, result.held_key) == (False, True)
        first, second = store.read_stream("s")
        assert isinstance(first.event, PaymentSent)
        assert is_redacted(first.event.payee_name)
        assert first.redacted_fields == {"payee_name"}
        assert first.event == payment.model_copy(update={"payee_name": REDACTED})
        assert second.redacted_fields == {"name", "email"}
        assert store.subject_status("payee-1").state == "erased"
        assert store.subject_status("payer-1").state == "active"

    def test_erasing_the_other_subject_redacts_the_other_fields(self, store: EventStore) -> None:
        """Erasing the payer redacts payer_iban only; payee_name still reads."""
        payment = PaymentSent(payer_id="payer-1", payee_id="payee-1",
                              payer_iban="DE44500105175407324931", payee_name="Bo Example",
                              amount_cents=1250)
        store.append("s", [payment])
        store.erase_subject("payer-1")
        record = only(store.read_stream("s"))
        assert record.event == payment.model_copy(update={"payer_iban": REDACTED})
        assert record.redacted_fields == {"payer_iban"}

    def test_a_declared_replacement_stands_in_for_an_erased_field(
        self, store: EventStore
    ) -> None:
        """An erased field reads as its declared replacement, else REDACTED; both are named."""
        store.append("s", [customer("c-1"), customer("c-2", name="Bo", email="bo@example.org")])
        store.erase_subject("c-1")
        erased, kept = store.read_stream("s")
        assert isinstance(erased.event, CustomerRegistered)
        assert is_redacted(erased.event.name)
        assert erased.event.email == ERASED_EMAIL
        assert erased.event.credit_limit == 100
        assert erased.event.event_id == erased.event_id
        assert erased.redacted_fields == {"name", "email"}
        assert erased.personal_fields == {"name", "email"}
        assert kept.event == customer("c-2", name="Bo", email="bo@example.org").model_copy(
            update={"event_id": kept.event_id})
        assert kept.redacted_fields == frozenset()

    def test_erasure_redacts_every_kind_of_personal_field(self, store: EventStore) -> None:
        """Erasing the subject redacts scalars, Optionals (set or None), a nested model's
        personal field and a whole personal nested model; plain fields are untouched."""
        written = [profile("c-1"), profile("c-1", phone=None, fax=None)]
        store.append("s", written)
        store.erase_subject("c-1")
        for record, event in zip(store.read_stream("s"), written, strict=True):
            assert isinstance(record.event, ProfileUpdated)
            assert record.event == event.model_copy(update={
                "nickname": REDACTED, "age": REDACTED, "balance": REDACTED, "born": REDACTED,
                "last_seen": REDACTED, "tier": REDACTED, "phone": REDACTED, "fax": None,
                "home": Address.model_construct(street=ANY_REDACTED, city="Hometown"),
                "billing": REDACTED,
            })
            assert is_redacted(record.event.home.street)
            assert record.event.home.city == "Hometown"
            assert record.redacted_fields == {
                "nickname", "age", "balance", "born", "last_seen", "tier", "phone", "fax",
                "home.street", "billing"}

    def test_erasing_the_enclosing_subject_spares_lines_with_their_own(
        self, store: EventStore
    ) -> None:
        """Erasing an order's customer redacts its nested street and note, not the lines'
        recipients' names."""
        written = order("c-1", ["r-1", "r-2"])
        store.append("s", [written])
        store.erase_subject("c-1")
        record = only(store.read_stream("s"))
        assert isinstance(record.event, OrderPlaced)
        assert record.redacted_fields == {"shipping.street", "note"}
        assert is_redacted(record.event.shipping.street)
        assert record.event.shipping.city == "Porttown"
        assert is_redacted(record.event.note)
        assert record.event.lines == written.lines

    def test_erasing_a_lines_recipient_redacts_only_that_line(self, store: EventStore) -> None:
        """Erasing one line's recipient redacts that line's name and nothing else."""
        written = order("c-1", ["r-1", "r-2", "r-3"])
        store.append("s", [written])
        store.erase_subject("r-2")
        record = only(store.read_stream("s"))
        assert isinstance(record.event, OrderPlaced)
        assert record.redacted_fields == {"lines.1.recipient_name"}
        assert [line.recipient_name for line in record.event.lines] == [
            "Recipient 0", REDACTED, "Recipient 2"]
        assert [line.sku for line in record.event.lines] == ["sku-0", "sku-1", "sku-2"]
        assert record.event.lines[1].recipient_id == "r-2"
        assert record.event.shipping == written.shipping
        assert record.event.note == written.note

    def test_erasing_a_nested_models_own_subject(self, store: EventStore) -> None:
        """Erasing the subject of a nested model redacts its field, not the sender's."""
        gift = GiftSent(sender_id="c-1", sender_name="Ada",
                        recipient=Line(recipient_id="c-2", recipient_name="Cy", sku="g-1"))
        store.append("s", [gift])
        store.erase_subject("c-2")
        record = only(store.read_stream("s"))
        assert isinstance(record.event, GiftSent)
        assert record.redacted_fields == {"recipient.recipient_name"}
        assert record.event.sender_name == "Ada"
        assert is_redacted(record.event.recipient.recipient_name)
        assert record.event.recipient.sku == "g-1"

    def test_erasing_twice_is_idempotent(self, store: EventStore) -> None:
        """A second erase of a subject reports it was already erased and changes nothing."""
        store.append("s", [customer("c-1")])
        first = store.erase_subject("c-1", reason="Art. 17", request_id="REQ-1")
        again = store.erase_subject("c-1", reason="again", request_id="REQ-2")
        assert again.already_erased is True
        assert again.erased_at == first.erased_at
        status = store.subject_status("c-1")
        assert (status.state, status.request_id, status.reason) == ("erased", "REQ-1", "Art. 17")
        assert only(store.read_stream("s")).redacted_fields == {"name", "email"}

    def test_an_erasure_is_seen_by_every_store_on_the_database(
        self, store: EventStore, url: str, master: MasterKey
    ) -> None:
        """A store that read a subject's data before another store erased it reads it redacted
        at once, and so does a store opened afterwards."""
        store.append("s", [customer("c-1")])
        with EventStore(url, master_key=master, registry=REGISTRY) as other:
            assert only(other.read_stream("s")).redacted_fields == frozenset()
            store.erase_subject("c-1")
            assert only(other.read_stream("s")).redacted_fields == {"name", "email"}
        with EventStore(url, master_key=master, registry=REGISTRY) as later:
            assert only(later.read_stream("s")).redacted_fields == {"name", "email"}

    # Appending for an erased subject

    @pytest.mark.parametrize("event", [
        pytest.param(customer("gone"), id="own-subject"),
        pytest.param(PaymentSent(payer_id="kept", payee_id="gone", payer_iban="x",
                                 payee_name="y", amount_cents=1), id="second-subject"),
        pytest.param(order("kept", ["kept", "gone"]), id="line-recipient"),
    ])
    def test_appending_personal_data_for_an_erased_subject_writes_nothing(
        self, store: EventStore, url: str, event: Event
    ) -> None:
        """An append holding personal data of an erased subject raises SubjectErasedError and
        leaves the log, the stream and the subject index as they were."""
        store.append("s", [customer("kept"), customer("gone")])
        store.erase_subject("gone")
        head = store.head()
        index = raw_rows(url, "SELECT subject_id, position FROM shredstore_event_subjects "
                         "ORDER BY position, subject_id")
        batch = [customer("kept"), event]
        with pytest.raises(SubjectErasedError) as raised:
            store.append("s", batch, expected_version=2)
        assert isinstance(raised.value, keyvault.SubjectErasedError)
        assert raised.value.subject_id == "gone"
        assert store.stream_version("s") == 2
        assert store.head() == head
        assert len(list(store.read_all())) == 3  # two customers, one ledger entry
        assert raw_rows(url, "SELECT subject_id, position FROM shredstore_event_subjects "
                        "ORDER BY position, subject_id") == index
        assert store.subject_status("gone").state == "erased"
        assert store.verify().ok

    def test_a_retry_of_a_committed_append_still_returns_its_result_after_erasure(
        self, store: EventStore
    ) -> None:
        """Retrying an append that committed returns its first result even if the subject was
        erased since: the events are stored, so "nothing was written" would mislead."""
        batch = [customer("c-1")]
        first = store.append("s", batch, expected_version=NO_STREAM)
        store.erase_subject("c-1")
        assert store.append("s", batch, expected_version=NO_STREAM) == first
        assert store.stream_version("s") == 1

    # A new subject's key is stored by the append that first uses it

    def test_a_new_subjects_key_is_stored_only_if_the_append_commits(
        self, store: EventStore
    ) -> None:
        """The key of a subject first seen in an append is written in the append's own
        transaction: an append that fails leaves no key behind, one that commits leaves one."""
        store.append("s", [customer("c-0")])
        with pytest.raises(WrongExpectedVersion):
            store.append("s", [customer("c-1")], expected_version=NO_STREAM)
        assert store.subject_status("c-1").state == "unknown"
        store.append("s", [customer("c-1")], expected_version=1)
        assert store.subject_status("c-1").state == "active"
        event = only(store.read_stream("s", from_version=2)).event
        assert isinstance(event, CustomerRegistered)
        assert event.name == "Ada Example"

    def test_a_key_created_meanwhile_by_another_store_wins_and_the_append_seals_again(
        self, store: EventStore, url: str, master: MasterKey,
        monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If another process stores the new subject's key between this append's sealing and
        its commit, the append seals again with the stored key: one key, and the data opens."""
        sealed_by_other: list[bytes] = []
        with EventStore(url, master_key=master, registry=REGISTRY) as other:
            interleave_after_prepare(
                monkeypatch, store,
                lambda: sealed_by_other.append(other.vault.seal("c-1", b"first")))
            result = store.append("s", [customer("c-1")])
            fingerprint = other.subject_status("c-1").key_fingerprint
        assert result.version == 1
        assert store.subject_status("c-1").key_fingerprint == fingerprint
        assert raw_rows(url, "SELECT count(*) FROM keyvault_subjects")[0][0] == 1
        with EventStore(url, master_key=master, registry=REGISTRY) as fresh:
            event = only(fresh.read_stream("s")).event
            assert isinstance(event, CustomerRegistered)
            assert (event.name, event.email) == ("Ada Example", "ada@example.org")
            assert fresh.vault.open("c-1", sealed_by_other[0]) == b"first"

    def test_an_erasure_meanwhile_of_a_new_subject_refuses_the_append(
        self, store: EventStore, url: str, master: MasterKey,
        monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If the new subject is erased between this append's sealing and its commit, the
        append raises SubjectErasedError and writes nothing, and no key is created."""
        with EventStore(url, master_key=master, registry=REGISTRY) as other:
            interleave_after_prepare(monkeypatch, store, lambda: other.erase_subject("c-1"))
            with pytest.raises(SubjectErasedError):
                store.append("s", [customer("c-1")])
        assert [r.stream_id for r in store.read_all()] == ["$erasures"]  # the ledger entry
        status = store.subject_status("c-1")
        assert (status.state, status.key_fingerprint) == ("erased", None)
        assert raw_rows(url, "SELECT count(*) FROM keyvault_subjects "
                        "WHERE wrapped_key IS NOT NULL")[0][0] == 0

    # Tampering, master keys and configuration

    @pytest.mark.parametrize("change", [
        "flip-first-byte", "flip-last-byte", "truncate", "other-paths",
        "from-another-event", "to-another-subject",
    ])
    def test_tampered_ciphertext_raises_tampered_error(
        self, store: EventStore, url: str, change: str
    ) -> None:
        """Altered, cut, re-pathed, transplanted or re-labelled sealed data raises
        TamperedError on read, never reads as redacted."""
        store.append("s", [customer("c-1"), customer("c-1"), customer("c-3")])
        groups = personal_column(url, 1)
        (group,) = groups
        sealed = base64.b64decode(group["sealed"])
        if change == "flip-first-byte":
            group["sealed"] = base64.b64encode(bytes([sealed[0] ^ 1]) + sealed[1:]).decode()
        elif change == "flip-last-byte":
            group["sealed"] = base64.b64encode(sealed[:-1] + bytes([sealed[-1] ^ 1])).decode()
        elif change == "truncate":
            group["sealed"] = base64.b64encode(sealed[:20]).decode()
        elif change == "other-paths":
            group["paths"] = [["email"], ["name"]]
        elif change == "from-another-event":
            group["sealed"] = personal_column(url, 2)[0]["sealed"]
        else:
            group["subject"] = "c-3"
        overwrite_personal(url, 1, json.dumps(groups))
        with pytest.raises(TamperedError):
            list(store.read_all())
        with pytest.raises(TamperedError):
            list(store.read_stream("s", limit=1))
        assert {f.position for f in store.verify().findings} >= {1}
        # The untouched events of the same subject still read.
        assert [r.redacted_fields for r in store.read_all(after=1)] == [frozenset()] * 2

    @pytest.mark.parametrize("personal", [
        pytest.param("null", id="json-null"),
        pytest.param("7", id="json-number"),
        pytest.param('"text"', id="json-string"),
        pytest.param("[7]", id="list-of-numbers"),
        pytest.param('[{"subject": "c-1", "paths": [["name"], ["email"]]}]', id="no-sealed"),
        pytest.param('[{"subject": "c-1", "paths": [["name"], ["email"]], "sealed": "*"}]',
                     id="sealed-not-base64"),
        pytest.param('[{"subject": "c-1", "paths": [["name"], ["email"]], "sealed": "ÄÖÜ="}]',
                     id="sealed-not-ascii"),
        pytest.param('[{"subject": 7, "paths": [["name"], ["email"]], "sealed": "QUJD"}]',
                     id="subject-not-a-string"),
    ])
    def test_a_malformed_personal_column_raises_tampered_error(
        self, store: EventStore, url: str, personal: str
    ) -> None:
        """A personal column that is not a list of well-formed groups raises TamperedError."""
        store.append("s", [customer("c-1")])
        overwrite_personal(url, 1, personal)
        with pytest.raises(TamperedError):
            list(store.read_all())

    def test_a_group_relabelled_to_an_unknown_subject_is_not_redacted(
        self, store: EventStore, url: str
    ) -> None:
        """Sealed data moved to a subject the vault never knew raises an error, not REDACTED."""
        store.append("s", [customer("c-1")])
        groups = personal_column(url, 1)
        groups[0]["subject"] = "never-seen"
        overwrite_personal(url, 1, json.dumps(groups))
        with pytest.raises((TamperedError, keyvault.KeyNotFoundError)):
            list(store.read_all())

    def test_a_wrong_master_key_is_refused_when_the_store_opens(
        self, store: EventStore, url: str, master: MasterKey
    ) -> None:
        """Opening a store with another master key raises WrongMasterKeyError, a KeyVaultError
        naming neither key's secret; the right key still reads everything."""
        store.append("s", [customer("c-1")])
        wrong = MasterKey.generate()
        with pytest.raises(WrongMasterKeyError, match="wrong master key") as raised:
            EventStore(url, master_key=wrong, registry=REGISTRY)
        assert isinstance(raised.value, KeyVaultError)
        assert wrong.to_base64() not in str(raised.value)
        assert master.to_base64() not in str(raised.value)
        with EventStore(url, master_key=master, registry=REGISTRY) as again:
            assert only(again.read_all()).redacted_fields == frozenset()
            assert only(again.read_all()).event == only(store.read_all()).event

    def test_keys_wrapped_by_an_unrecorded_master_key_are_not_redacted(
        self, store: EventStore, url: str
    ) -> None:
        """If the vault lost its record of the master key, a store opened with another key
        raises WrongMasterKeyError on reading the old keys, never reads them as redacted."""
        store.append("s", [customer("c-1")])
        raw_rows(url, "UPDATE keyvault_state SET master_key_id = NULL")
        with EventStore(url, master_key=MasterKey.generate(), registry=REGISTRY) as other:
            with pytest.raises(WrongMasterKeyError):
                list(other.read_all())
            assert other.subject_status("c-1").state == "active"

    def test_a_store_without_a_master_key_refuses_personal_data(
        self, store: EventStore, url: str
    ) -> None:
        """Without a master key, appending personal data is a ConfigurationError that writes
        nothing, and reading it is one too (never REDACTED); other events work."""
        store.append("s", [customer("c-1")])
        with EventStore(url, registry=REGISTRY) as keyless:
            with pytest.raises(ConfigurationError, match="master_key"):
                keyless.append("s", [Noted(text="first"), customer("c-2")])
            assert keyless.stream_version("s") == 1
            assert keyless.subject_status("c-2").state == "unknown"
            with pytest.raises(ConfigurationError, match="master_key"):
                list(keyless.read_all())
            keyless.append("t", [Noted(text="plain"), ReferralMade(referrer_id="c-1", code="R")])
            assert [r.event.text for r in keyless.read_stream("t", limit=1)] == [  # type: ignore[attr-defined]
                "plain"]

    def test_a_store_without_a_master_key_can_erase(
        self, store: EventStore, url: str
    ) -> None:
        """erase_subject and subject_status work without a master key."""
        store.append("s", [customer("c-1")])
        with EventStore(url, registry=REGISTRY) as keyless:
            assert keyless.erase_subject("c-1").held_key is True
            assert keyless.subject_status("c-1").state == "erased"
        assert only(store.read_stream("s")).redacted_fields == {"name", "email"}

    # The generic read

    def test_the_generic_read_opens_personal_fields_without_the_class(
        self, store: EventStore, url: str, master: MasterKey
    ) -> None:
        """With an empty registry every event reads as an UnknownEvent holding its data as a
        dict, personal fields opened."""
        written: list[Event] = [customer("c-1"), profile("c-1"), order("c-1", ["r-1"]),
                                Noted(text="plain")]
        store.append("s", written)
        with EventStore(url, master_key=master, registry=EventRegistry()) as generic:
            records = list(generic.read_stream("s"))
        assert all(isinstance(r.event, UnknownEvent) for r in records)
        assert [r.event.type_name for r in records] == [  # type: ignore[attr-defined]
            type(e).__event_type__ for e in written]
        assert [r.event.data for r in records] == [  # type: ignore[attr-defined]
            e.model_dump(mode="json") for e in written]
        assert [r.event.event_id for r in records] == [e.event_id for e in written]
        assert all(r.redacted_fields == frozenset() for r in records)

    def test_the_generic_read_shows_erased_fields_as_redacted(
        self, store: EventStore, url: str, master: MasterKey
    ) -> None:
        """With an empty registry an erased subject's fields read as REDACTED (no class, so no
        replacement), named in redacted_fields; other subjects' fields are opened."""
        payment = PaymentSent(payer_id="c-1", payee_id="c-2", payer_iban="DE44500105175407324931",
                              payee_name="Bo Example", amount_cents=1250)
        written: list[Event] = [customer("c-1"), payment, order("c-2", ["c-1", "c-3"])]
        store.append("s", written)
        store.erase_subject("c-1")
        with EventStore(url, master_key=master, registry=EventRegistry()) as generic:
            records = list(generic.read_stream("s"))
        expected = [e.model_dump(mode="json") for e in written]
        expected[0].update(name=REDACTED, email=REDACTED)
        expected[1].update(payer_iban=REDACTED)
        expected[2]["lines"][0]["recipient_name"] = REDACTED
        assert [r.event.data for r in records] == expected  # type: ignore[attr-defined]
        assert [r.redacted_fields for r in records] == [
            {"name", "email"}, {"payer_iban"}, {"lines.0.recipient_name"}]
        assert records[0].event.data["name"] is REDACTED  # type: ignore[attr-defined]

    # Finding a subject's events

    def test_read_subject_finds_exactly_the_events_naming_the_subject(
        self, store: EventStore
    ) -> None:
        """read_subject yields, in order, the events naming the subject anywhere: as the
        subject, a second subject, a line recipient, a nested model or a SubjectId only."""
        events: list[Event] = [
            customer("s-7"),                                          # 1 yes
            customer("s-77"),                                         # 2 no: a longer id
            PaymentSent(payer_id="s-1", payee_id="s-7", payer_iban="x", payee_name="y",
                        amount_cents=1),                              # 3 yes: payee
            order("s-2", ["s-9", "s-7"]),                             # 4 yes: a line
            order("s-2", ["s-9"]),                                    # 5 no
            ReferralMade(referrer_id="s-7", code="R"),                # 6 yes: no personal data
            GiftSent(sender_id="s-1", sender_name="x",
                     recipient=Line(recipient_id="s-7", recipient_name="y", sku="z")),  # 7 yes
            Noted(text="s-7"),                                        # 8 no: only text
        ]
        store.append("a", events[:4])
        store.append("b", events[4:])
        assert [r.position for r in store.read_subject("s-7")] == [1, 3, 4, 6, 7]
        assert [r.event for r in store.read_subject("s-7")] == [
            events[0], events[2], events[3], events[5], events[6]]
        assert [r.position for r in store.read_subject("s-7", after=3)] == [4, 6, 7]
        assert [r.position for r in store.read_subject("s-9")] == [4, 5]
        assert [r.position for r in store.read_subject("s-2")] == [4, 5]
        assert list(store.read_subject("nobody")) == []

    def test_read_subject_after_erasure_yields_the_events_redacted(
        self, store: EventStore
    ) -> None:
        """An erased subject's events are still found, with its fields redacted."""
        store.append("s", [customer("s-7"), order("s-2", ["s-9", "s-7"]),
                           ReferralMade(referrer_id="s-7", code="R")])
        store.erase_subject("s-7")
        assert [(r.position, r.redacted_fields) for r in store.read_subject("s-7")] == [
            (1, {"name", "email"}), (2, {"lines.1.recipient_name"}), (3, frozenset()),
            (4, frozenset())]  # the last: the erasure ledger's entry

    # A vault in another database

    def test_a_vault_in_another_database_shreds_the_same(
        self, url: str, vault_url: str, master: MasterKey
    ) -> None:
        """With vault_url, keys live in the other database and erasure works as with one."""
        with EventStore(url, master_key=master, vault_url=vault_url, registry=REGISTRY) as store:
            payment = PaymentSent(payer_id="c-1", payee_id="c-2", payer_iban="iban-1",
                                  payee_name="Bo", amount_cents=5)
            store.append("s", [customer("c-1"), payment])
            store.erase_subject("c-2")
            first, second = store.read_stream("s")
            assert first.redacted_fields == frozenset()
            assert second.event == payment.model_copy(update={"payee_name": REDACTED})
            with pytest.raises(SubjectErasedError):
                store.append("s", [customer("c-2")])
            assert store.stream_version("s") == 2
        assert {name for (name,) in raw_rows(
            vault_url, "SELECT subject_id FROM keyvault_subjects")} == {"c-1", "c-2"}
        assert "keyvault_subjects" not in table_dumps(url)
        with EventStore(url, master_key=master, vault_url=vault_url, registry=REGISTRY) as reopened:
            assert [r.redacted_fields for r in reopened.read_stream("s")] == [
                frozenset(), {"payee_name"}]
            assert reopened.subject_status("c-2").state == "erased"

    def test_data_sealed_with_another_vault_is_not_redacted(
        self, store: EventStore, url: str, vault_url: str, master: MasterKey
    ) -> None:
        """Read with a vault that never held the keys, personal data raises KeyNotFoundError
        rather than reading as redacted."""
        store.append("s", [customer("c-1")])
        with EventStore(url, master_key=master, vault_url=vault_url,
                        registry=REGISTRY) as elsewhere, \
                pytest.raises(keyvault.KeyNotFoundError):
            list(elsewhere.read_all())

    # Properties

    @PROPERTY_SETTINGS
    @given(spec=model_specs(), data=st.data())
    def test_random_event_models_round_trip_exactly(
        self, url: str, master: MasterKey, spec: ModelSpec, data: st.DataObject
    ) -> None:
        """Events of any model mixing personal and plain fields of any supported type read back
        exactly: same values, same types."""
        cls = spec.build()
        registry = EventRegistry()
        registry.register(cls)
        prefix = uuid.uuid4().hex
        events = draw_events(data, cls, spec, [f"{prefix}-{n}" for n in range(3)])
        with EventStore(url, master_key=master, registry=registry) as store:
            store.append(prefix, events)
            records = list(store.read_stream(prefix))
        assert [r.event for r in records] == events
        for record, event in zip(records, events, strict=True):
            assert type(record.event) is cls
            for name in cls.model_fields:
                assert same(getattr(record.event, name), getattr(event, name)), name
            assert record.redacted_fields == frozenset()
            assert record.personal_fields == {
                f"f{i}" for i, field in enumerate(spec.fields) if field.subject is not None}

    @PROPERTY_SETTINGS
    @given(spec=model_specs(replacements=True), data=st.data())
    def test_erasing_random_subjects_redacts_exactly_their_fields(
        self, url: str, master: MasterKey, spec: ModelSpec, data: st.DataObject
    ) -> None:
        """After erasing any subset of subjects, exactly their fields read as the replacement
        or REDACTED, and every other field reads back exactly."""
        cls = spec.build()
        registry = EventRegistry()
        registry.register(cls)
        prefix = uuid.uuid4().hex
        pool = [f"{prefix}-{n}" for n in range(3)]
        events = draw_events(data, cls, spec, pool)
        erased = data.draw(st.sets(st.sampled_from(pool)), label="erased")
        with EventStore(url, master_key=master, registry=registry) as store:
            store.append(prefix, events)
            for subject in sorted(erased):
                store.erase_subject(subject)
            records = list(store.read_stream(prefix))
        for record, event in zip(records, events, strict=True):
            assert type(record.event) is cls
            redacted = set()
            for name in cls.model_fields:
                read, written = getattr(record.event, name), getattr(event, name)
                field = spec.fields[int(name[1:])] if name.startswith("f") else None
                if field is None or field.subject is None:
                    assert same(read, written), name
                elif getattr(event, f"s{field.subject}") in erased:
                    redacted.add(name)
                    if field.replacement is _NO_REPLACEMENT:
                        assert read is REDACTED, name
                    else:
                        assert same(read, field.replacement), name
                else:
                    assert same(read, written), name
            assert record.redacted_fields == redacted

