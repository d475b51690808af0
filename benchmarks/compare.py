"""shredstore against eventsourcing 9.5 + AESCipher and raw SQLAlchemy Core, side by side.

Run from the repository root (needs the ``bench`` extra, and ``eventsourcing[postgres]`` for
PostgreSQL)::

    python -m benchmarks                         # every case, SQLite and PostgreSQL (~1 h+)
    python -m benchmarks --quick                 # ~20x smaller sizes: a smoke run (~3.5 min)
    python -m benchmarks --medium                # ~6x smaller sizes (~10 min)
    python -m benchmarks --backend sqlite --cases append-x100,read-all --repeat 5
    python -m benchmarks --cases append-x1,append-x100,read-all,aggregates,erase   # no 1M fill
    python -m benchmarks --quick --cases writers,flat --backend all --repeat 1

Options: ``--backend sqlite|postgres|all`` (default all; with ``all`` an unreachable
PostgreSQL is reported and skipped), ``--repeat N`` (default 3), ``--json PATH`` (default
``benchmarks/results/compare-<time>.json``), ``--postgres-url URL`` (else
``$SHREDSTORE_BENCH_POSTGRES_URL``, else ``postgresql+psycopg://postgres@127.0.0.1:5432/test``;
the role must be allowed to create schemas), ``--cases`` (a comma-separated subset of the
cases below).

What is measured (full sizes; ``--quick`` divides them by about 20, ``--medium`` by about
6). The workload and stream layout are in `benchmarks.workload`, the contenders in
`benchmarks.contenders`, the writer processes in `benchmarks.writers`:

``append-x1``
    10,000 single-event appends, each its own transaction and durable commit, round-robin over
    1,000 streams (customers) that already hold one event each (appended untimed first, so
    every subject's key exists): events/s. Target: shredstore >= 1.2x eventsourcing.
``append-x1-new``
    10,000 single-event appends, each the first event of a subject never seen before (a new
    stream; for shredstore a new key): events/s. Target: >= 1.2x eventsourcing.
``append-x100``
    100,000 events in appends of 100, one stream (customer) per append: events/s. Target:
    >= 1.3x eventsourcing on SQLite, >= 1.5x on PostgreSQL.
``read-all``
    The whole log of 100,000 events (1,000 subjects), decrypted and decoded: events/s. Target:
    >= 1.3x eventsourcing. Raw is the floor: rows fetched, not decoded. Then every subject is
    erased (untimed) and shredstore reads the same log again; target: read after erasure at
    least as fast as before (ratio of the two medians >= 1.0).
``aggregates``
    1,000 aggregates of 10 events each, each loaded once (shredstore ``Repository.load``,
    eventsourcing ``app.repository.get``, raw: one SELECT of the stream): loads/s. Target:
    >= 1.5x eventsourcing.
``aggregates-snapshot``
    The same, but each aggregate's snapshot is taken (untimed) after its 10 events, so each
    load starts from it (shredstore: ``store.save_snapshot`` as ``Repository`` stores one,
    loads by ``Repository.load``; eventsourcing: an ``Application`` with
    ``IS_SNAPSHOTTING_ENABLED=y``, ``app.take_snapshot(id)``, loads by
    ``app.repository.get``); raw has no snapshots: loads/s. Target: >= 1.5x eventsourcing.
``writers``
    4 writer processes at once (a pool of ``python -m benchmarks.writers`` processes, see
    `benchmarks.writers`), each with its own session on the same fresh log (one SQLite file,
    or one PostgreSQL schema), each appending 10,000 events in appends of 50 to 50 streams of
    its own; started together once all are ready; events/s = all events / the wall time from
    the start to the last writer's end. Verified afterwards: every event there once, read back
    decrypted, each stream in order; for shredstore the global positions are 1..N with no gap.
    An append that fails because the database is locked is made again (counted in the note).
    Target: >= 1.2x eventsourcing.
``erase``
    ``erase_subject`` of a subject with 10 events and of one with 100,000 events (shredstore
    only; eventsourcing has no per-subject erasure), in its two parts: the erasure itself
    (``erasure.shred``: key destroyed, ledger entry) and the receipt's evidence
    (``erasure.receipt_for``: one pass over the subject's rows): ms. Target: the erasure's time
    ratio <= 1.5; the evidence grows with the subject's rows (no target). The log is filled
    untimed and scrubbed (SQLite WAL emptied) before the first erasure.
``flat``
    Appends of 100, timed in windows of 20 appends (2,000 events) when the log holds about
    10,000 events and again when it holds 1,000,000 (the last windows end it there), filled
    untimed in between: events/s at each size, and large / small. Target: shredstore's ratio
    >= 0.9 (within 10%).
``memory``
    Peak RSS of a fresh process that reads the first 1,000 events, and of one that reads all
    1,000,000, of a log filled untimed in appends of 100 (with ``flat`` in the run, its large
    logs, so the log is filled once for both; minutes on PostgreSQL: leave both out with
    ``--cases``): MiB. Target: shredstore 1M <= 1.2x 1k.

Targets are issue 17's, all of shredstore against eventsourcing (or against itself); raw
SQLAlchemy is shown as a floor for information, with no target.

Honesty rules: every contender gets the same events, streams, sizes and durability (SQLite
file in WAL with ``synchronous=FULL``; the same PostgreSQL server, ``fsync`` on). Inputs are
built before the clock starts; garbage collection stays on, but the prebuilt inputs are frozen
out of it (``gc.freeze``) so it does not walk them. Contenders take turns within each
repetition, their order rotating, so drift on a noisy machine hits all of them alike. Every
timed run is verified afterwards (counts, and decrypted values of the last event, or of every
997th event read). Each case runs on fresh SQLite files or PostgreSQL schemas, removed
afterwards. Each figure is the median of ``--repeat`` runs with min and max; the ratios are of
medians from this same run. Each timed case also states, per contender, this process's CPU
time as a share of the timed wall time: on a shared machine, wall figures that move while that
share stays put are noise from elsewhere (the database server's own time is not in it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from . import common, report
from .common import add_common_arguments, check_repeat, progress
from .contenders import Session
from .memory import peak_rss, sampled_read, verify_read
from .peers import CONTENDERS
from .report import Check, Figure, Row
from .workload import (
    CUSTOMERS,
    Backend,
    Layout,
    Location,
    postgres_backend,
    sqlite_backend,
)
from .writers import BATCH as WRITER_BATCH
from .writers import WriterPool, code_changed, verify_log, writer_layouts

__all__ = ["CASES", "main"]

T = TypeVar("T")
CASES = ("append-x1", "append-x1-new", "append-x100", "read-all", "aggregates",
         "aggregates-snapshot", "writers", "erase", "flat", "memory")
SHRED, ES, RAW = "shredstore", "eventsourcing", "raw"
_RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class Sizes:
    customers: int = CUSTOMERS
    """Streams (data subjects) of the append and read cases."""
    singles: int = 10_000
    batched: int = 100_000
    read: int = 100_000
    aggregates: int = 1_000
    aggregate_events: int = 10
    erase_small: int = 10
    erase_big: int = 100_000
    memory_small: int = 1_000
    memory_big: int = 1_000_000
    memory_repeat: int | None = None
    """Runs of each memory child (None: ``--repeat``)."""
    writers: int = 4
    """Writer processes of the writers case."""
    writer_events: int = 10_000
    """Events each writer appends (in appends of 50)."""
    writer_streams: int = 50
    """Streams of each writer (its own)."""
    flat_small: int = 10_000
    """The flat case's small log; its large one is `memory_big` (the two cases share it)."""
    flat_window: int = 20
    """Appends of 100 in each timed window of the flat case."""


