"""`AsyncEventStore`: the event store for asyncio services (FastAPI, Starlette, aiohttp).

The same operations with the same semantics as `EventStore`, awaited, and no blocking call on
the event loop. Every invariant of the store (the append's lock and guards, the authentication
of each row, the erasure checks of each page, the vault's caches) lives once, in the
synchronous store's code, and the async store runs that code, so the two cannot drift apart:
the contract suites run against both. It runs it one of two ways:

- **PostgreSQL** (given by URL): on psycopg's async driver, on the event loop itself. The
  store's code runs inside SQLAlchemy's ``greenlet_spawn``, and each of its round trips is
  awaited: no thread, and as many operations in flight as the pool has connections. (Through
  the async driver the store sends statements one at a time: no pipeline and no COPY, see
  `shredstore.storage.log`.)
- **SQLite** (or an `Engine` given, or ``read_only``): on a small pool of worker threads of
  the store's own (`workers`), which is what an async SQLite driver does too.

Reads are async iterators that fetch a page at a time (500 events) and hand the events out on
the loop. The context of the caller (`shredstore.causation.caused_by`) goes with each
operation.

    async with AsyncEventStore("postgresql+psycopg://...", master_key=master) as store:
        await store.append("customer-42", [CustomerRegistered(...)], expected_version=NO_STREAM)
        async for record in store.read_all(after=0):
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar

from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.util import greenlet_spawn

from keyvault import KeyProvider
from shredstore.errors import ConfigurationError
from shredstore.events import (
    E2,
    E3,
    E,
    Event,
    EventClassesOf,
    EventRegistry,
    RecordedEvent,
    default_registry,
)
from shredstore.expected import ANY, ExpectedVersion
from shredstore.projections.subscription import Subscription
from shredstore.storage.chain import LogHead, VerifyReport
from shredstore.storage.engine import create_async_postgres_engine
from shredstore.storage.log import AppendResult
from shredstore.store import DEFAULT_URL, EventStore, Metadata

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from keyvault import SubjectStatus
    from shredstore.evidence import ErasureReceipt

# Imported now, not on the event loop when the first native store opens (a tenth of a second,
# which the loop-blocking check of the tests caught). Without greenlet, PostgreSQL says so then.
with contextlib.suppress(ImportError):
    import sqlalchemy.ext.asyncio  # noqa: F401

__all__ = ["AsyncEventStore"]

P = ParamSpec("P")
T = TypeVar("T")

PAGE = 500
"""Events an async read fetches per hop to a worker thread (or per awaited read)."""
_FIRST_WAIT = 0.01
"""Seconds of a native subscription's first pause once the log went quiet."""


