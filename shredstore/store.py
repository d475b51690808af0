"""`EventStore`: the facade applications use to append, read, erase and verify events."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, JsonValue
from sqlalchemy.engine import URL, Connection, Engine, make_url

import keyvault
from keyvault import ErasureResult, KeyProvider, KeyRing, KeyVault, SubjectStatus
from keyvault.names import check_subject, is_utf8
from shredstore import expected as _expected
from shredstore.causation import with_cause
from shredstore.errors import (
    ConfigurationError,
    DuplicateEventError,
    EventDecodingError,
    NotInitialisedError,
    ReadOnlyStoreError,
    StorageError,
    SubjectErasedError,
    TamperedError,
    vault_configuration_errors,
)
from shredstore.events import (
    E2,
    E3,
    E,
    Event,
    EventClassesOf,
    EventRegistry,
    RecordedEvent,
    checked_records,
    default_registry,
    selected_records,
)
from shredstore.evidence import ErasureReceipt
from shredstore.expected import ANY, ExpectedVersion
from shredstore.mapping.column import try_decode_column
from shredstore.mapping.encoding import encode_metadata
from shredstore.mapping.mapper import EventMapper, open_one, page_subjects
from shredstore.mapping.snapshots import snapshot_of, state_from
from shredstore.personal import dotted, plan_of
from shredstore.storage.authentication import ROWS_KEY, RowAuthenticator, RowCheck
from shredstore.storage.chain import Finding, LogHead, StoredRow, VerifyReport, verify_rows
from shredstore.storage.engine import create_engine, create_read_only_engine
from shredstore.storage.index import IndexCheck
from shredstore.storage.log import AppendResult, EventLog, NewRow, PersonalRow
from shredstore.storage.scope import Scope
from shredstore.storage.snapshots import SnapshotRow, SnapshotTable, snapshot_row
from shredstore.subject import (
    CiphertextCheck,
    Footprint,
    LedgerGaps,
    Shredded,
    SubjectScan,
)
from shredstore.system import LEDGER_STREAM, SYSTEM_EVENTS, SubjectErased

__all__ = ["DEFAULT_URL", "ErasureWorkflow", "EventStore", "use_erasure_workflow"]

M = TypeVar("M", bound=BaseModel)

_EMPTY_METADATA = "{}"
Metadata = Mapping[str, JsonValue] | Iterable[Mapping[str, JsonValue]] | None
"""An append's metadata: one mapping for every event, one per event, or none."""
_Batch = tuple[str, list[Event], list[str], int | ExpectedVersion]
_KEY_RACE_ATTEMPTS = 3  # a new subject's key raced by another process: seal again

DEFAULT_URL = "sqlite:///shredstore.db"
"""The embedded default: an SQLite file in the working directory."""

_snapshot_log = logging.getLogger("shredstore.snapshots")
_SHOWN_PROBLEMS = 20
"""At most this many of the database's own integrity findings are reported (SQLite lists up
to 100; the first ones say enough to restore from a backup)."""


