"""Typed reads: ``of=`` types what the reads return (checked by mypy --strict, in process) and
holds the reader to it at run time; the README's example type-checks as written."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from mypy import api as mypy_api

from shredstore import (
    AsyncEventStore,
    ConfigurationError,
    Event,
    EventRegistry,
    EventStore,
    UnexpectedEventType,
    UnknownEvent,
)

ROOT = Path(__file__).resolve().parent.parent

TYPED_READS = '''
from collections.abc import AsyncIterator, Iterator
from typing import assert_type

from shredstore import AsyncEventStore, Event, EventStore, RecordedEvent


class Opened(Event, type_name="typing.Opened"):
    owner: str


class Deposited(Event, type_name="typing.Deposited"):
    cents: int


class Closed(Event, type_name="typing.Closed"):
    reason: str


def handle(record: RecordedEvent) -> int:  # a bare RecordedEvent is RecordedEvent[Event]
    return record.position


def reads(store: EventStore) -> None:
    assert_type(store.read_stream("s"), Iterator[RecordedEvent[Event]])
    assert_type(store.read_stream("s", of=Deposited), Iterator[RecordedEvent[Deposited]])
    assert_type(store.read_stream("s", of=(Deposited,)), Iterator[RecordedEvent[Deposited]])
    assert_type(store.read_stream("s", of=(Opened, Deposited)),
                Iterator[RecordedEvent[Opened | Deposited]])
    assert_type(store.read_stream("s", of=(Opened, Deposited, Closed)),
                Iterator[RecordedEvent[Opened | Deposited | Closed]])
    assert_type(store.read_all(), Iterator[RecordedEvent[Event]])
    assert_type(store.read_all(types=[Opened, Deposited, "typing.Closed"]),
                Iterator[RecordedEvent[Event]])
    assert_type(store.read_all(after=3, limit=2, types=[Opened, Deposited], of=Deposited),
                Iterator[RecordedEvent[Deposited]])
    assert_type(store.read_subject("42"), Iterator[RecordedEvent[Event]])
    assert_type(store.read_subject("42", of=Opened), Iterator[RecordedEvent[Opened]])
    for record in store.read_stream("s", of=Deposited):
        assert_type(record.event, Deposited)
        total: int = record.event.cents + handle(record)  # RecordedEvent[E] is covariant
        assert total
    for either in store.read_all(of=(Opened, Deposited)):
        if isinstance(either.event, Opened):
            assert_type(either.event.owner, str)
        else:
            assert_type(either.event.cents, int)
    for plain in store.read_stream("s"):
        plain.event.cents  # type: ignore[attr-defined]  # without of=, only an Event


async def async_reads(store: AsyncEventStore) -> None:
    assert_type(store.read_stream("s"), AsyncIterator[RecordedEvent[Event]])
    assert_type(store.read_all(of=Deposited), AsyncIterator[RecordedEvent[Deposited]])
    assert_type(store.read_all(types=[Opened, Deposited]), AsyncIterator[RecordedEvent[Event]])
    assert_type(store.read_subject("42", of=(Opened, Deposited)),
                AsyncIterator[RecordedEvent[Opened | Deposited]])
    async for record in store.read_stream("s", of=Opened):
        assert_type(record.event.owner, str)
'''


PYDANTIC_PLUGIN = "[mypy]\nplugins = pydantic.mypy\n"
"""A mypy configuration with pydantic's plugin, as a pydantic project's may be."""


@pytest.fixture(scope="module")
def mypy_caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for this module's mypy caches, one per configuration: a second run with the
    same one checks only its own file."""
    return tmp_path_factory.mktemp("mypy-caches")


def mypy_errors(source: str, where: Path, caches: Path, *, config: str = "") -> list[str]:
    """What ``mypy --strict`` says about `source` (as a file in `where`), with the
    configuration `config` (none: as a user's mypy without one would see it). Only the
    lines about that file: the package's own checks are CI's ``mypy --strict shredstore
    keyvault``. Run from the repository, which mypy searches first, so it finds this
    shredstore from any folder."""
    snippet = where / "snippet.py"
    snippet.write_text(source)
    config_file = where / "mypy.ini"
    config_file.write_text(config)
    cache = caches / ("plugin" if config else "plain")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        stdout, stderr, _ = mypy_api.run([
            "--strict", f"--config-file={config_file if config else ''}",
            "--follow-imports=silent", "--no-error-summary", "--cache-dir", str(cache),
            str(snippet)])
    assert not stderr, stderr
    return [line for line in stdout.splitlines() if line.startswith(str(snippet))]


