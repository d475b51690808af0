"""`AsyncEventStore`: the shipped contract suites run against it on both backends (through a
blocking front that drives it from a loop of its own), and what only the async side promises:
no blocking call on the event loop, the caller's context in each operation, concurrent
operations, subscriptions that end with the loop."""

from __future__ import annotations

import asyncio
import functools
import inspect
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import Pool

from keyvault import MasterKey
from shredstore import (
    NO_STREAM,
    REDACTED,
    AsyncEventStore,
    ConfigurationError,
    Event,
    EventStore,
    PersonalData,
    SubjectId,
    WrongExpectedVersion,
    caused_by,
)
from shredstore.testing import EventStoreContract, ShreddingContract
from shredstore.testing._shredding_events import REGISTRY as SHREDDING_REGISTRY
from shredstore.testing._store_events import REGISTRY as STORE_REGISTRY

T = TypeVar("T")


class Blocking:
    """An `AsyncEventStore` driven from synchronous code: each coroutine runs on a loop in a
    thread of its own and is waited for, each async iterator is read to its end. What the
    async store does not offer (the engine, the vault) comes from the store underneath."""

    def __init__(self, store: AsyncEventStore) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._async = store
        self.run(store.open())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(120)

    def __getattr__(self, name: str) -> Any:
        if not hasattr(AsyncEventStore, name):
            # What only the blocking store has, run as the async store runs everything (on the
            # native path, in its greenlet).
            attribute = getattr(self._async.sync, name)
            if not callable(attribute):
                return attribute
            return lambda *args, **kwargs: self.run(self._async.run(attribute, *args, **kwargs))
        attribute = getattr(self._async, name)
        if inspect.iscoroutinefunction(attribute):
            return lambda *args, **kwargs: self.run(attribute(*args, **kwargs))
        if inspect.isasyncgenfunction(attribute) or name.startswith("read_"):
            return lambda *args, **kwargs: iter(self.run(_collect(attribute(*args, **kwargs))))
        return attribute

    def close(self) -> None:
        self.run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


class TestAsyncEventStore(EventStoreContract):
    @pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
    def url(self, request: pytest.FixtureRequest) -> str:
        url: str = request.getfixturevalue(f"{request.param}_url")
        return url

    @pytest.fixture
    def store(self, url: str) -> Iterator[Any]:
        with Blocking(AsyncEventStore(url, registry=STORE_REGISTRY)) as store:
            yield store


class TestAsyncShredding(ShreddingContract):
    @pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
    def backend(self, request: pytest.FixtureRequest) -> str:
        backend: str = request.param
        return backend

    @pytest.fixture
    def url(self, backend: str, request: pytest.FixtureRequest) -> str:
        url: str = request.getfixturevalue(f"{backend}_url")
        return url

    @pytest.fixture
    def vault_url(self, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / 'vault.db'}"
        url: str = request.getfixturevalue("second_postgres_url")
        return url

    @pytest.fixture
    def store(self, url: str, master: MasterKey) -> Iterator[Any]:
        with Blocking(AsyncEventStore(url, master_key=master,
                                      registry=SHREDDING_REGISTRY)) as store:
            yield store


# --- what only the async side promises --------------------------------------------------------


class Registered(Event, type_name="test.aio.Registered"):
    customer_id: SubjectId
    email: Annotated[str, PersonalData(subject="customer_id")]