class EventStore:
    """An append-only, tamper-evident log of domain events, with crypto-shredded personal data.

    ``EventStore("sqlite:///events.db", master_key=master)``, or a PostgreSQL URL, or an
    SQLAlchemy `Engine`. Personal-data fields are sealed with their subject's key from the key
    vault, which lives in the same database unless `vault_url` names another. Without a master
    key the store appends and reads events without personal data, and can erase subjects.
    The tables are created if missing (``create=False``: `NotInitialisedError` instead). Use
    it as a context manager, or call `close()`.

    ``read_only=True`` opens an existing store and writes nothing: for auditors' copies on
    read-only files or mounts, and replicas. Reads, `verify`, `subject_status` and masked
    reports work; appends, erasures and revealing reads (which must first be recorded in
    ``$access``) raise `ReadOnlyStoreError`. `read_only_note` says how an SQLite file had to
    be opened, if not plainly (see `shredstore.storage.engine.create_read_only_engine`).

    With the master key, every row appended and every snapshot saved carries an authenticator
    (keyed under the vault's service key ``shredstore.rows.v1``), and every read checks it:
    an altered row raises `TamperedError`, also when its subject was erased, and an altered
    snapshot is never loaded (see `shredstore.storage.authentication`). Without the master key
    nothing can be checked but the hash chain, by `verify`. A database written by an earlier
    format (rows without authenticators) is refused with `ConfigurationError`.
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
    ) -> None:
        self._owns_engine = not isinstance(url, Engine)
        self._vault: KeyVault | None = None
        self._engine, self.read_only_note = _engine_for(url, read_only=read_only)
        shared = vault_url is None or vault_url == url
        self._log = EventLog(self._engine)
        self._snapshots = SnapshotTable(self._engine)
        for system_event in SYSTEM_EVENTS:  # the ledger's and $access's events read as such
            if registry.find(system_event.__event_type__) is None:
                registry.register(system_event)
        self._registry = registry
        self._mapper = EventMapper(registry)
        self._rows: RowAuthenticator | None = None
        try:
            vault_at: str | URL | Engine = self._engine
            with _read_only_named(self._engine, read_only=read_only):
                if (not create or read_only) and not self._log.is_installed():
                    raise NotInitialisedError(
                        f"no event store at {_shown(url)}: run `shredstore init` first")
                if read_only:
                    self._log.open_read_only()
                else:
                    self._log.install()
            if not shared and vault_url is not None:
                vault_at = _engine_for(vault_url, read_only=True)[0] if read_only else vault_url
            self._vault = _open_vault(vault_at, master_key=master_key,
                                      cache_size=cache_size, read_only=read_only,
                                      erasure_record=_Ledger(self._log, shared=shared))
            self._owns_vault_engine = read_only and not shared
            if master_key is not None:
                self._rows = RowAuthenticator(self._row_key,
                                              declares_personal=self._declares_personal)
                self._log.authenticate(self._rows)
                if shared:
                    # The erasure check of a page's keyring, on the page's connection.
                    self._log.after_each_page(self._vault.ask_refresh)
        except BaseException:
            self.close()
            raise
        self._vault_shares_database = shared
        self._has_master_key = master_key is not None

    @property
    def registry(self) -> EventRegistry:
        """The registry of event classes this store reads and writes with."""
        return self._registry

    @property
    def vault(self) -> KeyVault:
        """The key vault that holds the subjects' keys."""
        if self._vault is None:
            raise ConfigurationError("the store is closed")
        return self._vault

    def append(
        self,
        stream_id: str,
        events: Iterable[Event],
        *,
        expected_version: int | ExpectedVersion = ANY,
        metadata: Metadata = None,
        in_transaction: Callable[[Connection, AppendResult], None] | None = None,
    ) -> AppendResult:
        """Append `events` to the end of `stream_id`, atomically.

        `expected_version` is ANY, NO_STREAM, STREAM_EXISTS, or the version of the stream's
        last event (0 for none). On a mismatch `WrongExpectedVersion` is raised and nothing is
        written. `metadata` (correlation_id, causation_id and any JSON keys) is stored with
        each event, or, as a sequence of mappings, one per event; it must not contain
        personal data. Inside `shredstore.causation.caused_by(record)` the correlation and
        causation ids are added for you. Appending the same event instances again after a
        commit (a retry) stores nothing and returns the first result.

        `in_transaction(connection, result)` writes the caller's own rows (a tracking row, an
        outbox, a saga's bookkeeping) in the append's transaction, once the events are in:
        its writes commit with them or not at all, and whatever it raises aborts the append
        and is raised as is. It must not commit, roll back or close the connection, and it
        should only write rows: it may run more than once when the append retries internally
        (each earlier run rolled back), and not at all for a retry that finds the append
        already committed. The rows must live in the store's database (`engine`).
        """
        after = None if in_transaction is None else (
            lambda connection, results: in_transaction(connection, results[0]))
        (result,) = self._append_batches([self._batch(stream_id, events, expected_version,
                                                      metadata)], after)
        return result

    def append_many(
        self,
        streams: Mapping[str, tuple[Iterable[Event], int | ExpectedVersion]
                         | tuple[Iterable[Event], int | ExpectedVersion, Metadata]],
        *,
        metadata: Metadata = None,
        in_transaction: Callable[[Connection, dict[str, AppendResult]], None] | None = None,
    ) -> dict[str, AppendResult]:
        """Append to several streams in one transaction: all or nothing.

        ``store.append_many({"order-7": ([OrderPlaced(...)], NO_STREAM),
        "payment-7": ([PaymentRequested(...)], 3)})``: each stream with its events and its
        expected version, checked as `append` checks one (a mismatch on any stream writes
        nothing and raises `WrongExpectedVersion` naming it). The events take positions in
        the order of the mapping. `metadata` is stored with every event; a stream's own
        metadata (a third element: a mapping, or one per event) replaces it for that stream.
        `in_transaction(connection, results)` is `append`'s, with the results by stream.
        Retries, erased subjects and key races behave as in `append`. Returns the results by
        stream, in the mapping's order.
        """
        if not isinstance(streams, Mapping):
            raise ConfigurationError(
                "append_many takes a mapping of stream id -> (events, expected version)")
        batches = []
        for stream_id, value in streams.items():
            if not isinstance(value, tuple) or len(value) not in (2, 3):
                raise ConfigurationError(
                    f"append_many: the value for stream {stream_id!r} must be (events, "
                    "expected version) or (events, expected version, metadata)")
            events, expected_version, *own = value
            batches.append(self._batch(stream_id, events, expected_version,
                                       own[0] if own else metadata))
        after = None if in_transaction is None else (
            lambda connection, results: in_transaction(
                connection, {result.stream_id: result for result in results}))
        results = self._append_batches(batches, after) if batches else []
        return {result.stream_id: result for result in results}

    def _batch(self, stream_id: str, events: Iterable[Event],
               expected_version: int | ExpectedVersion, metadata: Metadata) -> _Batch:
        """One stream's part of an append, checked: (stream id, events, each event's encoded
        metadata, expected version)."""
        _check_stream_id(stream_id)
        if stream_id.startswith("$"):
            raise ConfigurationError(
                "stream ids starting with $ are reserved for the store's own streams "
                "(such as the erasure ledger, $erasures)")
        expected_version = _expected.validate(expected_version)
        batch = list(events)
        if isinstance(metadata, Mapping) or metadata is None:
            encoded = [encode_metadata(with_cause(metadata))] * len(batch)
        else:
            each = list(metadata)
            if len(each) != len(batch):
                raise ConfigurationError(
                    f"{len(each)} metadata mappings for {len(batch)} events: give one mapping "
                    "for all, or one per event")
            encoded = [encode_metadata(with_cause(item)) for item in each]
        return stream_id, batch, encoded, expected_version

    def _append_batches(
        self, batches: list[_Batch],
        after_insert: Callable[[Connection, list[AppendResult]], None] | None,
    ) -> list[AppendResult]:
        """`append` and `append_many`: the whole of several streams' appends, retries and the
        erased subject's refusal included."""
        ids = [event.event_id for _, events, _, _ in batches for event in events]
        if len(set(ids)) != len(ids):
            raise DuplicateEventError("a batch holds the same event (event id) twice")
        needs_keys = any(map(self._mapper.needs_keys,
                             (event for _, events, _, _ in batches for event in events)))
        try:
            with vault_configuration_errors():
                for _ in range(_KEY_RACE_ATTEMPTS - 1):
                    with contextlib.suppress(keyvault.KeyCreationConflict):
                        return self._append(batches, needs_keys, after_insert=after_insert)
                return self._append(batches, needs_keys, after_insert=after_insert)
        except keyvault.SubjectErasedError as error:
            # A retry of an append that committed before the erasure still succeeded.
            previous = [self._log.previous_append(
                stream_id, [(event.event_id, type(event).__event_type__) for event in events],
                expected_version=expected_version)
                for stream_id, events, _, expected_version in batches]
            if all(result is not None for result in previous):
                return [result for result in previous if result is not None]
            raise _erased(error) from None

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
        of: EventClassesOf[E, E2, E3] | None = None,
    ) -> Iterator[RecordedEvent[E | E2 | E3]]:
        """The events of one stream by version; an unknown stream reads as empty.

        Forwards from `from_version` (default: the first), or with ``backwards=True`` down from
        it (default: the last). At most `limit` events.

        ``of=Cls`` (or a tuple of classes) says what the stream holds, for the type checker
        (records typed ``RecordedEvent[Cls]``) and checked as it is read: an event that is not
        an instance raises `UnexpectedEventType` when the read reaches it. Nothing is skipped:
        a fold over a stream must see every event.
        """
        _check_stream_id(stream_id)
        _check_count("from_version", from_version, minimum=1)
        _check_count("limit", limit, minimum=0)
        records: Iterator[RecordedEvent[Any]] = self._decode(self._log.read_stream(
            stream_id, from_version=from_version, backwards=backwards, limit=limit
        ))
        return records if of is None else checked_records(records, of, stream_id=stream_id)

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        types: Iterable[str | type[Event]] | None = None,
        of: EventClassesOf[E, E2, E3] | None = None,
    ) -> Iterator[RecordedEvent[E | E2 | E3]]:
        """Every event after position `after`, in global order; optionally only some types.

        A reader that remembers the last position it saw and calls again with ``after=`` that
        position never misses an event, even while other processes append.

        ``types=`` selects by stored type name, exactly. ``of=Cls`` (or a tuple of classes)
        selects the events that read as instances of it, subclasses included, and types the
        records ``RecordedEvent[Cls]``; with both, an event must pass both. Both are
        filters in the database (``of=`` through the registered classes' type names), so
        `limit` counts the selected events; ``of=UnknownEvent`` alone is told apart as the
        events are read.
        """
        _check_count("after", after, minimum=0)
        _check_count("limit", limit, minimum=0)
        names = None if types is None else [
            kind if isinstance(kind, str) else kind.__event_type__ for kind in types
        ]
        if of is None:
            records: Iterator[RecordedEvent[Any]] = self._decode(
                self._log.read_all(after=after, limit=limit, types=names))
            return records
        by_class = self._registry.names_of(of)
        if by_class is None:  # not told apart by name: limit what passes the check
            return selected_records(
                self._decode(self._log.read_all(after=after, types=names)), of, limit)
        if names is not None:
            by_class = sorted(set(by_class).intersection(names))
        return selected_records(
            self._decode(self._log.read_all(after=after, limit=limit, types=by_class)), of)

    def read_subject(self, subject_id: str, *, after: int = 0,
                     of: EventClassesOf[E, E2, E3] | None = None
                     ) -> Iterator[RecordedEvent[E | E2 | E3]]:
        """Every event that names `subject_id`, in global order, found through the index
        (only events whose own stored subjects name it: a forged index entry shows nothing).
        ``of=`` selects, as in `read_all`."""
        _check_subject(subject_id)
        _check_count("after", after, minimum=0)
        records: Iterator[RecordedEvent[Any]] = self._decode(
            self._log.read_subject(subject_id, after=after))
        return records if of is None else selected_records(records, of)

    def erase_subject(
        self,
        subject_id: str,
        *,
        reason: str | None = None,
        request_id: str | None = None,
        signing_key: Ed25519PrivateKey | None = None,
        verify_residue: bool = False,
        read_models: str | URL | Engine | None = None,
    ) -> ErasureReceipt:
        """Destroy the subject's key: from now on its personal fields read as redacted.

        Idempotent. The log is not rewritten; a `SubjectErased` event (no personal data) is
        appended to the ledger stream ``$erasures``, once per subject. Returns the erasure
        receipt (signed with `signing_key`, an Ed25519 private key, if given): see
        `shredstore.erasure`. `reason` and `request_id` are kept with the erasure record and
        in the ledger: never put personal data in them. `verify_residue` also scans the
        read models (in `read_models`, default this database) once their projections have
        applied the erasure, and reports what they still hold of the subject in the receipt.
        """
        if _erasure_workflow is None:  # pragma: no cover - importing shredstore sets it
            raise ConfigurationError("import shredstore.erasure for the erasure workflow")
        return _erasure_workflow(self, subject_id, reason=reason, request_id=request_id,
                                 signing_key=signing_key, verify_residue=verify_residue,
                                 read_models=read_models)

    def subject_footprint(self, subject_id: str) -> Footprint:
        """What the log holds of the subject's personal data: events, streams, event types,
        fields and snapshots (from the subject index and the stored groups; nothing opened)."""
        return self._scan_subject(subject_id, sample=0).footprint

    def subject_status(self, subject_id: str) -> SubjectStatus:
        """Whether the subject has a key ("active"), was "erased" (and when), or is "unknown".

        The erasure ledger outranks the vault: a subject it names is "erased" (as the ledger
        recorded it) even where the vault holds its key again or has no tombstone (a vault
        restored from a backup); `verify` reports the difference, `reconcile` repairs it.
        """
        with vault_configuration_errors():
            status = self.vault.status(subject_id)
        if status.state == "erased":
            return status
        found = self._ledger_entry(subject_id)
        if found is None:
            return status
        entry = found[1]
        return SubjectStatus(subject_id, "erased", created_at=status.created_at,
                             erased_at=entry.erased_at, request_id=entry.request_id,
                             reason=entry.reason, key_fingerprint=entry.key_fingerprint)

    def _ledger_entry(self, subject_id: str) -> tuple[int, SubjectErased] | None:
        """The subject's entry in the erasure ledger and its position, or None."""
        _check_subject(subject_id)
        row = self._log.ledger_row(subject_id)
        if row is None:
            return None
        record = next(self._decode(iter([[row]])))
        event = record.event
        if record.stream_id != LEDGER_STREAM or not isinstance(event, SubjectErased) \
                or event.subject_id != subject_id:
            raise TamperedError(f"the row at position {row.position} carries the ledger id "
                                "of a subject it does not record: the log was altered")
        return record.position, event

    def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last event, 0 if it has none."""
        _check_stream_id(stream_id)
        return self._log.stream_version(stream_id)

    def head(self) -> LogHead:
        """The position and chain hash of the last event: an anchor for a later `verify`."""
        return self._log.head()

    def verify(self, *, expected_head: LogHead | None = None) -> VerifyReport:
        """Walk the whole log and report, by position, every row that is not as written.

        Also reports what the database's own integrity check finds ("damaged": SQLite's
        ``PRAGMA integrity_check``), immutability triggers that are missing, every difference
        between the erasure ledger and the vault's tombstones ("resurrected": a key held again
        for a subject the ledger names, "untombstoned": no tombstone for one, "unrecorded": a
        tombstone the ledger lacks; run `shredstore.erasure.reconcile`), subject-index entries
        that do not
        match the events ("index"), and, given an `expected_head` kept from earlier, a log
        truncated or rewritten behind that anchor. With the master key, also every row whose
        authenticator fails or is missing where it is needed ("forged"), every snapshot that fails
        authentication ("snapshot"), and the count of rows accepted without one
        (`unauthenticated`).
        """
        rows = RowCheck(self._rows) if self._rows is not None else None
        index = IndexCheck(self._log.index_entries())

        def walked() -> Iterator[StoredRow]:
            for row in self._log.rows():
                if rows is not None:
                    rows.step(row)
                index.step(row)
                yield row

        report = verify_rows(walked(), expected_head=expected_head)
        positional = sorted(
            (*report.findings, *(rows.findings if rows is not None else ()), *index.finish()),
            key=lambda f: (-1 if f.position is None else f.position, f.kind))
        extra = tuple(
            Finding("damaged", None, f"the database's own integrity check: {problem}")
            for problem in self._log.integrity_problems()[:_SHOWN_PROBLEMS]
        ) + tuple(
            Finding("unprotected", None, f"the immutability trigger {name} is missing")
            for name in self._log.missing_triggers()
        ) + self._ledger_findings() + self._snapshot_findings()
        return VerifyReport(report.events_checked, report.head, extra + tuple(positional),
                            unauthenticated=rows.unauthenticated if rows is not None else None)

    def _ledger_findings(self) -> tuple[Finding, ...]:
        try:
            gaps = self.ledger_gaps()
        except TamperedError:
            return ()  # a ledger row failed authentication: reported as "forged" by position
        repair = "run `shredstore reconcile`"
        return tuple(
            Finding("resurrected", position,
                    f"the vault holds a key again for subject {subject!r}, which the erasure "
                    f"ledger says was erased (a vault restored from a backup?): {repair}")
            for subject, position in gaps.resurrected
        ) + tuple(
            Finding("untombstoned", position,
                    f"the vault has no tombstone for subject {subject!r}, which the erasure "
                    f"ledger says was erased (a restored vault, a deleted row?): {repair}")
            for subject, position in gaps.untombstoned
        ) + tuple(
            Finding("unrecorded", None,
                    f"the vault erased subject {subject!r} but the erasure ledger does not "
                    f"record it (an interrupted erasure?): {repair}")
            for subject in gaps.unrecorded)

    def _snapshot_findings(self) -> tuple[Finding, ...]:
        if self._rows is None:
            return ()
        return tuple(
            Finding("snapshot", None,
                    f"the snapshot of stream {row.stream_id!r} at version {row.version} failed "
                    "authentication (altered, or written without the master key): loads never "
                    "use it, they replay the events")
            for row in self._snapshots.rows() if not self._rows.snapshot_is_authentic(row))

    # The API of the layers above (projections, erasure, audit): nothing reaches further in.

    @property
    def engine(self) -> Engine:
        """The event store's database engine (read models may live in the same database)."""
        return self._engine

    @property
    def has_master_key(self) -> bool:
        """Whether the store was opened with the master key (it can seal and open values)."""
        return self._has_master_key

    @property
    def vault_shares_database(self) -> bool:
        """Whether the key vault lives in the event store's database."""
        return self._vault_shares_database

    @property
    def notify_channel(self) -> str | None:
        """PostgreSQL: the channel on which every committed append notifies; else None."""
        return self._log.notify_channel()

    def read_window(self, *, after: int, upto: int, types: Collection[str] | None = None,
                    stream_prefix: str | None = None, size: int = 500,
                    ) -> Iterator[tuple[list[RecordedEvent], int]]:
        """Pages of the events with ``after < position <= upto`` (optionally only of some
        types, or of streams whose id starts with `stream_prefix`), decoded, each with the
        position of its last row; at most `size` rows are read per page."""
        for page in self._log.read_window(after=after, upto=upto, types=types,
                                          stream_prefix=stream_prefix, size=size):
            yield list(self._decode(iter([page]))), page[-1].position

    def stored_window(self, *, after: int, upto: int, size: int = 500
                      ) -> Iterator[list[StoredRow]]:
        """Pages of the stored rows with ``after < position <= upto``, as stored (sealed),
        each checked as every read is (its authenticator, where the store has the master key),
        nothing opened: what the relay publishes."""
        return self._log.read_window(after=after, upto=upto, size=size)

    def open_stored(self, rows: list[StoredRow]) -> list[RecordedEvent]:
        """The recorded events of rows that were read from this store and came back from
        elsewhere (a broker: `shredstore.relay.open_message`): each row's authenticator is
        checked and its sealed fields opened or redacted exactly as a read of the log does,
        against the vault as it is now (a subject erased since reads as redacted)."""
        checked = [self._log.check(row) for row in rows]
        return list(self._decode(iter([checked]), refresh=True))

    def scan(self, scope: Scope) -> Iterator[list[StoredRow]]:
        """Pages of the stored rows in `scope`, in log order, each checked as every read is,
        nothing opened (audits render records without the application's classes)."""
        return self._log.read_scope(scope)

    def count(self, scope: Scope) -> tuple[int, int, int]:
        """Events, distinct streams and distinct subjects in `scope`."""
        return self._log.count_scope(scope)

    @contextlib.contextmanager
    def opening(self) -> Iterator[KeyRing | None]:
        """A key ring to open sealed values with, checked against erasures as of now (None
        without the master key). One per page of work."""
        with self._keyring(True) as ring:
            yield ring

    def append_system(self, stream_id: str, events: Iterable[Event]) -> AppendResult:
        """Append shredstore's own events to a system stream (its id starts with ``$``: the
        erasure ledger, ``$access``), which `append` refuses to applications."""
        if not stream_id.startswith("$"):
            raise ConfigurationError("system streams are named with a leading $")
        return self._append_system(stream_id, list(events))

    def ledger_entry(self, subject_id: str) -> tuple[int, SubjectErased] | None:
        """The subject's entry in the erasure ledger and its position; None if it has none.
        One indexed lookup (by the entry's keyed event id)."""
        return self._ledger_entry(subject_id)

    def ledger_event_id(self, subject_id: str) -> UUID:
        """The event id of the subject's erasure ledger entry: the same for every erasure of
        the subject in this store, a keyed hash of its id (see `EventLog.ledger_event_id`)."""
        return self._log.ledger_event_id(subject_id)

    def ledger(self) -> dict[str, tuple[int, SubjectErased]]:
        """The erasure ledger: each subject's first `SubjectErased` entry, with its position."""
        entries: dict[str, tuple[int, SubjectErased]] = {}
        for record in self.read_stream(LEDGER_STREAM):
            event = record.event
            if isinstance(event, SubjectErased) and event.subject_id not in entries:
                entries[event.subject_id] = (record.position, event)
        return entries

    def ledger_gaps(self, entries: dict[str, tuple[int, SubjectErased]] | None = None
                    ) -> LedgerGaps:
        """Where the erasure ledger (`entries`, default read now) and the vault's tombstones
        disagree, both ways. Reads the whole ledger and every tombstone once."""
        entries = self.ledger() if entries is None else entries
        vault = self.vault
        subjects = sorted(entries)
        erased = frozenset().union(*(vault.erased_subjects(subjects[i:i + 500])
                                     for i in range(0, len(subjects), 500)))
        resurrected: list[tuple[str, int]] = []
        untombstoned: list[tuple[str, int]] = []
        for subject in subjects:
            if subject in erased:
                continue
            held = vault.status(subject).state == "active"
            (resurrected if held else untombstoned).append((subject, entries[subject][0]))
        unrecorded = tuple(status.subject_id for status in vault.erasures()
                           if status.subject_id not in entries)
        return LedgerGaps(tuple(resurrected), tuple(untombstoned), unrecorded)

    def shred(self, subject_id: str, *, reason: str | None = None,
              request_id: str | None = None) -> Shredded:
        """Destroy the subject's key and record it in the erasure ledger: the erasure itself
        (idempotent; one ledger entry per subject).

        Where the vault shares this database, both commit in one transaction. With a vault of
        its own, the key goes first, then the entry; an interruption between the two leaves a
        tombstone the ledger lacks, which `verify` reports ("unrecorded") and
        `shredstore.erasure.reconcile` records.
        """
        if self._vault_shares_database:
            return self._shred_atomically(subject_id, reason=reason, request_id=request_id)
        result = self._erase_key(subject_id, reason=reason, request_id=request_id)
        return Shredded(result, self.record_erasure(_ledger_entry_of(result)))

    def record_erasure(self, entry: SubjectErased) -> int:
        """Append the subject's ledger entry, or find it if it is there: its position.

        The entry's event id is fixed per subject, so the log's idempotent append (a repeated
        event id in the same stream returns the stored result) keeps one entry per subject,
        also when two processes erase the same subject at once.
        """
        entry = entry.model_copy(update={"event_id": self.ledger_event_id(entry.subject_id)})
        return self._append_system(LEDGER_STREAM, [entry]).positions[0]

    def erase_key(self, subject_id: str, *, reason: str | None = None,
                  request_id: str | None = None) -> ErasureResult:
        """Destroy the subject's key in the vault alone, without a ledger entry (what
        `reconcile` does for subjects the ledger already names)."""
        return self._erase_key(subject_id, reason=reason, request_id=request_id)

    def subject_scan(self, subject_id: str, *, sample: int = 0) -> SubjectScan:
        """One pass over the rows that name the subject (through the index, nothing opened):
        its footprint, and the first and last `sample` of its sealed values."""
        return self._scan_subject(subject_id, sample=sample)

    def try_sealed(self, subject_id: str, scan: SubjectScan) -> CiphertextCheck:
        """Try to open the sealed values `scan` sampled, with the vault as it is now."""
        return self._try_sealed(subject_id, scan)

    def _shred_atomically(self, subject_id: str, *, reason: str | None,
                          request_id: str | None) -> Shredded:
        erased: list[ErasureResult] = []

        def erase_and_record(connection: Connection) -> list[NewRow]:
            erased[:] = [self._erase_key(subject_id, reason=reason, request_id=request_id,
                                         connection=connection)]
            if self._log.in_ledger(connection, [subject_id]):
                return []  # recorded before (a vault restored since, say): the key goes now
            return self._ledger_rows(_ledger_entry_of(erased[0]))

        appended = self._log.append(LEDGER_STREAM, erase_and_record, expected_version=ANY)
        result = erased[0]
        if result.held_key and not result.already_erased:
            result = dataclasses.replace(result, scrubbed=self.vault.checkpoint())
        if appended.positions:
            return Shredded(result, appended.positions[0])
        found = self._ledger_entry(subject_id)
        if found is None:  # pragma: no cover - it was found inside the transaction
            raise ConfigurationError("the ledger entry vanished: is the log being restored?")
        return Shredded(result, found[0])

    def _erase_key(self, subject_id: str, *, reason: str | None, request_id: str | None,
                   connection: Connection | None = None) -> ErasureResult:
        with vault_configuration_errors():
            return self.vault.erase(subject_id, reason=reason, request_id=request_id,
                                    connection=connection)

    def save_snapshot(
        self, state: BaseModel, *, stream_id: str, version: int, type_name: str,
        schema_version: int,
    ) -> None:
        """Store `state` as the snapshot of `stream_id` after event `version`.

        Its personal fields are sealed like events' (see `shredstore.aggregates`); with the
        master key, the snapshot is authenticated as a whole.
        """
        with self._keyring(plan_of(type(state)).has_personal_data) as ring:
            row = snapshot_of(state, stream_id=stream_id, version=version, type_name=type_name,
                              schema_version=schema_version, ring=ring)
        if self._rows is not None:
            row = dataclasses.replace(row, mac=self._rows.sign_snapshot(row))
        self._snapshots.save(row)

    def load_snapshot(
        self, cls: type[M], stream_id: str, *, type_name: str, schema_version: int
    ) -> M | None:
        """The newest snapshot of `stream_id` as `cls`, or None (also if it no longer fits).

        With the master key, a snapshot that fails authentication (altered, or saved without
        the key) is never used: None, so the caller replays the events, and a warning on the
        ``shredstore.snapshots`` logger naming the stream and version (no field values).
        """
        row = self._snapshots.latest(stream_id, type_name)
        return None if row is None else self._usable_snapshot(row, cls, schema_version)

    def load_with_snapshot(
        self, cls: type[M], stream_id: str, *, type_name: str, schema_version: int
    ) -> tuple[M | None, Iterator[RecordedEvent]]:
        """`load_snapshot` and the stream's events after it, the snapshot and the first page
        of events read in one transaction (what `Repository.load` needs, in one round trip
        fewer). Where no snapshot can be used, the events are the whole stream."""
        _check_stream_id(stream_id)
        # The vault's erasure check for the snapshot's keyring ran in the read's transaction
        # (the page hook, `EventLog.after_each_page`), whatever the page holds.
        refresh = self._vault_shares_database and self._has_master_key
        found, pages = self._log.read_after_snapshot(stream_id, type_name)
        row = None if found is None else snapshot_row(found)
        state = None if row is None else self._usable_snapshot(row, cls, schema_version,
                                                                refreshed=refresh)
        if row is not None and state is None:
            return None, self.read_stream(stream_id)  # not usable: replay it all
        return state, self._decode(pages)

    def _usable_snapshot(self, row: SnapshotRow, cls: type[M], schema_version: int, *,
                         refreshed: bool = False) -> M | None:
        """The stored snapshot `row` as `cls`, or None where it must not or cannot be used
        (`refreshed`: the vault was checked for erasures in the transaction that read it)."""
        if self._rows is not None and not self._rows.snapshot_is_authentic(row):
            _snapshot_log.warning(
                "the snapshot of stream %r at version %d failed authentication (altered, or "
                "saved without the master key): not used, replaying the events; run verify()",
                row.stream_id, row.version)
            return None
        with self._keyring(row.personal is not None, refresh=not refreshed) as ring:
            try:
                state = state_from(row, cls, registry=self._registry,
                                   target_version=schema_version, ring=ring)
            except EventDecodingError:
                return None  # a cache that no longer fits: replay instead
        if not isinstance(state, cls) or getattr(state, "version", row.version) != row.version:
            return None  # not what the row says it is: do not trust it, replay
        return state

    def restore_protection(self) -> list[str]:
        """Re-create the immutability triggers if someone dropped them; return their names.

        Opening a store never does this on its own, so that `verify` can report the loss.
        Run `verify` first: rows changed while the triggers were gone stay changed.
        """
        return self._log.restore_triggers()

    def close(self) -> None:
        """Release the database connections (an engine passed in is left to its owner)."""
        self._log.close()
        if self._vault is not None:
            self._vault.close()
            if getattr(self, "_owns_vault_engine", False):
                self._vault.engine.dispose()
        if self._owns_engine:
            self._engine.dispose()

    def _row_key(self) -> bytes:
        """The vault's service key for row authenticators (asked for on first use).

        Made by the first store with the master key, unless the log already holds
        authenticated rows: then this vault is not the one the log was written with (or was
        restored from too old a backup), and `KeyNotFoundError` says so; a new key would
        make every row read as tampered.
        """
        with vault_configuration_errors():
            try:
                return self.vault.service_key(ROWS_KEY, create=False)
            except keyvault.KeyNotFoundError:
                if self._log.has_authenticated_rows():
                    # Another process may have made the key since it was asked for: a key is
                    # committed before the first row it authenticates, so it is there now.
                    with contextlib.suppress(keyvault.KeyNotFoundError):
                        return self.vault.service_key(ROWS_KEY, create=False)
                    raise keyvault.KeyNotFoundError(
                        "this vault does not hold the key that authenticated the log's rows: "
                        "the log was written with another vault (or one restored from too old "
                        "a backup)") from None
                return self.vault.service_key(ROWS_KEY)

    def _declares_personal(self, event_type: str) -> bool:
        """Whether the class registered for `event_type` declares personal data (its rows
        must carry an authenticator)."""
        cls = self._registry.find(event_type)
        return cls is not None and plan_of(cls).has_personal_data

    def _decode(self, pages: Iterator[list[StoredRow]], *, refresh: bool = False
                ) -> Iterator[RecordedEvent]:
        to_recorded = self._mapper.to_recorded
        for page in pages:
            parsed, subjects = page_subjects(page)
            if all(row.personal is None for row in page):
                for row, groups in zip(page, parsed, strict=True):
                    yield to_recorded(row, None, groups)
                continue
            # Where the vault shares the database, the page's read checked it for erasures
            # already, after the page's query (`EventLog.after_each_page`).
            with self._keyring(True, refresh=refresh or not self._vault_shares_database
                               ) as ring:
                if ring is not None:
                    ring.preload(subjects)
                # One event at a time, each row's parsed column let go once it is used: a
                # reader that drops each event leaves the garbage collector young garbage only
                # (a page's worth of live records made it promote and rescan them all, a fifth
                # of a read's time).
                del subjects
                parsed.reverse()
                for row in page:
                    yield to_recorded(row, ring, parsed.pop())

    @contextlib.contextmanager
    def _keyring(self, needed: bool, *, refresh: bool = True, defer_creation: bool = False
                 ) -> Iterator[KeyRing | None]:
        if not needed or not self._has_master_key:
            yield None
            return
        with self.vault.keyring(refresh=refresh, defer_creation=defer_creation) as ring:
            yield ring

    def _ledger_rows(self, entry: SubjectErased) -> list[NewRow]:
        """The subject's erasure ledger entry as a row to append (its keyed event id set)."""
        entry = entry.model_copy(update={"event_id": self._log.ledger_event_id(entry.subject_id)})
        return self._mapper.to_rows([entry], _EMPTY_METADATA, None)

    def _append_system(self, stream_id: str, events: list[Event]) -> AppendResult:
        """Append to a system stream (``$...``), which `append` refuses."""
        (result,) = self._append([(stream_id, events, [_EMPTY_METADATA] * len(events), ANY)],
                                 needs_keys=False)
        return result

    def _scan_subject(self, subject_id: str, *, sample: int) -> SubjectScan:
        """One pass over the rows that name the subject (through the index, nothing opened):
        its footprint, and the first and last `sample` of its sealed values."""
        _check_subject(subject_id)
        events = mentions = sealed = 0
        streams: dict[str, None] = {}
        types: dict[str, None] = {}
        fields: dict[tuple[Any, ...], None] = {}
        first: list[tuple[PersonalRow, dict[str, Any]]] = []
        last: collections.deque[tuple[PersonalRow, dict[str, Any]]] = collections.deque(
            maxlen=sample - sample // 2)
        layout: tuple[str, list[Any]] | None = None  # rows in a row mostly share one
        for page in self._log.subject_personal(subject_id):
            mentions += len(page)
            for row in page:
                if row.personal is None:
                    continue
                # A malformed column reads as none here: verify reports the row.
                mine = [group for group in try_decode_column(row.personal) or ()
                        if group["subject"] == subject_id]
                if not mine:
                    continue
                events += 1
                streams[row.stream_id] = None
                types[row.event_type] = None
                for group in mine:
                    if (row.event_type, group["paths"]) != layout:
                        layout = (row.event_type, group["paths"])
                        for path in group["paths"]:
                            fields[(row.event_type, *map(str, path))] = None
                    if "sealed" not in group:
                        continue
                    sealed += 1
                    if len(first) < sample // 2:
                        first.append((row, group))
                    elif sample:
                        last.append((row, group))
        snapshots = sum(
            1 for personal in self._snapshots.personal_columns(streams)
            if any(group["subject"] == subject_id
                   for group in try_decode_column(personal) or ()))
        field_names = sorted({f"{kind}:{dotted(path)}" for kind, *path in fields})
        footprint = Footprint(subject_id, events, tuple(streams), tuple(sorted(types)),
                              tuple(field_names), snapshots, mentions)
        samples = tuple((row.event_id, group) for row, group in (*first, *last))
        return SubjectScan(footprint, sealed, samples)

    def _try_sealed(self, subject_id: str, scan: SubjectScan) -> CiphertextCheck:
        """Try to open the sealed values a scan sampled, with the vault as it is now."""
        opened = failed = checked = 0
        with self.vault.keyring() as ring:
            for event_id, group in scan.samples:
                try:
                    opened += open_one(ring, event_id, group)
                except keyvault.KeyErasedError:
                    pass  # what an erasure must leave: counted as checked below
                except (keyvault.TamperedError, TamperedError):
                    failed += 1
                except keyvault.VaultConfigurationError:
                    continue  # no master key to try with: key_held below says whether it could
                checked += 1
        held = self.vault.status(subject_id).state == "active"
        return CiphertextCheck(scan.sealed, checked, opened, failed, held)

    def _append(self, batches: list[_Batch], needs_keys: bool, *,
                after_insert: Callable[[Connection, list[AppendResult]], None] | None = None,
                ) -> list[AppendResult]:
        """One attempt at an append; KeyCreationConflict if a new key lost a race."""
        if self._log.read_only:
            raise ReadOnlyStoreError(
                "this store was opened read-only: nothing can be appended or erased")
        if self._rows is not None:
            self._rows.ready()  # before any transaction: the first use may write to the vault
        # No erasure check before sealing: the guard in the append's transaction is the check
        # that counts (a key erased meanwhile is refused there). Where the vault shares the
        # database, the keys of new subjects are stored by that guard too: one commit.
        shared = self._vault_shares_database
        with self._keyring(needs_keys, refresh=False, defer_creation=shared) as ring:
            # One mapping pass for every stream: new subjects' keys are looked up at once.
            rows = self._mapper.to_rows(
                [event for _, events, _, _ in batches for event in events],
                [each for _, _, encoded, _ in batches for each in encoded], ring)
            streams = []
            for stream_id, events, _, expected_version in batches:
                streams.append((stream_id, rows[:len(events)], expected_version))
                rows = rows[len(events):]
            sealed_for = set().union(*(row.sealed_for for _, part, _ in streams
                                       for row in part))

            def not_in_ledger(connection: Connection) -> None:
                # The ledger outranks the vault: a subject it names stays erased, also when
                # its tombstone is gone (a vault restored from a backup, a deleted row).
                _refuse_ledgered(self._log.in_ledger(connection, sealed_for))

            if not shared:
                with self.vault.hold_active(sealed_for):
                    return self._log.append_many(
                        streams, before_insert=not_in_ledger if sealed_for else None,
                        after_insert=after_insert)

            def guard(connection: Connection) -> None:
                # The ledger's query sent first, its answer read after the vault's check:
                # on PostgreSQL both go in one round trip (the append is pipelined).
                answer = self._log.ask_in_ledger(connection, sealed_for)
                self.vault.check_active(sealed_for, connection=connection, ring=ring)
                _refuse_ledgered(answer())

            results = self._log.append_many(streams, before_insert=guard if sealed_for else None,
                                            after_insert=after_insert)
            if ring is not None:
                ring.settle()
            return results

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ErasureWorkflow(Protocol):
    """What `EventStore.erase_subject` calls: `shredstore.erasure.erase`."""

    def __call__(self, store: EventStore, subject_id: str, *, reason: str | None,
                 request_id: str | None, signing_key: Ed25519PrivateKey | None,
                 verify_residue: bool, read_models: str | URL | Engine | None,
                 ) -> ErasureReceipt: ...


_erasure_workflow: ErasureWorkflow | None = None


def use_erasure_workflow(workflow: ErasureWorkflow) -> None:
    """Hand the facade the erasure workflow behind `EventStore.erase_subject`.

    The workflow (receipts, the residue check of read models) lives in a layer above the
    facade, which must not import it: `shredstore.erasure` calls this when it is imported,
    and `shredstore` imports it, so the shortcut works wherever shredstore is imported.
    """
    global _erasure_workflow  # noqa: PLW0603 - the one hook of the facade, set once
    _erasure_workflow = workflow


def _ledger_entry_of(result: ErasureResult) -> SubjectErased:
    """The ledger entry that records the vault's erasure `result`."""
    return SubjectErased(
        subject_id=result.subject_id, erased_at=result.erased_at,
        request_id=result.request_id, reason=result.reason,
        key_fingerprint=result.key_fingerprint)


def _shown(url: str | URL | Engine) -> str:
    """A database URL for messages, without its password."""
    if isinstance(url, Engine):
        url = url.url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a message
        return "the given URL"


def _check_stream_id(stream_id: object) -> None:
    if not isinstance(stream_id, str) or not stream_id:
        raise ConfigurationError("a stream id is a non-empty string")
    if not is_utf8(stream_id):
        raise ConfigurationError(
            "a stream id must be valid Unicode text: this one holds a lone surrogate (text "
            "decoded with errors='surrogateescape'?); pass the id as valid text")


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, not {value!r}")


class _Ledger:
    """The erasure ledger as the vault's `keyvault.ErasureRecord`: a subject with an entry in
    ``$erasures`` is erased for every read, whatever a restored vault holds."""

    __slots__ = ("_log", "_shared")

    def __init__(self, log: EventLog, *, shared: bool) -> None:
        self._log = log
        self._shared = shared

    def erased_among(self, subject_ids: Collection[str]) -> list[str]:
        return self._log.in_ledger(None, subject_ids)

    def ask_erased_since(self, mark: Hashable | None, limit: int, connection: Connection
                         ) -> Callable[[], tuple[Hashable, Collection[str] | None]]:
        # The mark is the ledger's last entry: (version, position, event id). A log restored
        # from a backup may reach the same version again with other entries: the entry at
        # the remembered version must be the one remembered, or the vault starts afresh.
        # In the vault's own transaction where they share the database: one round trip.
        if self._shared:
            tail = self._log.ask_tail(LEDGER_STREAM, connection)
        else:
            known = self._log.tail(LEDGER_STREAM)
            tail = lambda: known  # noqa: E731

        def answer() -> tuple[Hashable, Collection[str] | None]:
            now = tail()
            if now == mark:
                return now, ()
            if not isinstance(mark, tuple) or now is None or now[0] < mark[0] \
                    or now[0] - mark[0] > limit:
                return now, None
            entries = self._log.tail_since(LEDGER_STREAM, mark[0], limit)  # rare: no hurry
            if not entries or entries[0][:3] != mark:
                return now, None
            return now, set().union(*(subjects for *_, subjects in entries[1:]))

        return answer


def _engine_for(url: str | URL | Engine, *, read_only: bool) -> tuple[Engine, str | None]:
    if not read_only or isinstance(url, Engine):
        return create_engine(url), None
    return create_read_only_engine(url)


@contextlib.contextmanager
def _read_only_named(engine: Engine, *, read_only: bool) -> Iterator[None]:
    """A writable open of a database that refuses writes says so (`ReadOnlyStoreError`)
    instead of "cannot reach the database"."""
    try:
        yield
    except StorageError as error:
        if read_only or not ("readonly" in str(error).replace("-", "").replace(" ", "").lower()
                             or _unwritable_file(engine)):
            raise
        raise ReadOnlyStoreError(
            "the database is read-only (a read-only file or mount, or a replica): open the "
            "store with read_only=True (the command line does so for verify, status and "
            "masked reports)") from None


def _unwritable_file(engine: Engine) -> bool:
    """Whether the engine's SQLite file exists on a read-only mount or cannot be written
    (SQLite then cannot even open a WAL database for writing: "unable to open")."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database.startswith("file:"):
        return False
    path = Path(database)
    return path.exists() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _open_vault(
    url: str | URL | Engine, *, master_key: KeyProvider | None, cache_size: int,
    erasure_record: _Ledger, read_only: bool,
) -> KeyVault:
    with vault_configuration_errors():
        return KeyVault(url, master_key=master_key, cache_size=cache_size,
                        erasure_record=erasure_record, read_only=read_only)


def _refuse_ledgered(erased: list[str]) -> None:
    """`keyvault.SubjectErasedError` if the erasure ledger names any subject of an append."""
    if erased:
        raise keyvault.SubjectErasedError(
            "the erasure ledger names the subject: no personal data can be stored for it",
            subject_id=erased[0])


def _erased(error: keyvault.SubjectErasedError) -> SubjectErasedError:
    return SubjectErasedError(
        "a subject of this batch was erased: no personal data can be appended for it; "
        "nothing was written", subject_id=error.subject_id)


def _check_subject(subject_id: object) -> None:
    """The vault's rule for subject ids (`keyvault.names.check_subject`), as shredstore's
    `ConfigurationError`: an id the vault could never hold is refused before any query."""
    with vault_configuration_errors():
        check_subject(subject_id)