@pytest.mark.parametrize("config", ["", PYDANTIC_PLUGIN], ids=["plain", "pydantic-plugin"])
def test_of_types_the_reads_for_mypy(tmp_path: Path, mypy_caches: Path, config: str) -> None:
    """With ``of=Cls`` the reads return ``RecordedEvent[Cls]`` (a tuple of up to three: their
    union), on both stores; without it ``RecordedEvent[Event]``, whose event has no fields of
    a subclass. Also under pydantic's plugin, where overloads made ``types=[A, B]`` fail."""
    assert mypy_errors(TYPED_READS, tmp_path, mypy_caches, config=config) == []


def test_the_readme_example_type_checks(tmp_path: Path, mypy_caches: Path) -> None:
    """The README's first Python block passes ``mypy --strict`` as written."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README shows Python usage"
    assert mypy_errors(blocks[0], tmp_path, mypy_caches) == []


# --- what of= does at run time ----------------------------------------------------------------


class Opened(Event, type_name="test.typing.Opened"):
    owner: str


class Moved(Event, type_name="test.typing.Moved"):
    """A base class of the account's money events."""

    cents: int


class Deposited(Moved, type_name="test.typing.Deposited"):
    pass


class Withdrawn(Moved, type_name="test.typing.Withdrawn"):
    pass


@pytest.fixture
def store() -> Iterator[EventStore]:
    with EventStore("sqlite://") as opened:
        opened.append("account-1", [Opened(owner="Ada Lovelace"), Deposited(cents=500),
                                    Withdrawn(cents=200)])
        opened.append("account-2", [Deposited(cents=7)])
        yield opened


def test_read_stream_of_returns_every_event_when_all_are_instances(store: EventStore) -> None:
    """A class, a tuple or a base class that covers the stream: every event, in order."""
    assert [r.event.cents for r in store.read_stream("account-2", of=Deposited)] == [7]
    assert [r.version for r in store.read_stream("account-1", of=(Opened, Moved))] == [1, 2, 3]
    assert [r.event.cents for r in store.read_stream("account-1", of=Moved, from_version=2)
            ] == [500, 200]


def test_read_stream_of_raises_at_an_event_of_another_class(store: EventStore) -> None:
    """The first event that is not an instance raises `UnexpectedEventType` (a TypeError)
    when reached, naming stream, version, position and types and no field value; the events
    before it were returned."""
    seen = []
    with pytest.raises(UnexpectedEventType) as raised:
        seen.extend(store.read_stream("account-1", of=(Opened, Deposited)))
    assert [r.version for r in seen] == [1, 2]
    message = str(raised.value)
    assert "'account-1'" in message
    assert "'test.typing.Withdrawn'" in message
    assert "version 3 (position 3)" in message
    assert "not a Opened or Deposited" in message
    assert "200" not in message
    assert "Ada" not in message
    assert isinstance(raised.value, TypeError)


def test_read_all_of_selects_instances_and_limit_counts_them(store: EventStore) -> None:
    """`read_all(of=...)` leaves other classes out (subclasses count), in the database, so
    `limit` counts what is selected; with `types=`, both must hold."""
    assert [r.position for r in store.read_all(of=Deposited)] == [2, 4]
    assert [r.position for r in store.read_all(of=Moved)] == [2, 3, 4]
    assert [r.position for r in store.read_all(of=Moved, limit=2)] == [2, 3]
    assert [r.position for r in store.read_all(of=Moved, after=2, limit=1)] == [3]
    assert [r.position for r in store.read_all(of=(Opened, Withdrawn))] == [1, 3]
    assert [r.position for r in store.read_all(of=Moved, types=[Withdrawn, Opened])] == [3]
    assert [r.position for r in store.read_all(of=Event, limit=3)] == [1, 2, 3]