_WATCHED: list[Callable[[str, tuple[Any, ...]], None]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    for watch in _WATCHED:
        watch(event, args)


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one calls the current watchers


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh loop, failing it on a blocking call made on the loop's
    thread, found without timing anything (a timed check fails on a busy machine):

    - a database connection taken from a blocking driver's pool (every statement the store
      runs needs one; the async driver's connections are the native path's, whose round trips
      are awaited);
    - `time.sleep`, and what Python's audit events show: a SQLite database opened, a blocking
      socket connected (an HTTP client's call to a key-management service, say)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        blocking: list[str] = []
        loop_thread = threading.get_ident()

        def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            kind = type(dbapi_connection).__name__
            if threading.get_ident() == loop_thread and not kind.startswith("AsyncAdapt"):
                blocking.append(f"a {kind} connection taken on the event loop")

        def watch(event: str, args: tuple[Any, ...]) -> None:
            if threading.get_ident() != loop_thread:
                return
            if event == "sqlite3.connect":
                blocking.append("a SQLite database opened on the event loop")
            elif event == "socket.connect" and args[0].gettimeout() != 0.0:
                blocking.append(f"a blocking socket connected to {args[1]!r} on the event loop")

        def sleep(seconds: float) -> None:
            if threading.get_ident() == loop_thread and seconds > 0:
                blocking.append(f"time.sleep({seconds}) on the event loop")
            real_sleep(seconds)

        sa.event.listen(Pool, "checkout", checkout)
        _WATCHED.append(watch)
        real_sleep, time.sleep = time.sleep, sleep  # Python 3.11 has no audit event for it
        loop = asyncio.new_event_loop()
        loop.set_debug(True)  # also reports callbacks and coroutines never awaited
        try:
            loop.run_until_complete(test(*args, **kwargs))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            time.sleep = real_sleep
            _WATCHED.remove(watch)
            sa.event.remove(Pool, "checkout", checkout)
        assert blocking == [], blocking

    return run


@pytest.fixture
def opened(any_url: str) -> Callable[[], AsyncEventStore]:
    master = MasterKey.generate()

    def make() -> AsyncEventStore:
        store = AsyncEventStore(any_url, master_key=master)
        if store.registry.find(Registered.__event_type__) is None:
            store.registry.register(Registered)
        return store

    return make


@in_loop
async def test_a_service_workload_never_blocks_the_loop(
        opened: Callable[[], AsyncEventStore]) -> None:
    async with opened() as store:
        # Many requests at once, as a web service has them.
        await asyncio.gather(*(
            store.append(f"customer-{n}", [Registered(customer_id=f"c{n}",
                                                       email=f"{n}@example.org")],
                         expected_version=NO_STREAM) for n in range(40)))
        records = [record async for record in store.read_all()]
        assert len(records) == 40
        await store.erase_subject("c3")
        erased = [r async for r in store.read_stream("customer-3")]
        assert erased[0].event.email is REDACTED
        assert (await store.subject_status("c3")).state == "erased"
        assert [r.stream_id async for r in store.read_subject("c5")] == ["customer-5"]
        assert (await store.verify()).ok
        assert (await store.head()).position == 41  # with the ledger's entry


@in_loop
async def test_expected_versions_hold_between_concurrent_appends(
        opened: Callable[[], AsyncEventStore]) -> None:
    async with opened() as store:
        await store.append("race", [Registered(customer_id="c", email="c@example.org")],
                           expected_version=NO_STREAM)
        outcomes = await asyncio.gather(*(
            store.append("race", [Registered(customer_id="c", email=f"{n}@example.org")],
                         expected_version=1) for n in range(6)), return_exceptions=True)
        assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
        assert all(isinstance(o, WrongExpectedVersion) for o in outcomes
                   if isinstance(o, BaseException))
        assert await store.stream_version("race") == 2


@in_loop
async def test_the_callers_cause_goes_with_each_operation(
        opened: Callable[[], AsyncEventStore]) -> None:
    async with opened() as store:
        await store.append("cause", [Registered(customer_id="c", email="c@example.org")])
        (first,) = [r async for r in store.read_stream("cause")]
        with caused_by(first):
            await store.append("effect", [Registered(customer_id="c", email="d@example.org")])
        (effect,) = [r async for r in store.read_stream("effect")]
        assert effect.metadata["causation_id"] == str(first.event_id)


@in_loop
async def test_a_live_subscription_follows_appends_and_ends_with_its_loop(
        opened: Callable[[], AsyncEventStore]) -> None:
    async with opened() as store:
        await store.append("s", [Registered(customer_id="c", email="c@example.org")])
        seen: list[int] = []

        async def follow() -> None:
            async for record in store.subscribe(poll_interval=0.05):
                seen.append(record.position)
                if len(seen) == 3:
                    break

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.1)
        for _ in range(2):
            await store.append("s", [Registered(customer_id="c", email="c@example.org")])
        await asyncio.wait_for(follower, 10)
        assert seen == [1, 2, 3]
        # A subscription cancelled while it waits for events stops too.
        waiting = asyncio.create_task(follow())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting


def test_a_closed_or_unopened_store_says_so(sqlite_url: str) -> None:
    store = AsyncEventStore(sqlite_url)
    with pytest.raises(ConfigurationError, match="not open"):
        store.sync  # noqa: B018

    async def reads() -> list[int]:
        return [record.position async for record in store.read_all()]

    async def opened_then_closed() -> None:
        async with store:
            assert await reads() == []
        await store.close()  # idempotent

    with pytest.raises(ConfigurationError, match="not open"):
        asyncio.run(reads())
    asyncio.run(opened_then_closed())
    with pytest.raises(ConfigurationError, match="not open"):
        asyncio.run(reads())


def test_the_detector_catches_a_blocking_call(sqlite_url: str) -> None:
    """`in_loop` fails a test that blocks its loop (the checks above cannot pass vacuously):
    a blocking store used on the loop, however short each call, a sleep, a SQLite database
    opened and a blocking socket connected on the loop."""
    @in_loop
    async def blocking_store() -> None:
        with EventStore(sqlite_url) as store:  # what a synchronous store in a handler does
            store.head()

    @in_loop
    async def sleeping() -> None:
        await asyncio.sleep(0)
        time.sleep(0.25)
        await asyncio.sleep(0)

    @in_loop
    async def opening_sqlite() -> None:
        sqlite3.connect(":memory:").close()

    @in_loop
    async def connecting() -> None:
        with socket.socket() as listener, socket.socket() as client:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            client.connect(listener.getsockname())

    with pytest.raises(AssertionError, match="connection taken on the event loop"):
        blocking_store()
    with pytest.raises(AssertionError, match="SQLite database opened on the event loop"):
        opening_sqlite()
    with pytest.raises(AssertionError, match="blocking socket connected"):
        connecting()
    with pytest.raises(AssertionError, match=r"time\.sleep\(0\.25\) on the event loop"):
        sleeping()