FULL = Sizes()
QUICK = Sizes(customers=50, singles=500, batched=5_000, read=5_000, aggregates=50,
              erase_big=5_000, memory_big=50_000, memory_repeat=1, writer_events=1_000,
              writer_streams=5, flat_small=5_000, flat_window=10)
"""~20x smaller; customers too, in the same proportion to the appends (3.5 min with
``--repeat 3`` on a 2-core machine)."""
MEDIUM = Sizes(customers=150, singles=1_500, batched=15_000, read=15_000, aggregates=150,
               erase_big=15_000, memory_big=150_000, memory_repeat=1, writer_events=2_000,
               writer_streams=10)
"""~6x smaller than full (the flat case's small log stays at 10,000 events): every case on
both backends in about ten minutes with ``--repeat 3`` on a 2-core machine. Timed at git
b13ee79: ``time python -m benchmarks --medium --repeat 3`` took 10 min 32 s (SQLite 3.2 min,
PostgreSQL 7.3 min, of which flat + memory 3 min), with another job on the machine (load
average 3.3)."""
BATCH = 100


@dataclass(frozen=True, slots=True)
class Context:
    backend: Backend
    repeat: int
    sizes: Sizes
    shared: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """Closes what outlives one case (the flat case's large logs) after the backend's run."""
    large_logs: dict[str, tuple[Session, Location, str, Layout]] = field(default_factory=dict)
    """The flat case's logs of `Sizes.memory_big` events, which the memory case then reads
    (one fill for both cases)."""