def test_read_all_of_unknown_event_selects_unregistered_types(store: EventStore) -> None:
    """A reader whose registry lacks a class reads its events as `UnknownEvent`, and
    ``of=UnknownEvent`` selects them (told apart as they are read; `limit` still counts only
    those)."""
    registry = EventRegistry()
    registry.register(Opened)
    registry.register(Withdrawn)
    with EventStore(store.engine, registry=registry) as reader:
        assert [r.position for r in reader.read_all(of=UnknownEvent)] == [2, 4]
        assert [r.position for r in reader.read_all(of=UnknownEvent, limit=1)] == [2]
        assert [r.position for r in reader.read_all(of=Event)] == [1, 2, 3, 4]
        with pytest.raises(UnexpectedEventType, match=r"\(UnknownEvent\) at version 2"):
            list(reader.read_stream("account-1", of=(Opened, Withdrawn)))


def test_read_subject_of_selects_instances() -> None:
    """`read_subject(of=...)` keeps the subject's events of that class."""
    from typing import Annotated

    from shredstore import PersonalData, SubjectId

    class Named(Event, type_name="test.typing.Named"):
        customer_id: SubjectId
        name: Annotated[str, PersonalData()]

    class Renamed(Named, type_name="test.typing.Renamed"):
        pass

    from keyvault import MasterKey

    with EventStore("sqlite://", master_key=MasterKey.generate()) as store:
        store.append("c-1", [Named(customer_id="1", name="A"), Renamed(customer_id="1",
                                                                        name="B")])
        assert [r.event.name for r in store.read_subject("1", of=Renamed)] == ["B"]
        assert [r.event.name for r in store.read_subject("1", of=Named)] == ["A", "B"]


@pytest.mark.parametrize("of", ["test.typing.Opened", Opened(owner="Ada Lovelace"), (), int,
                                (Opened, str)])
def test_of_that_names_no_event_class_is_refused_when_called(store: EventStore,
                                                               of: object) -> None:
    """Anything but an Event class or a non-empty tuple of them is a configuration error
    at the call, not at the first event; the message never shows the value."""
    for read in (lambda: store.read_stream("account-1", of=of),  # type: ignore[call-overload]
                 lambda: store.read_all(of=of),  # type: ignore[call-overload]
                 lambda: store.read_subject("1", of=of)):  # type: ignore[call-overload]
        with pytest.raises(ConfigurationError, match="of= takes an Event class") as raised:
            read()
        assert "Ada" not in str(raised.value)


def test_the_async_store_takes_the_same_of(tmp_path: Path) -> None:
    """`AsyncEventStore`'s reads check and select as the synchronous store's do."""
    async def main() -> None:
        async with AsyncEventStore(f"sqlite:///{tmp_path / 'events.db'}") as store:
            await store.append("account-1", [Opened(owner="Ada"), Deposited(cents=5)])
            assert [r.event.cents async for r in store.read_all(of=Moved)] == [5]
            assert [r.version async for r in store.read_stream(
                "account-1", of=(Opened, Deposited))] == [1, 2]
            with pytest.raises(UnexpectedEventType, match="at version 1"):
                [r async for r in store.read_stream("account-1", of=Deposited)]

    asyncio.run(main())


def test_an_editable_install_is_a_path_entry_that_mypy_follows() -> None:
    """mypy finds packages through the path entries of `.pth` files, never through import
    hooks: setuptools' editable install must be the former (pyproject.toml's package-dir),
    or mypy run from any other folder cannot find shredstore."""
    import site
    import sysconfig

    folders = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    found = [pth for folder in folders for pth in Path(folder).glob("__editable__*shredstore*")]
    if not found:
        pytest.skip("shredstore is not installed in editable mode here")
    for pth in found:
        if pth.suffix != ".pth":
            pytest.fail(f"an import hook ({pth.name}) serves the editable install")
        lines = [line for line in pth.read_text().splitlines() if line.strip()]
        assert lines, pth
        assert not any(line.startswith("import ") for line in lines), pth.read_text()
        assert (Path(lines[0]) / "shredstore" / "__init__.py").is_file()
