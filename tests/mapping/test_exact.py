"""Classes proven to read back exactly skip the append's read-back check, and flat ones the
placeholder split: the proof must admit only what round-trips, each instance must still be
checked, and the fast path must store what the full path stores."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
    field_validator,
)

from shredstore import REDACTED, Event, InvalidEventError, PersonalData, SubjectId
from shredstore.events import EventRegistry
from shredstore.mapping import exact
from shredstore.mapping.encoding import encode_payload, encode_values
from shredstore.mapping.exact import exact_form
from shredstore.mapping.mapper import EventMapper
from shredstore.mapping.split import split
from shredstore.mapping.validation import check_reads_back
from shredstore.personal import plan_of
from shredstore.storage.chain import StoredRow


class Plan(enum.Enum):
    FREE = "free"
    PAID = "paid"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Rights(enum.Flag):
    READ = 1
    WRITE = 2


class Registered(Event, type_name="test.exact.Registered", register=False):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str | None, PersonalData()] = None
    born: Annotated[date, PersonalData()] = date(2000, 1, 1)
    plan: Plan = Plan.FREE
    level: Level = Level.LOW
    kind: Literal["person", "firm", 3] = "person"
    credit: int = 0
    active: bool = True
    at: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    ref: UUID | None = None
    note: str = ""


class Renamed(Event, type_name="test.exact.Renamed", register=False):
    shop: str


class Forgettable(Event, type_name="test.exact.Forgettable", register=False):
    __keeps_redacted__ = True
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]


class WithStrictText(Event, type_name="test.exact.WithStrictText", register=False):
    code: Annotated[str, Field(strict=True)]
    count: Annotated[int, Field(strict=True)] = 0


@pytest.mark.parametrize("cls", [Registered, Renamed, WithStrictText])
def test_plain_fields_are_proven(cls: type[Event]) -> None:
    assert exact_form(cls, plan_of(cls)) is not None


class WithFloat(Event, type_name="test.exact.WithFloat", register=False):
    ratio: float  # NaN and infinity are stored as null


class WithDecimal(Event, type_name="test.exact.WithDecimal", register=False):
    amount: Decimal


class WithAny(Event, type_name="test.exact.WithAny", register=False):
    loose: Any


class WithTuple(Event, type_name="test.exact.WithTuple", register=False):
    pair: tuple[int, int]


class WithFlag(Event, type_name="test.exact.WithFlag", register=False):
    rights: Rights


class WithDelta(Event, type_name="test.exact.WithDelta", register=False):
    wait: timedelta


class WithConstraint(Event, type_name="test.exact.WithConstraint", register=False):
    code: Annotated[str, Field(max_length=3)]


class WithStrip(Event, type_name="test.exact.WithStrip", register=False):
    model_config = ConfigDict(str_strip_whitespace=True)
    code: str


class WithValidator(Event, type_name="test.exact.WithValidator", register=False):
    code: str

    @field_validator("code")
    @classmethod
    def upper(cls, value: str) -> str:
        return value.upper()


class WithAlias(Event, type_name="test.exact.WithAlias", register=False):
    code: str = Field(validation_alias=AliasChoices("code", "c"), serialization_alias="c")


class WithExcluded(Event, type_name="test.exact.WithExcluded", register=False):
    code: str = Field(default="", exclude=True)


class WithComputed(Event, type_name="test.exact.WithComputed", register=False):
    code: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def length(self) -> int:
        return len(self.code)


class WithExtra(Event, type_name="test.exact.WithExtra", register=False):
    model_config = ConfigDict(extra="allow")
    code: str


class WithTemporal(Event, type_name="test.exact.WithTemporal", register=False):
    model_config = ConfigDict(ser_json_temporal="seconds")
    at: datetime


class WithPostInit(Event, type_name="test.exact.WithPostInit", register=False):
    code: str

    def model_post_init(self, context: Any, /) -> None:
        """Changes nothing here: that the class has one is what rules the proof out."""


class WithStrictUuid(Event, type_name="test.exact.WithStrictUuid", register=False):
    ref: Annotated[UUID, Field(strict=True)]  # a reader's parsed JSON holds text: refused


class Inner(Event, type_name="test.exact.Inner", register=False):
    code: str


class WithNested(Event, type_name="test.exact.WithNested", register=False):
    inner: Inner


@pytest.mark.parametrize("cls", [WithFloat, WithDecimal, WithAny, WithTuple, WithFlag,
                                 WithDelta, WithConstraint, WithStrip, WithValidator,
                                 WithAlias, WithExcluded, WithComputed, WithExtra,
                                 WithTemporal, WithPostInit, WithNested, WithStrictUuid])
def test_what_may_not_read_back_exactly_is_not_proven(cls: type[Event]) -> None:
    """Each of these may change a value on its way out or back in (or holds a type this proof
    does not cover): such classes keep the full read-back check."""
    assert exact_form(cls, plan_of(cls)) is None


def test_a_strict_uuid_field_is_refused_by_the_full_check() -> None:
    """Why a strict UUID is not proven: a reader validates parsed JSON, where it is text."""
    registry = EventRegistry()
    registry.register(WithStrictUuid)
    with pytest.raises(InvalidEventError, match="would not read back"):
        EventMapper(registry).to_rows([WithStrictUuid(ref=UUID(int=7))], "{}", None)


@pytest.mark.parametrize("offset", [timedelta(seconds=30), timedelta(microseconds=1),
                                    -timedelta(hours=23, minutes=59, seconds=59)])
def test_a_time_whose_offset_json_cannot_hold_is_not_vouched_for(offset: timedelta) -> None:
    """pydantic writes a UTC offset as hours and minutes: seconds would be lost, the instant
    moved. Such a time takes the full path, whose check refuses it."""
    event = Registered(customer_id="c-1", name="Ann",
                       at=datetime(2026, 1, 1, tzinfo=timezone(offset)))
    form = exact_form(Registered, plan_of(Registered))
    assert form is not None
    assert not form.holds(event)
    with pytest.raises(InvalidEventError, match="would not read back"):
        _mapper().to_rows([event], "{}", None)


def test_a_time_in_a_zone_takes_the_full_path() -> None:
    """A zone's rules do not survive JSON (a fixed offset comes back): the full check decides,
    as it did before."""
    event = Registered(customer_id="c-1", name="Ann",
                       at=datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris")))
    form = exact_form(Registered, plan_of(Registered))
    assert form is not None
    assert not form.holds(event)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_moments = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))])
                        | st.none())
_any_offset = st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                                                max_value=timedelta(hours=23, minutes=59))
                       | st.integers(-1439, 1439).map(lambda minutes: timedelta(minutes=minutes)))


@given(at=st.datetimes(timezones=_any_offset | st.none()))
def test_a_time_is_vouched_for_only_where_it_reads_back(at: datetime) -> None:
    event = Registered(customer_id="c-1", name="Ann", at=at)
    form = exact_form(Registered, plan_of(Registered))
    assert form is not None
    offset = at.utcoffset()
    assert form.holds(event) == (offset is None or offset % timedelta(minutes=1) == timedelta(0))
    if form.holds(event):
        quick = form.split(event.model_dump(mode="json", by_alias=True))
        check_reads_back(Registered, event, encode_payload(quick.data, Registered), quick.groups,
                         {subject: encode_values(values.values(), Registered)
                          for subject, values in quick.groups.items()})


@given(customer=_text.filter(bool), name=_text, email=st.none() | _text, born=st.dates(),
       plan=st.sampled_from(Plan), level=st.sampled_from(Level),
       kind=st.sampled_from(["person", "firm", 3]), credit=st.integers(), active=st.booleans(),
       at=_moments, ref=st.none() | st.uuids(), note=_text)
def test_a_proven_class_reads_back_and_splits_as_the_full_path_does(  # noqa: PLR0917
        customer: str, name: str, email: str | None, born: date, plan: Plan, level: Level,
        kind: Any, credit: int, active: bool, at: datetime, ref: UUID | None, note: str) -> None:
    event = Registered(customer_id=customer, name=name, email=email, born=born, plan=plan,
                       level=level, kind=kind, credit=credit, active=active, at=at, ref=ref,
                       note=note)
    form = exact_form(Registered, plan_of(Registered))
    assert form is not None
    assert form.holds(event)
    quick = form.split(event.model_dump(mode="json", by_alias=True))
    full = split(event, plan_of(Registered))
    assert quick == full
    payload = encode_payload(quick.data, Registered)
    plaintexts = {subject: encode_values(values.values(), Registered)
                  for subject, values in quick.groups.items()}
    check_reads_back(Registered, event, payload, quick.groups, plaintexts)  # what it skips


def _mapper() -> EventMapper:
    registry = EventRegistry()
    registry.register(Registered)
    registry.register(Forgettable)
    return EventMapper(registry)


@pytest.mark.parametrize(("field", "value"), [
    ("credit", "12"), ("credit", True), ("active", 1), ("plan", "free"), ("kind", "other"),
    ("at", date(2026, 1, 1)), ("born", datetime(2026, 1, 1, tzinfo=UTC)), ("name", 3),
    ("name", REDACTED), ("ref", "8a4c2f0e-0000-4000-8000-000000000000"),
])
def test_an_instance_whose_values_do_not_fit_is_not_vouched_for(field: str, value: Any) -> None:
    """`model_construct` (or an assignment past validation) may put anything in a field: such
    an instance is not vouched for by its class, and takes the full path."""
    fields = Registered(customer_id="c-1", name="Ann").__dict__ | {field: value}
    form = exact_form(Registered, plan_of(Registered))
    assert form is not None
    assert not form.holds(Registered.model_construct(**fields))


def test_an_instance_missing_a_field_is_not_vouched_for() -> None:
    event = Registered(customer_id="c-1", name="Ann")
    del event.__dict__["note"]
    form = exact_form(Registered, plan_of(Registered))
    assert form is not None
    assert not form.holds(event)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # the str in an int field
@pytest.mark.parametrize(("field", "value"), [("credit", "12"), ("name", REDACTED),
                                              ("plan", "free")])
def test_the_full_path_still_refuses_what_would_not_read_back(field: str, value: Any) -> None:
    fields = Registered(customer_id="c-1", name="Ann").__dict__ | {field: value}
    with pytest.raises(InvalidEventError):
        _mapper().to_rows([Registered.model_construct(**fields)], "{}", None)


def test_a_kept_redacted_value_takes_the_full_path(ring: Any) -> None:
    """REDACTED in a class that keeps it is stored as a redacted group: the full path's."""
    event = Forgettable(customer_id="c-1", name=REDACTED)
    form = exact_form(Forgettable, plan_of(Forgettable))
    assert form is not None
    assert not form.holds(event)
    (row,) = _mapper().to_rows([event], "{}", ring)
    assert row.personal is not None
    assert '"sealed"' not in row.personal
    assert "c-1" in row.subjects
    assert not row.sealed_for