# --- timing ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Spent:
    """Wall and CPU seconds of this process in the timed parts of a case, per contender
    (`clock`)."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, who: str, wall: float, cpu: float) -> None:
        self.wall[who] = self.wall.get(who, 0.0) + wall
        self.cpu[who] = self.cpu.get(who, 0.0) + cpu

    def clear(self) -> None:
        self.wall.clear()
        self.cpu.clear()

    def note(self) -> str:
        """Each contender's CPU time in this process as a share of its timed wall time: where
        wall figures move while the share stays put, the machine (or the database server) is
        what changed."""
        shares = ", ".join(f"{who} {self.cpu[who] / wall:.0%}"
                           for who, wall in self.wall.items() if wall)
        return f"client CPU / wall: {shares}" if shares else ""


_SPENT = Spent()


def clock(work: Callable[[], T], who: str) -> tuple[float, T]:
    """Seconds `work` took, and its result; prebuilt objects are frozen out of the GC. The
    wall and CPU time are also added to the case's `Spent`, for contender `who`."""
    gc.collect()
    gc.freeze()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        result = work()
        elapsed = time.perf_counter() - start
        _SPENT.add(who, elapsed, time.process_time() - cpu)
        return elapsed, result
    finally:
        gc.unfreeze()


def turns(names: Sequence[str], rep: int) -> list[str]:
    """The contenders' order in repetition `rep`: rotated, so no one always goes first."""
    shift = rep % len(names)
    return [*names[shift:], *names[:shift]]


@contextlib.contextmanager
def fresh_session(backend: Backend, name: str, *, snapshots: bool = False,
                  ) -> Iterator[tuple[Session, Location, str]]:
    """A contender on a fresh location, with its new key; closed and removed afterwards."""
    with backend.fresh() as location:
        secret = CONTENDERS[name].new_secret()
        session = CONTENDERS[name].open(location, secret, snapshots=snapshots)
        try:
            yield session, location, secret
        finally:
            session.close()


def fill(session: Session, layout: Layout, what: str) -> None:
    progress(f"    filling {session.label} with {layout.events:,} events ({what}, untimed)")
    session.fill(layout)
    stored = session.count()
    if stored != layout.events:
        raise RuntimeError(f"{session.label} stored {stored} events, expected {layout.events}")


def append_all(session: Session, prepared: list[Any]) -> None:
    for batch in prepared:
        session.append(batch)


def load_all(session: Session, count: int) -> list[Any]:
    return [session.load(customer) for customer in range(count)]