class AsyncEventStore:
    """`EventStore`'s operations, awaited (see the module). The arguments are `EventStore`'s;
    `workers` is the size of the thread pool where threads are used (operations beyond it
    wait their turn). ``threads=True`` uses threads on PostgreSQL too: the blocking driver
    pipelines an append's statements, which the async one cannot (docs/performance.md).

    Open it with ``async with`` (or ``await store.open()`` and ``await store.close()``).
    """

    def __init__(
        self,
        url: str | URL | Engine = DEFAULT_URL,
        *,
        master_key: KeyProvider | None = None,
        vault_url: str | URL | Engine | None = None,
        registry: EventRegistry = default_registry,
        cache_size: int = 10_000,
        create: bool = True,
        read_only: bool = False,
        workers: int = 4,
        threads: bool = False,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigurationError("workers is the number of worker threads, at least 1")
        self._url = url
        self._vault_url = vault_url
        self._open_store = functools.partial(
            EventStore, master_key=master_key, registry=registry, cache_size=cache_size,
            create=create, read_only=read_only)
        self._registry = registry
        self._workers = workers
        self._native = (_is_postgres(url) and not read_only and not threads
                        and (vault_url is None or _is_postgres(vault_url)))
        self._engines: list[Any] = []
        self._executor: ThreadPoolExecutor | None = None
        self._store: EventStore | None = None

    @property
    def native(self) -> bool:
        """Whether the store runs on psycopg's async driver (PostgreSQL given by URL), rather
        than on worker threads (SQLite, or an `Engine` given)."""
        return self._native

    # --- opening and closing ----------------------------------------------------------------

    async def open(self) -> Self:
        """Open the store (it creates tables and reads the vault: awaited)."""
        if self._store is not None:
            return self
        if not self._native:
            self._executor = ThreadPoolExecutor(self._workers,
                                                thread_name_prefix="shredstore-aio")
        try:
            url: str | URL | Engine = self._url
            vault_url = self._vault_url
            if self._native:
                url = self._async_engine(url)
                if vault_url is not None and vault_url != self._url:
                    vault_url = self._async_engine(vault_url)
            self._store = await self._call(self._open_store, url, vault_url=vault_url)
        except BaseException:
            await self._release()
            raise
        return self

    async def close(self) -> None:
        """Close the store (and its workers or connections); idempotent."""
        store, self._store = self._store, None
        try:
            if store is not None:
                await self._call(store.close)
        finally:
            await self._release()

    def _async_engine(self, url: str | URL | Engine) -> Engine:
        """The blocking face of a new async engine (see `create_async_postgres_engine`)."""
        engine = create_async_postgres_engine(url)  # type: ignore[arg-type]
        self._engines.append(engine)
        sync: Engine = engine.sync_engine
        return sync

    async def _release(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
        engines, self._engines = self._engines, []
        for engine in engines:
            await engine.dispose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, traceback: TracebackType | None) -> None:
        await self.close()

    @property
    def registry(self) -> EventRegistry:
        """The registry of event classes the store reads and writes with."""
        return self._registry

    @property
    def sync(self) -> EventStore:
        """The `EventStore` underneath. Call it only through `run` (``await
        store.run(write_export, store.sync, ...)``): on the native path its code needs the
        store's greenlet, and on threads it blocks."""
        return self._opened()

    # --- writing ----------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Iterable[Event],
        *,
        expected_version: int | ExpectedVersion = ANY,
        metadata: Metadata = None,
        in_transaction: Callable[[Connection, AppendResult], None] | None = None,
    ) -> AppendResult:
        """`EventStore.append`, awaited. `in_transaction` runs in the worker thread."""
        return await self._call(self._opened().append, stream_id, list(events),
                                expected_version=expected_version, metadata=metadata,
                                in_transaction=in_transaction)

    async def append_many(
        self,
        streams: Mapping[str, tuple[Iterable[Event], int | ExpectedVersion]
                         | tuple[Iterable[Event], int | ExpectedVersion, Metadata]],
        *,
        metadata: Metadata = None,
        in_transaction: Callable[[Connection, dict[str, AppendResult]], None] | None = None,
    ) -> dict[str, AppendResult]:
        """`EventStore.append_many`, awaited: several streams in one transaction."""
        fixed = {stream: (list(entry[0]), *entry[1:]) for stream, entry in streams.items()}
        return await self._call(self._opened().append_many, fixed,
                                metadata=metadata, in_transaction=in_transaction)

    async def erase_subject(
        self,
        subject_id: str,
        *,
        reason: str | None = None,
        request_id: str | None = None,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> ErasureReceipt:
        """`EventStore.erase_subject`, awaited: once it returns, no process reads the subject's
        personal data."""
        return await self._call(self._opened().erase_subject, subject_id, reason=reason,
                                request_id=request_id, signing_key=signing_key)

    # --- reading ----------------------------------------------------------------------------

    def read_stream(self, stream_id: str, *, from_version: int | None = None,
                    backwards: bool = False, limit: int | None = None,
                    of: EventClassesOf[E, E2, E3] | None = None
                    ) -> AsyncIterator[RecordedEvent[E | E2 | E3]]:
        """`EventStore.read_stream`, as an async iterator."""
        return self._iterate(functools.partial(
            self._opened().read_stream, stream_id, from_version=from_version,
            backwards=backwards, limit=limit, of=of))

    def read_all(self, *, after: int = 0, limit: int | None = None,
                 types: Iterable[str | type[Event]] | None = None,
                 of: EventClassesOf[E, E2, E3] | None = None
                 ) -> AsyncIterator[RecordedEvent[E | E2 | E3]]:
        """`EventStore.read_all`, as an async iterator."""
        kinds = None if types is None else list(types)
        return self._iterate(functools.partial(self._opened().read_all, after=after,
                                               limit=limit, types=kinds, of=of))

    def read_subject(self, subject_id: str, *, after: int = 0,
                     of: EventClassesOf[E, E2, E3] | None = None
                     ) -> AsyncIterator[RecordedEvent[E | E2 | E3]]:
        """`EventStore.read_subject`, as an async iterator."""
        return self._iterate(functools.partial(self._opened().read_subject, subject_id,
                                               after=after, of=of))

    async def subscribe(self, *, after: int = 0,
                        types: Iterable[str | type[Event]] | None = None,
                        stream_prefix: str | None = None, batch_size: int = PAGE,
                        live: bool = True, poll_interval: float = 0.5
                        ) -> AsyncIterator[RecordedEvent]:
        """A catch-up subscription (`shredstore.projections.Subscription`) as an async
        iterator: the events after `after`, then each new one as it is committed (``live``),
        never skipping one. Each batch is awaited in a thread of its own (not one of the
        store's workers, which a quiet log would otherwise hold); leaving the loop
        (``break``, or the task cancelled) stops the subscription."""
        if self._native:
            async for record in self._poll(after=after, types=types,
                                           stream_prefix=stream_prefix, batch_size=batch_size,
                                           live=live, poll_interval=poll_interval):
                yield record
            return
        subscription = Subscription(self._opened(), after=after, types=types,
                                    stream_prefix=stream_prefix, batch_size=batch_size,
                                    live=live, poll_interval=poll_interval)
        batches = subscription.batches()
        try:
            while True:
                batch = await asyncio.to_thread(next, batches, None)
                if batch is None:
                    return
                for record in batch.events:
                    yield record
        finally:
            subscription.close()

    async def _poll(self, *, after: int, types: Iterable[str | type[Event]] | None,
                    stream_prefix: str | None, batch_size: int, live: bool,
                    poll_interval: float) -> AsyncIterator[RecordedEvent]:
        """`subscribe` on the native path: catch up (a subscription that stops at the head,
        its batches awaited), then look again after a pause that doubles from 10 ms up to
        `poll_interval` while the log is quiet."""
        position, wait = after, _FIRST_WAIT
        while True:
            subscription = Subscription(self._opened(), after=position, types=types,
                                        stream_prefix=stream_prefix, batch_size=batch_size,
                                        live=False, poll_interval=poll_interval)
            batches = subscription.batches()
            moved = False
            try:
                while (batch := await self._call(next, batches, None)) is not None:
                    moved = moved or batch.position > position
                    position = batch.position
                    for record in batch.events:
                        yield record
            finally:
                subscription.close()
            if not live:
                return
            wait = _FIRST_WAIT if moved else min(wait * 2, poll_interval)
            await asyncio.sleep(wait)

    async def stream_version(self, stream_id: str) -> int:
        """`EventStore.stream_version`, awaited."""
        return await self._call(self._opened().stream_version, stream_id)

    async def head(self) -> LogHead:
        """`EventStore.head`, awaited."""
        return await self._call(self._opened().head)

    async def subject_status(self, subject_id: str) -> SubjectStatus:
        """`EventStore.subject_status`, awaited."""
        return await self._call(self._opened().subject_status, subject_id)

    async def verify(self, *, expected_head: LogHead | None = None) -> VerifyReport:
        """`EventStore.verify`, awaited (it reads the whole log, in a worker)."""
        return await self._call(self._opened().verify, expected_head=expected_head)

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking `function` that uses the `sync` store (a snapshot, an export, a
        repository) as the store runs its own operations, with the caller's context."""
        return await self._call(function, *args, **kwargs)

    # --- the hop to a worker ----------------------------------------------------------------

    def _opened(self) -> EventStore:
        if self._store is None:
            raise ConfigurationError("the AsyncEventStore is not open: use `async with "
                                     "AsyncEventStore(...) as store` or `await store.open()`")
        return self._store

    async def _call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking `function`: on the loop inside ``greenlet_spawn`` (native: each of
        its round trips awaited), or in a worker thread with the caller's context."""
        if self._native:
            result: T = await greenlet_spawn(functools.partial(function, *args, **kwargs))
            return result
        if self._executor is None:
            raise ConfigurationError("the AsyncEventStore is not open")
        context = contextvars.copy_context()  # caused_by(...) follows the operation
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(context.run, function, *args, **kwargs))

    async def _iterate(self, start: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """The items of the iterator `start()` makes, fetched a page at a time in a worker.
        (A read holds no connection between its pages: closing it early costs nothing.)"""
        iterator = await self._call(start)
        while True:
            items = await self._call(_take, iterator, PAGE)
            for item in items:
                yield item
            if len(items) < PAGE:
                return


def _take(iterator: Iterator[T], count: int) -> list[T]:
    return list(itertools.islice(iterator, count))


def _is_postgres(url: str | URL | Engine) -> bool:
    """Whether `url` is a PostgreSQL URL (an `Engine` given is used as it is: threads)."""
    if isinstance(url, Engine):
        return False
    try:
        return make_url(url).get_backend_name() in ("postgres", "postgresql")
    except Exception:  # noqa: BLE001 (a malformed URL: EventStore says what is wrong)
        return False