def test_the_fast_path_stores_what_the_full_path_stores(ring: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same payload and subjects, and sealed values that open to the same event, whichever
    path an event takes."""
    mapper = _mapper()
    event = Registered(customer_id="c-1", name="Ann", email="ann@example.com",
                       at=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC))
    (quick,) = mapper.to_rows([event], "{}", ring)
    monkeypatch.setitem(exact._FORMS, Registered, None)  # not proven: the full path
    (full,) = mapper.to_rows([event], "{}", ring)
    assert (quick.payload, quick.subjects, quick.sealed_for) == (
        full.payload, full.subjects, full.sealed_for)
    for row in (quick, full):
        stored = StoredRow(1, "s", 1, event.event_id, row.event_type, row.schema_version,
                           datetime.now(UTC), row.metadata, row.payload, row.personal, b"", b"",
                           None, None)
        assert mapper.to_recorded(stored, ring).event == event


@pytest.mark.parametrize("field", ["note", "name"])
def test_text_json_cannot_hold_is_refused_on_the_fast_path_too(field: str) -> None:
    """A lone surrogate fits `str` exactly, and JSON cannot hold it: refused, never stored."""
    event = Registered(**{"customer_id": "c-1", "name": "Ann"} | {field: "a\ud800b"})
    form = exact_form(Registered, plan_of(Registered))
    assert form is not None
    assert form.holds(event)
    with pytest.raises(InvalidEventError, match="Registered"):
        _mapper().to_rows([event], "{}", None)


class Colour(enum.StrEnum):
    RED = "red"


_UTC_NOON = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
_CATALOGUE: list[tuple[str, Any, Any]] = [
    ("str", str, "text"), ("int", int, 12), ("bool", bool, True), ("float", float, 1.5),
    ("uuid", UUID, UUID(int=5)), ("date", date, date(2026, 5, 1)),
    ("aware datetime", datetime, _UTC_NOON), ("naive datetime", datetime, datetime(2026, 5, 1)),
    ("offset datetime", datetime, datetime(2026, 5, 1, tzinfo=timezone(timedelta(hours=2)))),
    ("timedelta", timedelta, timedelta(seconds=3)), ("decimal", Decimal, Decimal("1.10")),
    ("bytes", bytes, b"ab"), ("enum", Plan, Plan.PAID), ("int enum", Level, Level.HIGH),
    ("str enum", Colour, Colour.RED), ("flag", Rights, Rights.READ | Rights.WRITE),
    ("literal", Literal["a", 2], 2), ("optional int", int | None, None),
    ("optional uuid", UUID | None, UUID(int=6)), ("list", list[int], [1, 2]),
    ("tuple", tuple[int, str], (1, "a")), ("set", set[int], {1}),
    ("dict", dict[str, int], {"a": 1}),
    ("max length", Annotated[str, Field(max_length=9)], "short"),
    ("strip", Annotated[str, Field(pattern="^[a-z]+$")], "abc"),
    ("greater than", Annotated[int, Field(gt=0)], 3),
    ("strict str", Annotated[str, Field(strict=True)], "s"),
    ("strict int", Annotated[int, Field(strict=True)], 4),
    ("strict bool", Annotated[bool, Field(strict=True)], False),
    ("strict uuid", Annotated[UUID, Field(strict=True)], UUID(int=8)),
    ("strict date", Annotated[date, Field(strict=True)], date(2026, 1, 2)),
    ("strict datetime", Annotated[datetime, Field(strict=True)], _UTC_NOON),
    ("upper", Annotated[str, AfterValidator(str.upper)], "ABC"),
    ("before", Annotated[int, BeforeValidator(int)], 5),
    ("plain serializer", Annotated[int, PlainSerializer(str)], 5),
    ("personal str", Annotated[str, PersonalData()], "Ann"),
    ("personal date", Annotated[date, PersonalData()], date(1990, 1, 1)),
    ("personal strict uuid", Annotated[UUID, Field(strict=True), PersonalData()], UUID(int=9)),
    ("personal replacement", Annotated[str, PersonalData(replacement="")], "x"),
    ("personal optional", Annotated[str | None, PersonalData()], None),
]


_PROVEN = {"str", "int", "bool", "uuid", "date", "aware datetime", "naive datetime",
           "offset datetime", "enum", "int enum", "str enum", "literal", "optional int",
           "optional uuid", "strict str", "strict int", "strict bool", "personal str",
           "personal date", "personal replacement", "personal optional"}


def _catalogued(declared: Any) -> type[Event]:
    annotations = {"customer_id": SubjectId, "field": declared}
    made: type[Event] = type(Event)("Catalogued", (Event,), {"__annotations__": annotations,
                                                             "__module__": __name__},
                                    type_name="test.exact.catalogued", register=False)
    return made


def test_the_catalogue_is_proven_where_expected() -> None:
    proven = {name for name, declared, _ in _CATALOGUE
              if exact_form(cls := _catalogued(declared), plan_of(cls)) is not None}
    assert proven == _PROVEN


@pytest.mark.parametrize(("declared", "value"), [(d, v) for _, d, v in _CATALOGUE],
                         ids=[name for name, _, _ in _CATALOGUE])
def test_whatever_is_proven_passes_the_check_it_skips(declared: Any, value: Any) -> None:
    """Soundness across field shapes: a class proven exact must never hold a valid instance
    that the full read-back check would refuse (the proof may be cautious, never wrong)."""
    cls = _catalogued(declared)
    event = cls(customer_id="c-1", field=value)
    form = exact_form(cls, plan_of(cls))
    if form is None or not form.holds(event):
        return  # the full path: checked as ever
    full = split(event, plan_of(cls))
    quick = form.split(event.model_dump(mode="json", by_alias=True))
    assert quick == full
    check_reads_back(cls, event, encode_payload(quick.data, cls), quick.groups,
                     {subject: encode_values(values.values(), cls)
                      for subject, values in quick.groups.items()})