def _ensure(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


# --- cases -------------------------------------------------------------------------------------


def append_case(ctx: Context, case: str, layout: Layout, target: float, *,
                existing: int = 0, what: str = "") -> list[Row]:
    """Appends of `layout.per_append` events: events/s per contender. The layout's first
    `existing` appends are made untimed first (so the timed ones go to subjects that already
    have a key), the rest are timed."""
    names = [SHRED, ES, RAW]
    runs: dict[str, list[float]] = {name: [] for name in names}
    timed = layout.events - existing * layout.per_append
    for rep in range(ctx.repeat):
        for name in turns(names, rep):
            with fresh_session(ctx.backend, name) as (session, _, _):
                if existing:
                    progress(f"    {session.label}: {existing:,} first appends (untimed)")
                    session.fill(layout, stop=existing)
                prepared = session.prepare(layout.batches(existing))
                elapsed, _ = clock(functools.partial(append_all, session, prepared), name)
                del prepared
                last = layout.event_at(layout.events - 1)
                _ensure(session.count() == layout.events, f"{session.label}: wrong count")
                _ensure(session.matches(session.last_of(last.customer), last),
                        f"{session.label}: the last event read back wrong")
            runs[name].append(timed / elapsed)
            progress(f"  {case} {name}: {timed / elapsed:,.0f} events/s")
    figures = {name: Figure.of(values) for name, values in runs.items()}
    title = (f"append x{layout.per_append}: {timed // layout.per_append:,} appends, "
             f"{timed:,} events{what}")
    return [Row(ctx.backend.name, case, title, "events/s", figures, checks=[
        Check.ratio_of(figures, SHRED, ES, target=target, at_least=True),
        Check.ratio_of(figures, SHRED, RAW, target=None, at_least=True),
    ])]


def single_append_case(ctx: Context, *, new: bool) -> list[Row]:
    """Single-event appends, each its own transaction: to subjects that already have events
    (and a key), round-robin; or each to a subject never seen before (its first event)."""
    sizes = ctx.sizes
    if new:
        return append_case(ctx, "append-x1-new", Layout(sizes.singles, 1, sizes.singles),
                           1.2, what=", each the first event of a new subject")
    layout = Layout(sizes.customers + sizes.singles, 1, sizes.customers)
    return append_case(ctx, "append-x1", layout, 1.2, existing=sizes.customers,
                       what=f", round-robin to {sizes.customers:,} existing subjects")


def _timed_reads(ctx: Context, sessions: dict[str, Session], layout: Layout, *,
                 erased: bool = False) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {name: [] for name in sessions}
    for rep in range(ctx.repeat):
        for name in turns(list(sessions), rep):
            session = sessions[name]
            elapsed, (count, sample) = clock(functools.partial(sampled_read, session, None),
                                             name)
            verify_read(session, sample, count, layout, erased=erased)
            runs[name].append(count / elapsed)
            progress(f"  read-all{' erased' if erased else ''} {name}: "
                     f"{count / elapsed:,.0f} events/s")
    return runs


def read_case(ctx: Context) -> list[Row]:
    """read_all of the whole log by every contender; then shredstore's after erasure."""
    layout = Layout(ctx.sizes.read, per_append=BATCH, customers=ctx.sizes.customers)
    with contextlib.ExitStack() as stack:
        sessions = {name: stack.enter_context(fresh_session(ctx.backend, name))[0]
                    for name in (SHRED, ES, RAW)}
        for session in sessions.values():
            fill(session, layout, "read-all")
        before = _timed_reads(ctx, sessions, layout)
        shred = sessions[SHRED]
        customers = sorted({batch.customer for batch in layout.batches()})
        progress(f"    erasing all {len(customers):,} subjects (untimed)")
        for customer in customers:
            shred.erase(customer)
        _ensure(all(shred.is_erased(c) for c in customers), "an erasure did not take")
        after = _timed_reads(ctx, {SHRED: shred}, layout, erased=True)
    figures = {name: Figure.of(values) for name, values in before.items()}
    after_figure = Figure.of(after[SHRED])
    title = f"read_all, decrypt + decode: {layout.events:,} events"
    return [
        Row(ctx.backend.name, "read-all", title, "events/s", figures, checks=[
            Check.ratio_of(figures, SHRED, ES, target=1.3, at_least=True),
            Check.ratio_of(figures, SHRED, RAW, target=None, at_least=True),
        ]),
        Row(ctx.backend.name, "read-all", f"read_all after erasing all {len(customers):,} "
            "subjects", "events/s", {SHRED: after_figure, ES: None, RAW: None}, checks=[
            Check("shredstore erased / before", after_figure.median / figures[SHRED].median,
                  target=1.0, at_least=True),
        ]),
    ]


def aggregate_case(ctx: Context, *, snapshots: bool = False) -> list[Row]:
    """Loads of aggregates of `aggregate_events` events each: loads/s. With `snapshots`, each
    aggregate's snapshot is taken (untimed) after its events, and loads start from it
    (shredstore and eventsourcing; raw has no snapshots)."""
    count, per = ctx.sizes.aggregates, ctx.sizes.aggregate_events
    case = "aggregates-snapshot" if snapshots else "aggregates"
    layout = Layout(count * per, per_append=per, customers=count)
    runs: dict[str, list[float]] = {name: [] for name in (SHRED, ES, RAW)
                                    if not snapshots or CONTENDERS[name].has_snapshots}
    with contextlib.ExitStack() as stack:
        sessions = {name: stack.enter_context(fresh_session(ctx.backend, name,
                                                            snapshots=snapshots))[0]
                    for name in runs}
        for session in sessions.values():
            fill(session, layout, case)
            if snapshots:
                progress(f"    {session.label}: a snapshot of each of {count:,} aggregates "
                         "(untimed)")
                for customer in range(count):
                    session.snapshot(customer)
                    _ensure(session.snapshot_version(customer) == per,
                            f"{session.label}: no snapshot of aggregate {customer}")
        for rep in range(ctx.repeat):
            for name in turns(list(runs), rep):
                session = sessions[name]
                elapsed, loaded = clock(functools.partial(load_all, session, count), name)
                for customer, aggregate in enumerate(loaded):
                    last = layout.event_at(customer * per + per - 1)
                    _ensure(session.matches_aggregate(aggregate, last),
                            f"{session.label}: aggregate {customer} loaded wrong")
                runs[name].append(count / elapsed)
                progress(f"  {case} {name}: {count / elapsed:,.0f} loads/s")
    figures: dict[str, Figure | None] = {name: Figure.of(values)
                                         for name, values in runs.items()}
    checks = [Check.ratio_of(figures, SHRED, ES, target=1.5, at_least=True)]
    if snapshots:
        figures[RAW] = None
        title = f"aggregate loads from snapshots: {count:,} aggregates of {per} events"
    else:
        checks.append(Check.ratio_of(figures, SHRED, RAW, target=None, at_least=True))
        title = f"aggregate loads: {count:,} aggregates of {per} events"
    return [Row(ctx.backend.name, case, title, "loads/s", figures, checks=checks)]


def writers_case(ctx: Context) -> list[Row]:
    """`writers` processes appending at once, each to its own streams: events/s in all."""
    sizes = ctx.sizes
    layouts = writer_layouts(sizes.writers, sizes.writer_events, sizes.writer_streams)
    total = sum(layout.events for layout in layouts)
    names = [SHRED, ES, RAW]
    runs: dict[str, list[float]] = {name: [] for name in names}
    retries: dict[str, int] = dict.fromkeys(names, 0)
    with WriterPool(len(layouts)) as pool:
        for rep in range(ctx.repeat):
            for name in turns(names, rep):
                with ctx.backend.fresh() as location:
                    secret = CONTENDERS[name].new_secret()
                    CONTENDERS[name].open(location, secret).close()  # tables, before the race
                    done = pool.run(name, location, secret, layouts)
                    _SPENT.add(name, done.wall, done.cpu)
                    session = CONTENDERS[name].open(location, secret)
                    try:
                        verify_log(session, layouts, positions=name == SHRED)
                    except Exception as error:
                        if code_changed():
                            raise RuntimeError(
                                f"{name}'s writers' log does not read back here, and the "
                                "library's code changed since this run started (the writer "
                                "processes may have written with code this process does not "
                                "have): run again") from error
                        raise
                    finally:
                        session.close()
                retries[name] += done.retries
                runs[name].append(total / done.wall)
                progress(f"  writers {name}: {total / done.wall:,.0f} events/s"
                         + (f" ({done.retries} busy retries)" if done.retries else ""))
    figures = {name: Figure.of(values) for name, values in runs.items()}
    busy = ", ".join(f"{name} {count}" for name, count in retries.items() if count)
    note = "client CPU summed over the writer processes"
    if busy:
        note += f"; appends retried because the database was locked: {busy}"
    title = (f"{sizes.writers} writer processes at once, appends of {WRITER_BATCH}: "
             f"{total:,} events")
    return [Row(ctx.backend.name, "writers", title, "events/s", figures, note=note, checks=[
        Check.ratio_of(figures, SHRED, ES, target=1.2, at_least=True),
        Check.ratio_of(figures, SHRED, RAW, target=None, at_least=True),
    ])]


def _window(session: Session, layout: Layout, start: int, stop: int, who: str) -> float:
    """Appends `start` to `stop` of `layout`, timed: events/s; checked afterwards."""
    prepared = session.prepare(layout.batches(start, stop))
    elapsed, _ = clock(functools.partial(append_all, session, prepared), who)
    del prepared
    last = layout.event_at(stop * layout.per_append - 1)
    _ensure(session.count() == stop * layout.per_append, f"{session.label}: wrong count")
    _ensure(session.matches(session.last_of(last.customer), last),
            f"{session.label}: the last event read back wrong")
    return (stop - start) * layout.per_append / elapsed


def flat_case(ctx: Context, *, keep: bool) -> list[Row]:
    """Appends of 100 timed in windows when the log is small and again when it is large:
    events/s at each, and the ratio. With `keep`, the large logs stay for the memory case."""
    sizes = ctx.sizes
    layout = Layout(sizes.memory_big, BATCH, sizes.customers)
    span = ctx.repeat * sizes.flat_window  # appends timed per phase and contender
    small_start = max(0, sizes.flat_small // BATCH - span // 2)  # windows around flat_small
    big_start = layout.appends - span  # the last windows end the log at memory_big
    _ensure(small_start + span <= big_start, "the flat case's small and large logs overlap")
    names = [SHRED, ES, RAW]
    runs: dict[tuple[str, str], list[float]] = {}
    with contextlib.ExitStack() as stack:
        logs = {name: (ctx.shared if keep else stack).enter_context(
            fresh_session(ctx.backend, name)) for name in names}
        done = dict.fromkeys(names, 0)
        for phase, start in (("small", small_start), ("large", big_start)):
            for name in names:
                session = logs[name][0]
                progress(f"    filling {session.label} to {start * BATCH:,} events (untimed)")
                session.fill(layout, start=done[name], stop=start)
                done[name] = start
            for rep in range(ctx.repeat):
                for name in turns(names, rep):
                    stop = done[name] + sizes.flat_window
                    rate = _window(logs[name][0], layout, done[name], stop, name)
                    runs.setdefault((name, phase), []).append(rate)
                    progress(f"  flat {name} at {done[name] * BATCH:,} events: "
                             f"{rate:,.0f} events/s")
                    done[name] = stop
        if keep:
            ctx.large_logs.update({name: (*logs[name], layout) for name in (SHRED, ES)})
    small = {name: Figure.of(runs[name, "small"]) for name in names}
    large = {name: Figure.of(runs[name, "large"]) for name in names}
    window = sizes.flat_window * BATCH
    checks = [Check(f"{name} large / small", large[name].median / small[name].median,
                    target=0.9 if name == SHRED else None, at_least=True) for name in names]
    return [
        Row(ctx.backend.name, "flat", f"append x100 in windows of {window:,} events, log at "
            f"{small_start * BATCH:,}-{(small_start + span) * BATCH:,} events", "events/s",
            small, checks=[Check.ratio_of(small, SHRED, ES, target=None, at_least=True)]),
        Row(ctx.backend.name, "flat", f"append x100 in windows of {window:,} events, log at "
            f"{big_start * BATCH:,}-{layout.events:,} events", "events/s", large,
            checks=[Check.ratio_of(large, SHRED, ES, target=None, at_least=True), *checks]),
    ]


def erase_case(ctx: Context) -> list[Row]:
    """Erasure latency for a subject with few events and one with very many: ms. The erasure
    itself (`erasure.shred`) and the receipt's evidence (`erasure.receipt_for`) separately."""
    small, big = ctx.sizes.erase_small, ctx.sizes.erase_big
    times: dict[tuple[str, int], list[float]] = {}
    with fresh_session(ctx.backend, SHRED) as (session, _, _):
        subjects = []
        for rep in range(ctx.repeat):  # each repetition erases subjects of its own
            small_subject, big_subject = 100_000 + rep, 200_000 + rep
            fill_log(session, Layout(small, per_append=small, customers=1,
                                     first_customer=small_subject))
            fill_log(session, Layout(big, per_append=BATCH, customers=1,
                                     first_customer=big_subject))
            subjects.append(((small, small_subject), (big, big_subject)))
        session.scrub()
        for rep, pair in enumerate(subjects):
            for events, customer in (pair if rep % 2 == 0 else pair[::-1]):
                shredding, shredded = clock(functools.partial(session.erase, customer), SHRED)
                evidence, receipt = clock(functools.partial(session.receipt, shredded), SHRED)
                last = Layout(events, per_append=BATCH if events == big else small,
                              customers=1, first_customer=customer).event_at(events - 1)
                _ensure(session.is_erased(customer) and session.matches(
                    session.last_of(customer), last, erased=True), "the erasure did not take")
                _ensure(receipt.ok and receipt.footprint.events == events,
                        "the receipt does not show the erasure")
                times.setdefault(("erase", events), []).append(shredding * 1000)
                times.setdefault(("receipt", events), []).append(evidence * 1000)
                progress(f"  erase {events:,}-event subject: {shredding * 1000:.2f} ms, "
                         f"receipt {evidence * 1000:.2f} ms")
    figure = {key: Figure.of(values) for key, values in times.items()}
    rows = []
    for part, title in (("erase", "erasure (key destroyed, ledger entry)"),
                        ("receipt", "erasure receipt (evidence)")):
        few, many = figure[part, small], figure[part, big]
        check = Check(f"time {big:,} / {small:,}", many.median / few.median, target=1.5,
                      at_least=False) if part == "erase" else Check(
            f"time {big:,} / {small:,}", many.median / few.median, target=None)
        rows += [
            Row(ctx.backend.name, "erase", f"{title}, subject with {small:,} events", "ms",
                {SHRED: few, ES: None, RAW: None}, higher_is_better=False),
            Row(ctx.backend.name, "erase", f"{title}, subject with {big:,} events", "ms",
                {SHRED: many, ES: None, RAW: None}, higher_is_better=False, checks=[check]),
        ]
    return rows


def fill_log(session: Session, layout: Layout) -> None:
    progress(f"    filling subject {layout.first_customer} with {layout.events:,} events "
             "(untimed)")
    session.fill(layout)


def memory_case(ctx: Context) -> list[Row]:
    """Peak RSS of fresh processes reading 1,000 events and the whole (large) log: MiB."""
    layout = Layout(ctx.sizes.memory_big, per_append=BATCH, customers=ctx.sizes.customers)
    small = ctx.sizes.memory_small
    repeat = ctx.sizes.memory_repeat or ctx.repeat
    peaks: dict[str, dict[int, list[float]]] = {n: {small: [], layout.events: []}
                                                for n in (SHRED, ES)}
    with contextlib.ExitStack() as stack:
        if ctx.large_logs:  # filled by the flat case: the same layout, complete
            logs = {name: ctx.large_logs[name][:3] for name in peaks}
            _ensure(all(ctx.large_logs[name][3] == layout for name in peaks),
                    "the flat case's logs are not the memory case's")
            progress(f"    reading the flat case's logs of {layout.events:,} events")
        else:
            logs = {name: stack.enter_context(fresh_session(ctx.backend, name))
                    for name in peaks}
            for session, _, _ in logs.values():
                fill(session, layout, "memory")
        for rep in range(repeat):
            for name in turns(list(peaks), rep):
                _, location, secret = logs[name]
                for size in (small, layout.events):
                    read, peak = peak_rss(name, location, secret, layout,
                                          None if size == layout.events else size)
                    _ensure(read == size, f"the memory child of {name} read {read} events")
                    peaks[name][size].append(peak)
                    progress(f"  memory {name} read {size:,}: peak RSS {peak:.1f} MiB")
    low = {n: Figure.of(peaks[n][small]) for n in peaks} | {RAW: None}
    high = {n: Figure.of(peaks[n][layout.events]) for n in peaks} | {RAW: None}
    note = f"{repeat} run(s) each" if repeat != ctx.repeat else ""
    return [
        Row(ctx.backend.name, "memory", f"peak RSS, read_all of {small:,} events", "MiB",
            low, higher_is_better=False, note=note),
        Row(ctx.backend.name, "memory", f"peak RSS, read_all of {layout.events:,} events",
            "MiB", high, higher_is_better=False, note=note, checks=[
                Check.growth(low, high, SHRED, target=1.2),
                Check.growth(low, high, ES, target=None),
            ]),
    ]


def run_backend(ctx: Context, cases: Sequence[str]) -> list[Row]:
    sizes = ctx.sizes
    runners: dict[str, Callable[[], list[Row]]] = {
        "append-x1": lambda: single_append_case(ctx, new=False),
        "append-x1-new": lambda: single_append_case(ctx, new=True),
        "append-x100": lambda: append_case(
            ctx, "append-x100", Layout(sizes.batched, BATCH, sizes.customers),
            1.5 if ctx.backend.name == "postgres" else 1.3),
        "read-all": lambda: read_case(ctx),
        "aggregates": lambda: aggregate_case(ctx),
        "aggregates-snapshot": lambda: aggregate_case(ctx, snapshots=True),
        "writers": lambda: writers_case(ctx),
        "flat": lambda: flat_case(ctx, keep="memory" in cases),
        "erase": lambda: erase_case(ctx),
        "memory": lambda: memory_case(ctx),
    }
    rows: list[Row] = []
    for case in cases:
        progress(f"{ctx.backend.name} {case}:")
        started = time.perf_counter()
        _SPENT.clear()
        found = runners[case]()
        if _SPENT.wall:  # the memory case times child processes: nothing clocked here
            found = [dataclasses.replace(row, note="; ".join(filter(None, (
                row.note, _SPENT.note())))) for row in found]
        rows.extend(found)
        progress(f"  ({time.perf_counter() - started:.0f} s; {_SPENT.note()})")
    return rows


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare shredstore with eventsourcing 9.5 + AESCipher and raw SQLAlchemy.")
    add_common_arguments(parser, quick_help="~20x smaller sizes: a smoke run",
                         json_help="where to write the results (default benchmarks/results/...)")
    parser.add_argument("--medium", action="store_true",
                        help="~6x smaller sizes than the full run (~10 min)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of: {', '.join(CASES)}")
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    if args.quick and args.medium:
        parser.error("--quick and --medium are two sizes: choose one")
    args.cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown or not args.cases:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    args.cases = [case for case in CASES if case in args.cases]
    return args


def select_backends(choice: str, postgres_url: str) -> list[Backend]:
    return common.select_backends(choice, postgres_url, sqlite=sqlite_backend,
                                  postgres=postgres_backend)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else MEDIUM if args.medium else FULL
    backends = select_backends(args.backend, args.postgres_url)
    revision = report.git_revision()  # at the start: the code may change while this runs
    started = time.perf_counter()
    rows: list[Row] = []
    try:
        for backend in backends:
            progress(f"== {backend.description}")
            ctx = Context(backend, args.repeat, sizes)
            with ctx.shared:
                rows.extend(run_backend(ctx, args.cases))
    finally:
        leftovers = [name for backend in backends for name in backend.leftovers()]
        for backend in backends:
            backend.dispose()
        if leftovers:
            progress(f"WARNING: schemas left behind: {', '.join(leftovers)}")
    seconds = time.perf_counter() - started
    meta = report.metadata(backends, quick=args.quick, repeat=args.repeat, sizes=sizes,
                           seconds=seconds, cases=args.cases, git=revision)
    meta["size"] = "quick" if args.quick else "medium" if args.medium else "full"
    if report.git_revision() != revision:
        meta["notes"].append(
            f"The code changed during the run (git {revision} at the start, "
            f"{report.git_revision()} at the end): timed cases ran the code loaded at the "
            "start; each memory child imported the code of its moment.")
    print(report.format_table(rows, [CONTENDERS[name].label for name in CONTENDERS]))
    print()
    print(report.format_notes(meta))
    path = args.json or _RESULTS / f"compare-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    report.write_json(path, rows, meta)
    print(f"\nJSON: {path}")
    return 0
