"""`AsyncEventStore`: the event store for asyncio services (FastAPI, Starlette, aiohttp).

The same operations with the same semantics as `EventStore`, awaited, and no blocking call on
the event loop: each operation runs on a small pool of worker threads of the store's own, over
one `EventStore`, and the loop only awaits it. Reads are async iterators that fetch a page at
a time in a worker (`page` events) and hand the events out on the loop.

Why threads, and not an async database driver: every invariant of the store (the append's
lock and guards, authentication of each row, the erasure checks of each page, the vault's
caches) lives once, in the synchronous store, and the async one cannot drift from it; the
contract suites run against both. The cost is a hop to a worker and back per operation (see
docs/performance.md for the figures against the synchronous store). The context of the caller
(`shredstore.causation.caused_by`) travels with each operation into its worker.

    async with AsyncEventStore("sqlite:///events.db", master_key=master) as store:
        await store.append("customer-42", [CustomerRegistered(...)], expected_version=NO_STREAM)
        async for record in store.read_all(after=0):
            ...
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, ParamSpec, Self, TypeVar

from sqlalchemy.engine import URL, Connection, Engine

from keyvault import KeyProvider
from shredstore.errors import ConfigurationError
from shredstore.events import Event, EventRegistry, RecordedEvent, default_registry
from shredstore.expected import ANY, ExpectedVersion
from shredstore.projections.subscription import Subscription
from shredstore.storage.chain import LogHead, VerifyReport
from shredstore.storage.log import AppendResult
from shredstore.store import DEFAULT_URL, EventStore, Metadata

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from keyvault import SubjectStatus
    from shredstore.evidence import ErasureReceipt

__all__ = ["AsyncEventStore"]

P = ParamSpec("P")
T = TypeVar("T")

PAGE = 500
"""Events an async read fetches per hop to a worker thread."""


class AsyncEventStore:
    """`EventStore`'s operations, awaited (see the module). The arguments are `EventStore`'s;
    `workers` is the size of the store's thread pool (operations beyond it wait their turn).

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
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigurationError("workers is the number of worker threads, at least 1")
        self._open = functools.partial(
            EventStore, url, master_key=master_key, vault_url=vault_url, registry=registry,
            cache_size=cache_size, create=create, read_only=read_only)
        self._registry = registry
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._store: EventStore | None = None

    # --- opening and closing ----------------------------------------------------------------

    async def open(self) -> Self:
        """Open the store (in a worker: it creates tables and reads the vault)."""
        if self._store is not None:
            return self
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="shredstore-aio")
        try:
            self._store = await self._call(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        return self

    async def close(self) -> None:
        """Close the store and its workers; idempotent."""
        store, self._store = self._store, None
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            if store is not None:
                await asyncio.get_running_loop().run_in_executor(executor, store.close)
        finally:
            executor.shutdown(wait=False)

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
        """The `EventStore` underneath, for code that runs in a thread of its own (a
        projection runner, a relay). Never call it on the event loop: it blocks."""
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
                    backwards: bool = False, limit: int | None = None
                    ) -> AsyncIterator[RecordedEvent]:
        """`EventStore.read_stream`, as an async iterator."""
        return self._iterate(functools.partial(
            self._opened().read_stream, stream_id, from_version=from_version,
            backwards=backwards, limit=limit))

    def read_all(self, *, after: int = 0, limit: int | None = None,
                 types: Iterable[str | type[Event]] | None = None
                 ) -> AsyncIterator[RecordedEvent]:
        """`EventStore.read_all`, as an async iterator."""
        kinds = None if types is None else list(types)
        return self._iterate(functools.partial(self._opened().read_all, after=after,
                                               limit=limit, types=kinds))

    def read_subject(self, subject_id: str, *, after: int = 0) -> AsyncIterator[RecordedEvent]:
        """`EventStore.read_subject`, as an async iterator."""
        return self._iterate(functools.partial(self._opened().read_subject, subject_id,
                                               after=after))

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
        """Run a blocking `function` (one that takes the `sync` store, say) in the store's
        workers, with the caller's context."""
        return await self._call(function, *args, **kwargs)

    # --- the hop to a worker ----------------------------------------------------------------

    def _opened(self) -> EventStore:
        if self._store is None:
            raise ConfigurationError("the AsyncEventStore is not open: use `async with "
                                     "AsyncEventStore(...) as store` or `await store.open()`")
        return self._store

    async def _call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
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
