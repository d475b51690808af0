"""`KeyVault`: one data key per subject, wrapped by a master key, erasable for good.

Besides the subjects' data keys, a vault keeps a few *service keys*: secrets that belong to
the application, not to a subject (shredstore authenticates every stored row with one). They
are wrapped by the master key like data keys, re-wrapped by `KeyVault.rotate_master_key`, and
never erased: an erasure destroys a subject's key, never the keys that prove the log intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import secrets
from collections.abc import Callable, Collection, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

from keyvault import schema
from keyvault.cache import ErasureMark, KeyCache
from keyvault.engine import (
    CHECKPOINT_WAIT_SECONDS,
    DRIVER_ERRORS,
    WRITE,
    checkpoint_wal,
    create_engine,
    driver_message,
    is_connect_failure,
    is_postgres,
    wrap_driver_error,
)
from keyvault.envelope import KEY_SIZE, DataKey, fingerprint, key_version_of
from keyvault.errors import (
    KeyCreationConflict,
    KeyErasedError,
    KeyNotFoundError,
    RotationError,
    SubjectErasedError,
    TamperedError,
    VaultConfigurationError,
    VaultStorageError,
    VaultUnavailable,
    WrongMasterKeyError,
)
from keyvault.master import KeyProvider
from keyvault.scrub import VAULT_TABLES, ScrubResult, scrub_tables

__all__ = ["ErasureRecord", "ErasureResult", "KeyRing", "KeyVault", "RotationResult",
           "SubjectStatus"]

_log = logging.getLogger("keyvault")

_S = schema.SUBJECTS
_ST = schema.STATE
_K = schema.SERVICE_KEYS
_KEY_VERSION = 1
_MAX_SUBJECT_ID = 200
_MAX_NOTE = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_KeyRow = Any  # a row of _LOAD; Row's generic signature differs between SQLAlchemy releases
_LOAD = sa.select(_S.c.subject_id, _S.c.state, _S.c.key_version, _S.c.wrapped_key,
                  _S.c.wrapped_by, _S.c.erased_at)
_ERASURES = sa.select(_ST.c.erasures).where(_ST.c.id == 1)
# The latest erasure: the counter and the tombstone it numbers (see keyvault.cache).
_LATEST = (sa.select(_ST.c.erasures, _S.c.subject_id, _S.c.erased_at)
           .select_from(_ST.outerjoin(_S, _S.c.erasure_seq == _ST.c.erasures))
           .where(_ST.c.id == 1))
_SERVICE_LOAD = sa.select(_K.c.wrapped_key, _K.c.wrapped_by)
_SERVICE_CONTEXT = b"keyvault.service.v1\x00"


class ErasureRecord(Protocol):
    """A record of erasures kept apart from the vault that outranks its tombstones.

    shredstore's erasure ledger is one: a log entry per erased subject. A vault given one
    treats every subject it names as erased, whatever the vault's own table holds: a key found
    for such a subject (a vault restored from a backup taken before the erasure) is refused,
    and logged, instead of opening anything. It is asked when a key is loaded from the
    database, and, at each erasure check, for what it gained since the last one: a cached key
    of a subject it names goes too, even where the vault never saw that erasure (restored from
    a backup before the process looked).
    """

    def erased_among(self, subject_ids: Collection[str]) -> Collection[str]:
        """Which of `subject_ids` the record says were erased."""
        ...

    def erased_since(self, mark: Hashable | None, limit: int, connection: Connection
                     ) -> tuple[Hashable, Collection[str] | None]:
        """The record's mark now, and the subjects it named after `mark` (a mark it returned
        before); None instead of those when it cannot tell (no `mark`, a record that does not
        continue from it, or more than `limit` of them): then the vault drops its cache.
        `connection` is the vault's, in a read transaction: a record kept in the same
        database may read through it."""
        ...


@dataclass(frozen=True, slots=True)
class SubjectStatus:
    """What the vault knows of a subject. `state` is "active", "erased" or "unknown"."""

    subject_id: str
    state: Literal["active", "erased", "unknown"]
    created_at: datetime | None = None
    erased_at: datetime | None = None
    request_id: str | None = None
    reason: str | None = None
    key_fingerprint: str | None = None
    """Fingerprint of the subject's data key (kept after erasure, to name what was destroyed)."""


@dataclass(frozen=True, slots=True)
class ErasureResult:
    """The outcome of `KeyVault.erase`."""

    subject_id: str
    erased_at: datetime
    already_erased: bool
    """True if the subject had been erased before this call (nothing changed now)."""
    held_key: bool
    """Whether a data key existed and was destroyed (now or by the earlier erasure)."""
    key_fingerprint: str | None
    request_id: str | None
    reason: str | None
    scrubbed: bool
    """Whether the database files were made free of the key's bytes (see `KeyVault.scrub`)."""

    def __str__(self) -> str:
        when = self.erased_at.isoformat(timespec="seconds")
        if self.already_erased:
            return f"already erased at {when}"
        if not self.held_key:
            return f"erased at {when}; no key was held, the erasure is recorded"
        return f"erased at {when}; key {self.key_fingerprint} destroyed"


@dataclass(frozen=True, slots=True)
class RotationResult:
    """The outcome of `KeyVault.rotate_master_key`."""

    old_key_id: str
    new_key_id: str
    rewrapped: int
    """Data keys re-wrapped by this call."""
    rewrapped_service_keys: int = 0
    """Service keys (see `KeyVault.service_key`) re-wrapped by this call."""


class KeyVault:
    """Per-subject AES-256 data keys in SQLite or PostgreSQL, wrapped by a master key.

    ``KeyVault("sqlite:///vault.db", master_key=MasterKey.from_file("master.key"))``. A URL or
    an SQLAlchemy `Engine`; the tables are created if missing. `status` and `erase` work
    without a master key; sealing, opening and `service_key` need it. An `erasure_record`
    (see `ErasureRecord`) outranks the vault's own tombstones for every key it loads.
    ``read_only=True`` reads an existing vault (on a read-only file or a replica, say) and
    writes nothing: creating or erasing a key raises `VaultConfigurationError`.
    """

    def __init__(
        self,
        url: str | URL | Engine,
        *,
        master_key: KeyProvider | None,
        cache_size: int = 10_000,
        erasure_record: ErasureRecord | None = None,
        read_only: bool = False,
    ) -> None:
        if master_key is not None and not isinstance(master_key, KeyProvider):
            raise VaultConfigurationError("master_key must be a MasterKey or a KeyProvider")
        self._owns_engine = not isinstance(url, Engine)
        self._engine = create_engine(url)
        self._provider = master_key
        self._record = erasure_record
        self._read_only = read_only
        self._cache = KeyCache(cache_size)
        self._service_keys: dict[str, bytes] = {}
        try:
            if read_only:
                with self._read() as conn:
                    if not sa.inspect(conn).has_table(_ST.name):
                        raise VaultConfigurationError("this database holds no key vault")
                    if master_key is not None:
                        self._check_master_key(conn, master_key)
            else:
                with self._write() as conn:
                    schema.install(conn)
                    if master_key is not None:
                        self._adopt_master_key(conn, master_key)
        except BaseException:
            self.close()
            raise

    @property
    def engine(self) -> Engine:
        """The vault's database engine (the store's own where they share a database)."""
        return self._engine

    # Sealing and opening

    def seal(self, subject_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        """Encrypt `plaintext` for `subject_id`, creating its key on first use.

        Raises `SubjectErasedError` if the subject was erased.
        """
        with self.keyring() as ring:
            return ring.seal(subject_id, plaintext, aad=aad)

    def open(self, subject_id: str, sealed: bytes, *, aad: bytes = b"") -> bytes:
        """Decrypt a value sealed for `subject_id` with the same `aad`.

        Raises `KeyErasedError` if the subject was erased (read it as redacted),
        `TamperedError` if the value or its key was altered, `KeyNotFoundError` if this vault
        never held the subject's key.
        """
        with self.keyring() as ring:
            return ring.open(subject_id, sealed, aad=aad)

    @contextlib.contextmanager
    def keyring(self, *, refresh: bool = True, defer_creation: bool = False
                ) -> Iterator[KeyRing]:
        """Seal and open many values with one erasure check, as of entering the block.

        Erasures that commit while the block runs are seen by the next keyring: use one per
        unit of work (a page of events), not one per process. ``refresh=False`` skips the
        check; only for sealing whose result is guarded by `check_active` before it is stored
        (a cached key of a subject erased meanwhile is then refused there).

        ``defer_creation=True``: keys that `KeyRing.prepare` must create are made in memory
        only, and stored by ``check_active(..., ring=ring)`` inside the caller's transaction,
        which then writes the data sealed with them; one commit instead of two. If another
        process stored a key for one of those subjects first, `check_active` raises
        `KeyCreationConflict`: roll back and seal again with a new ring. After the commit,
        `KeyRing.settle` caches the new keys.
        """
        if refresh:
            self._refresh()
        yield KeyRing(self, defer_creation=defer_creation)

    # Service keys

    def service_key(self, name: str, *, create: bool = True) -> bytes:
        """The 32-byte service key named `name`, created (from `secrets`) on first use.

        For secrets of the application that must outlive every erasure and follow the master
        key, such as the key that authenticates stored rows. Stored wrapped by the master key,
        bound to its name; kept in memory once read. Processes that ask for a new name at the
        same moment all get the one key that was stored first. Needs the master key
        (`VaultConfigurationError` without one); raises `WrongMasterKeyError` if another master
        key wraps it, `TamperedError` if its wrapped form was altered or moved to another name.
        With ``create=False``, a key the vault does not hold raises `KeyNotFoundError`.
        """
        _check_service_name(name)
        cached = self._service_keys.get(name)
        if cached is not None:
            return cached
        provider = self._require_provider()
        context = _SERVICE_CONTEXT + name.encode()
        with self._read() as conn:
            row = conn.execute(_SERVICE_LOAD.where(_K.c.name == name)).first()
        if row is None and not create:
            raise KeyNotFoundError(f"this vault holds no service key {name!r}")
        if row is None:
            secret = secrets.token_bytes(KEY_SIZE)
            with self._write() as conn:
                # As for data keys: no key is created under a master key the vault left.
                state = conn.execute(sa.select(_ST).with_for_update(read=True)).one()
                if provider.key_id not in (state.master_key_id, state.rotating_to):
                    raise WrongMasterKeyError(
                        f"the master key {provider.key_id} no longer wraps this vault "
                        f"(now {state.master_key_id}); restart with the current master key")
                conn.execute(
                    (postgresql if is_postgres(conn) else sqlite).insert(_K)
                    .on_conflict_do_nothing(index_elements=[_K.c.name]),
                    [{"name": name, "wrapped_key": provider.wrap(secret, context=context),
                      "wrapped_by": provider.key_id, "created_at": datetime.now(UTC)}])
                row = conn.execute(_SERVICE_LOAD.where(_K.c.name == name)).one()
        if row.wrapped_by != provider.key_id:
            raise WrongMasterKeyError(
                f"the service key {name!r} is wrapped by master key {row.wrapped_by}, not by "
                f"{provider.key_id}: a rotation changed the master key; restart with the new one")
        secret = provider.unwrap(row.wrapped_key, context=context)
        if len(secret) != KEY_SIZE:
            raise TamperedError("a wrapped service key is malformed")
        self._service_keys[name] = secret
        return secret

    # Erasure and status

    def erase(
        self, subject_id: str, *, reason: str | None = None, request_id: str | None = None,
        connection: Connection | None = None,
    ) -> ErasureResult:
        """Delete the subject's key and record a tombstone, in one transaction. Idempotent.

        Once this returns, no process opens the subject's data again and its key is never
        created again. `reason` and `request_id` are stored: never put personal data in them.

        With `connection`, a transaction of the caller's on the vault's database, the erasure
        is part of it (and happens when it commits): shredstore records the erasure in its
        log in the same transaction. The key's bytes are then not yet scrubbed (`scrubbed`
        is False): call `checkpoint` after the commit.
        """
        _check_subject(subject_id)
        reason = _check_note("reason", reason)
        request_id = _check_note("request_id", request_id)
        if connection is not None:
            with self._translate():
                return self._erase_on(connection, subject_id, reason, request_id)
        with self._write() as conn:
            result = self._erase_on(conn, subject_id, reason, request_id)
        if result.already_erased or not result.held_key:
            return result
        return dataclasses.replace(result, scrubbed=self.checkpoint())

    def checkpoint(self) -> bool:
        """After an erasure committed: make the deleted key's bytes leave the live files as far
        as is cheap (SQLite: checkpoint and truncate the WAL, with a short wait for readers);
        whether that completed. PostgreSQL: False, `scrub` does it (VACUUM FULL)."""
        return checkpoint_wal(self._engine)

    def _erase_on(self, conn: Connection, subject_id: str, reason: str | None,
                  request_id: str | None) -> ErasureResult:
        # Lock the state row first: erasures, and first uses of a key, queue behind it.
        erasures = conn.execute(_ERASURES.with_for_update()).scalar_one()
        row = conn.execute(sa.select(_S).where(_S.c.subject_id == subject_id)).first()
        if row is not None and row.state == "erased":
            return ErasureResult(
                subject_id, _utc(row.erased_at), already_erased=True,
                held_key=row.key_fingerprint is not None,
                key_fingerprint=row.key_fingerprint, request_id=row.request_id,
                reason=row.reason, scrubbed=True,
            )
        seq = erasures + 1
        conn.execute(_ST.update().where(_ST.c.id == 1).values(erasures=seq))
        erased_at = datetime.now(UTC)
        tombstone = {
            "state": "erased", "wrapped_key": None, "wrapped_by": None,
            "erased_at": erased_at, "erasure_seq": seq,
            "request_id": request_id, "reason": reason,
        }
        if row is None:
            conn.execute(_S.insert().values(subject_id=subject_id, **tombstone))
        else:
            conn.execute(_S.update().where(_S.c.subject_id == subject_id).values(**tombstone))
        self._cache.mark_erased([subject_id])  # before the commit too: evicting is safe
        return ErasureResult(
            subject_id, erased_at, already_erased=False, held_key=row is not None,
            key_fingerprint=row.key_fingerprint if row is not None else None,
            request_id=request_id, reason=reason, scrubbed=row is None,
        )

    def status(self, subject_id: str) -> SubjectStatus:
        """Whether the subject has a key ("active"), was erased ("erased"), or is "unknown"."""
        _check_subject(subject_id)
        with self._read() as conn:
            row = conn.execute(sa.select(_S).where(_S.c.subject_id == subject_id)).first()
        if row is None:
            return SubjectStatus(subject_id, "unknown")
        return _status_of(row)

    @contextlib.contextmanager
    def hold_active(
        self, subject_ids: Collection[str], *, connection: Connection | None = None
    ) -> Iterator[None]:
        """Keep the subjects from being erased until the block ends; refuse erased ones.

        Raises `SubjectErasedError` if any of them is erased. While the block runs, an erasure
        of one of them waits. Pass `connection` to check inside a transaction of your own on
        the vault's database (the check then lasts until that transaction ends); otherwise
        the vault holds a transaction of its own for the duration of the block.
        """
        wanted = sorted(set(subject_ids))
        if not wanted:
            yield
            return
        if connection is not None:
            self.check_active(wanted, connection=connection)
            yield
            return
        with self._write() if not is_postgres(self._engine) else self._read() as conn:
            self.check_active(wanted, connection=conn)
            yield

    def check_active(self, subject_ids: Collection[str], *, connection: Connection,
                     ring: KeyRing | None = None) -> None:
        """Refuse erased subjects, inside `connection`'s transaction on the vault's database.

        On PostgreSQL the subjects' rows stay locked (FOR SHARE) until that transaction ends,
        so an erasure of one of them waits for it. Raises `SubjectErasedError`. With the
        `ring` of a deferred-creation `keyring`, first stores the keys it created (or raises
        `KeyCreationConflict` if another process stored one of them first).
        """
        created = ring._created if ring is not None else None
        if created:  # new rows: nothing to lock or check for them
            self._store_created(created, connection)
            subject_ids = set(subject_ids) - created.keys()
        subject_ids = sorted(set(subject_ids))
        if not subject_ids:
            return
        conn = connection
        # Written out for the driver: on the append path, compiling the IN list costs more
        # than the query. The statement holds only constants and placeholders.
        postgres = is_postgres(conn)
        mark = "%s" if postgres else "?"
        sql = (f"SELECT subject_id FROM {_S.name} WHERE state = 'erased' AND subject_id IN "
               f"({', '.join([mark] * len(subject_ids))})")
        if postgres:  # lock the rows, erased or not, so an erasure waits for this append
            sql = (f"SELECT subject_id, state FROM {_S.name} WHERE subject_id IN "
                   f"({', '.join([mark] * len(subject_ids))}) FOR SHARE")
        cursor = conn.connection.cursor()  # the driver's, in the caller's transaction
        try:
            cursor.execute(sql, tuple(subject_ids))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        # SQLite: the append's BEGIN IMMEDIATE already excludes every other writer.
        erased = [row[0] for row in rows if not postgres or row[1] == "erased"]
        if erased:
            self._cache.mark_erased(erased)
            raise _erased(erased[0], opening=False)

    def erasures(self) -> Iterator[SubjectStatus]:
        """Every erased subject's tombstone, oldest erasure first."""
        after = 0
        while True:
            with self._read() as conn:
                rows = conn.execute(sa.select(_S).where(
                    _S.c.state == "erased", _S.c.erasure_seq > after,
                ).order_by(_S.c.erasure_seq).limit(1000)).all()
            for row in rows:
                yield _status_of(row)
            if len(rows) < 1000:
                return
            after = rows[-1].erasure_seq

    def erased_subjects(self, subject_ids: Collection[str]) -> frozenset[str]:
        """Which of `subject_ids` are erased, in one query."""
        with self._read() as conn:
            rows = conn.execute(sa.select(_S.c.subject_id).where(
                _S.c.subject_id.in_(sorted(set(subject_ids))), _S.c.state == "erased"))
            return frozenset(subject_id for (subject_id,) in rows)

    # Operations

    def rotate_master_key(
        self,
        new: KeyProvider,
        *,
        batch_size: int = 500,
        progress: Callable[[int, int], None] | None = None,
    ) -> RotationResult:
        """Re-wrap every data key under `new`; sealed values are untouched.

        Service keys are re-wrapped too (never replaced: what they authenticate stays valid).
        Resumable: if interrupted, call it again with the same keys. When it returns, the
        vault answers only to `new`; processes still holding the old key get
        `WrongMasterKeyError` and must restart with the new one. `progress(done, total)` is
        called after each batch.
        """
        old = self._require_provider()
        if not isinstance(new, KeyProvider):
            raise VaultConfigurationError("the new master key must be a MasterKey or KeyProvider")
        if new.key_id == old.key_id:
            raise RotationError("the new master key is the one in use")
        with self._write() as conn:
            state = conn.execute(sa.select(_ST)).one()
            if state.master_key_id == new.key_id and state.rotating_to is None:
                self._provider = new
                return RotationResult(old.key_id, new.key_id, 0)
            if state.rotating_to not in (None, new.key_id):
                raise RotationError(
                    f"a rotation to master key {state.rotating_to} is in progress; "
                    "finish it with that key first"
                )
            conn.execute(_ST.update().values(rotating_to=new.key_id))
        total = self._count_wrapped_by_other(new.key_id)
        done = services = 0
        while True:
            done += self._rewrap_all(old, new, batch_size=batch_size, done=done, total=total,
                                     progress=progress)
            services += self._rewrap_service_keys(old, new)
            with self._write() as conn:
                conn.execute(sa.select(_ST).with_for_update()).one()  # no key creation now
                left = conn.execute(sa.select(sa.func.count()).select_from(_S).where(
                    _S.c.state == "active", _S.c.wrapped_by != new.key_id)).scalar_one()
                left += conn.execute(sa.select(sa.func.count()).select_from(_K).where(
                    _K.c.wrapped_by != new.key_id)).scalar_one()
                if not left:
                    conn.execute(_ST.update().values(master_key_id=new.key_id,
                                                     rotating_to=None))
            if not left:
                break  # else keys were created meanwhile with the old key: another pass
        self._provider = new
        return RotationResult(old.key_id, new.key_id, done, services)

    def scrub(self, *, wait: float = CHECKPOINT_WAIT_SECONDS) -> ScrubResult:
        """Make the bytes of erased keys and of rotation's old wrappings leave the live
        database files, as far as the backend allows; say what was done and whether it is
        complete (`ScrubResult`; never raises because something could not be completed).

        SQLite: deleted bytes are overwritten in place (``secure_delete``); this checkpoints
        and truncates the WAL, waiting up to `wait` seconds for readers. PostgreSQL:
        ``VACUUM FULL`` of the key tables (waiting up to `wait` seconds for their lock) and,
        where the role may, ``CHECKPOINT``; old row versions an open transaction still needs
        are reported as kept. Backups, replicas and archived WAL are outside its reach: see
        docs/scrubbing.md.
        """
        return scrub_tables(self._engine, list(VAULT_TABLES), wait=wait)

    def close(self) -> None:
        """Release the database connections (an engine passed in is left to its owner)."""
        self._cache.clear()
        self._service_keys.clear()
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Internals shared with KeyRing

    def _key_for_open(self, subject_id: str, sealed: bytes) -> DataKey:
        key = self._cache.get(subject_id)
        if key is not None:
            return key
        _check_subject(subject_id)
        if self._cache.is_erased(subject_id):
            raise _erased(subject_id)
        key_version_of(sealed)  # a malformed value is tampering, whatever the subject's state
        rows = self._load([subject_id])
        row = rows.get(subject_id)
        if row is None:
            raise KeyNotFoundError(
                "this vault holds no key and no erasure record for the subject: the data was "
                "sealed with another vault (or one restored from too old a backup)"
            )
        return self._key_from_row(row)

    def _key_for_seal(self, subject_id: str) -> DataKey:
        key = self._cache.get(subject_id)
        if key is not None:
            return key
        _check_subject(subject_id)
        if self._cache.is_erased(subject_id):
            raise _erased(subject_id, opening=False)
        row = self._load([subject_id]).get(subject_id)
        if row is None:
            return self._create(subject_id)
        return self._key_from_row(row, opening=False)

    def _preload(self, subject_ids: Collection[str]) -> None:
        wanted = [s for s in subject_ids
                  if self._cache.get(s) is None and not self._cache.is_erased(s)]
        if not wanted:
            return
        for row in self._load(wanted).values():
            with contextlib.suppress(SubjectErasedError):
                self._key_from_row(row)

    def _prepare(self, subject_ids: Collection[str],
                 created: dict[str, _NewKey] | None = None) -> None:
        """Load the keys of `subject_ids` and create the missing ones, in two queries.

        With `created` (a deferred-creation ring's), missing keys are only made, into it.
        """
        wanted = [s for s in dict.fromkeys(subject_ids)
                  if self._cache.get(s) is None and not self._cache.is_erased(s)
                  and (created is None or s not in created)]
        if not wanted:
            return
        for subject_id in wanted:
            _check_subject(subject_id)
        found = self._load(wanted)
        for row in found.values():
            with contextlib.suppress(SubjectErasedError):
                self._key_from_row(row, opening=False)
        missing = [s for s in wanted if s not in found]
        if missing and created is not None:
            created.update(self._new_keys(missing))
        elif missing:
            self._create_many(missing)

    def _key_from_row(self, row: _KeyRow, *, opening: bool = True) -> DataKey:
        if row.state == "erased":
            self._cache.mark_erased([row.subject_id])
            raise _erased(row.subject_id, opening=opening)
        provider = self._require_provider()
        if row.wrapped_by != provider.key_id:
            raise WrongMasterKeyError(
                f"the subject's key is wrapped by master key {row.wrapped_by}, not by "
                f"{provider.key_id}: a rotation changed the master key; restart with the new one"
            )
        secret = provider.unwrap(row.wrapped_key,
                                 context=_wrap_context(row.subject_id, row.key_version))
        key = DataKey(row.subject_id, row.key_version, secret)
        self._cache.put(key)
        return key

    def _create(self, subject_id: str) -> DataKey:
        self._create_many([subject_id])
        key = self._cache.get(subject_id)
        if key is not None:
            return key
        row = self._load([subject_id]).get(subject_id)
        if row is None:  # pragma: no cover - the row was just written or found
            raise KeyNotFoundError("a key was created and is gone: is the vault being restored?")
        return self._key_from_row(row, opening=False)  # erased meanwhile: raises

    def _new_keys(self, subject_ids: list[str]) -> dict[str, _NewKey]:
        """Fresh keys for `subject_ids`, wrapped and ready to store; nothing written yet."""
        provider = self._require_provider()
        now = datetime.now(UTC)
        made = {}
        for subject_id in subject_ids:
            secret = secrets.token_bytes(KEY_SIZE)
            made[subject_id] = _NewKey(
                DataKey(subject_id, _KEY_VERSION, secret),
                {"subject_id": subject_id, "state": "active", "key_version": _KEY_VERSION,
                 "wrapped_key": provider.wrap(secret, context=_wrap_context(subject_id,
                                                                            _KEY_VERSION)),
                 "wrapped_by": provider.key_id, "key_fingerprint": fingerprint(secret),
                 "created_at": now})
        return made

    def _insert_new_keys(self, conn: Connection, made: dict[str, _NewKey]) -> None:
        """Insert the rows of `made` where no row exists, in `conn`'s transaction.

        Takes the state row first (shared), as erase takes it exclusively: on PostgreSQL an
        erase and a first use of one subject cannot interleave, so no key outlives an
        erasure. Refuses a master key that no longer wraps the vault.
        """
        provider = self._require_provider()
        state = conn.execute(sa.select(_ST).with_for_update(read=True)).one()
        if provider.key_id not in (state.master_key_id, state.rotating_to):
            raise WrongMasterKeyError(
                f"the master key {provider.key_id} no longer wraps this vault "
                f"(now {state.master_key_id}); restart with the current master key"
            )
        conn.execute(_insert(conn).on_conflict_do_nothing(index_elements=[_S.c.subject_id]),
                     [new.row for new in made.values()])

    def _store_created(self, made: dict[str, _NewKey], conn: Connection) -> None:
        """Store a deferred-creation ring's keys; KeyCreationConflict where one lost a race."""
        self._insert_new_keys(conn, made)
        rows = conn.execute(sa.select(_S.c.subject_id, _S.c.wrapped_key).where(
            _S.c.subject_id.in_(list(made)))).all()
        stored = {row.subject_id: row.wrapped_key for row in rows}
        lost = [s for s, new in made.items() if stored.get(s) != new.row["wrapped_key"]]
        if lost:
            raise KeyCreationConflict(lost)

    def _create_many(self, subject_ids: list[str]) -> None:
        """Create keys for subjects that have no row, in one transaction; cache them all."""
        made = self._new_keys(subject_ids)
        with self._write() as conn:
            self._insert_new_keys(conn, made)
            rows = conn.execute(_LOAD.where(_S.c.subject_id.in_(subject_ids))).all()
        for row in rows:
            new = made[row.subject_id]
            if row.state == "active" and row.wrapped_key == new.row["wrapped_key"]:
                self._cache.put(new.key)
            else:  # another process created it first, or erased it meanwhile
                with contextlib.suppress(SubjectErasedError):
                    self._key_from_row(row, opening=False)

    def _load(self, subject_ids: Collection[str]) -> dict[str, _KeyRow]:
        with self._read() as conn:
            rows = conn.execute(_LOAD.where(_S.c.subject_id.in_(list(subject_ids)))).all()
        found: dict[str, _KeyRow] = {row.subject_id: row for row in rows}
        if self._record is not None:
            unerased = [s for s in subject_ids
                        if s not in found or found[s].state != "erased"]
            named = self._record.erased_among(unerased) if unerased else ()
            for subject_id in named:  # erased, whatever this vault holds
                found[subject_id] = _RecordedErasure(subject_id)
            active = {row.subject_id for row in rows if row.state == "active"}
            held = sum(1 for s in named if s in active)
            if held:
                _log.warning(
                    "refused %d key(s) of subjects the erasure record says were erased (a "
                    "vault restored from a backup?): their data reads as erased; run "
                    "`shredstore reconcile` to destroy the keys", held)
        return found

    def _refresh(self) -> None:
        """Drop cached keys of subjects erased (by any process) since the last check; drop
        them all if the vault's erasures are not a continuation of those last seen (a vault
        restored from a backup: see keyvault.cache)."""
        named: Collection[str] | None = ()
        with self._read() as conn:
            latest = conn.execute(_LATEST).one()
            mark = ErasureMark(latest.erasures, latest.subject_id,
                               _utc(latest.erased_at) if latest.erased_at else None)
            seen = self._cache.seen
            erased = [] if mark == seen else self._erased_since(conn, seen, mark)
            if self._record is not None:
                record_mark, named = self._record.erased_since(self._cache.seen_record,
                                                               self._cache.size, conn)
        if erased is None or named is None:
            self._cache.clear()
        elif erased or named:
            self._cache.mark_erased([*erased, *named])
        self._cache.seen = mark
        if self._record is not None:
            self._cache.seen_record = record_mark

    def _erased_since(self, conn: Connection, seen: ErasureMark | None, now: ErasureMark
                      ) -> list[str] | None:
        """The subjects erased after `seen` if `now` continues its history; None if it cannot
        (unknown, gone backwards, too many to evict one by one, or another erasure at `seen`'s
        number: the history was replaced)."""
        if seen is None or now.number < seen.number or now.number - seen.number > self._cache.size:
            return None
        rows = conn.execute(sa.select(_S.c.subject_id, _S.c.erasure_seq, _S.c.erased_at)
                            .where(_S.c.erasure_seq >= seen.number)).all()
        if seen.number:
            same = [row for row in rows if row.erasure_seq == seen.number
                    and row.subject_id == seen.subject_id
                    and _utc(row.erased_at) == seen.erased_at]
            if not same:
                return None
        return [row.subject_id for row in rows if row.erasure_seq > seen.number]

    def _adopt_master_key(self, conn: Connection, provider: KeyProvider) -> None:
        if self._check_master_key(conn, provider) is None:
            conn.execute(_ST.update().values(master_key_id=provider.key_id))

    @staticmethod
    def _check_master_key(conn: Connection, provider: KeyProvider) -> str | None:
        """The id of the master key that wraps the vault (None: none yet); raises
        `WrongMasterKeyError` if that is not `provider`."""
        state = conn.execute(sa.select(_ST)).one()
        if state.master_key_id is not None and \
                provider.key_id not in (state.master_key_id, state.rotating_to):
            raise WrongMasterKeyError(
                f"wrong master key: this vault's keys are wrapped by master key "
                f"{state.master_key_id}, and the key given is {provider.key_id}"
            )
        return str(state.master_key_id) if state.master_key_id is not None else None

    def _count_wrapped_by_other(self, key_id: str) -> int:
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(_S).where(
                _S.c.state == "active", _S.c.wrapped_by != key_id)).scalar_one())

    def _rewrap_all(
        self,
        old: KeyProvider,
        new: KeyProvider,
        *,
        batch_size: int,
        done: int,
        total: int,
        progress: Callable[[int, int], None] | None,
    ) -> int:
        rewrapped = 0
        after = ""
        while True:
            with self._read() as conn:
                batch = conn.execute(
                    sa.select(_S.c.subject_id, _S.c.key_version, _S.c.wrapped_key,
                              _S.c.wrapped_by)
                    .where(_S.c.state == "active", _S.c.wrapped_by != new.key_id,
                           _S.c.subject_id > after)
                    .order_by(_S.c.subject_id).limit(batch_size)
                ).all()
            if not batch:
                return rewrapped
            with self._write() as conn:
                for row in batch:
                    if row.wrapped_by != old.key_id:
                        raise RotationError(
                            f"a key is wrapped by master key {row.wrapped_by}, neither the old "
                            f"({old.key_id}) nor the new one"
                        )
                    context = _wrap_context(row.subject_id, row.key_version)
                    secret = old.unwrap(row.wrapped_key, context=context)
                    rewrapped += conn.execute(
                        _S.update()
                        .where(_S.c.subject_id == row.subject_id,
                               _S.c.wrapped_by == old.key_id)
                        .values(wrapped_key=new.wrap(secret, context=context),
                                wrapped_by=new.key_id)
                    ).rowcount
            after = batch[-1].subject_id
            if progress is not None:
                progress(min(done + rewrapped, max(total, done + rewrapped)), total)

    def _rewrap_service_keys(self, old: KeyProvider, new: KeyProvider) -> int:
        """Re-wrap the service keys not yet wrapped by `new` (a handful: one transaction)."""
        rewrapped = 0
        with self._write() as conn:
            rows = conn.execute(sa.select(_K.c.name, _K.c.wrapped_key, _K.c.wrapped_by)
                                .where(_K.c.wrapped_by != new.key_id)).all()
            for row in rows:
                if row.wrapped_by != old.key_id:
                    raise RotationError(
                        f"a service key is wrapped by master key {row.wrapped_by}, neither the "
                        f"old ({old.key_id}) nor the new one")
                context = _SERVICE_CONTEXT + row.name.encode()
                secret = old.unwrap(row.wrapped_key, context=context)
                rewrapped += conn.execute(
                    _K.update().where(_K.c.name == row.name, _K.c.wrapped_by == old.key_id)
                    .values(wrapped_key=new.wrap(secret, context=context),
                            wrapped_by=new.key_id)).rowcount
        return rewrapped

    def _require_provider(self) -> KeyProvider:
        if self._provider is None:
            raise VaultConfigurationError("this vault was opened without a master key")
        return self._provider

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._translate(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._read_only:
            raise VaultConfigurationError(
                "this vault was opened read-only: it can neither create nor erase keys")
        with self._translate(), self._engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                yield conn

    @staticmethod
    @contextlib.contextmanager
    def _translate() -> Iterator[None]:
        try:
            yield
        except DRIVER_ERRORS as raw:  # from the driver's cursor on the append guard
            error = wrap_driver_error(raw)
            if is_connect_failure(error):
                raise VaultUnavailable(
                    f"cannot reach the vault's database: {driver_message(error)}") from raw
            raise VaultStorageError(
                f"the vault's database refused: {driver_message(error)}") from raw
        except DBAPIError as error:
            if is_connect_failure(error):
                raise VaultUnavailable(
                    f"cannot reach the vault's database: {driver_message(error)}") from error
            raise VaultStorageError(
                f"the vault's database refused: {driver_message(error)}") from error


class _RecordedErasure(NamedTuple):
    """A subject the erasure record names, read as an erased row whatever the vault holds."""

    subject_id: str
    state: str = "erased"


class _NewKey(NamedTuple):
    """A key made by a deferred-creation ring: the key, and its row as it will be stored."""

    key: DataKey
    row: dict[str, Any]


class KeyRing:
    """Seals and opens with the keys the vault knew when the ring was made (see `keyring`)."""

    __slots__ = ("_created", "_vault")

    def __init__(self, vault: KeyVault, *, defer_creation: bool = False) -> None:
        self._vault = vault
        self._created: dict[str, _NewKey] | None = {} if defer_creation else None

    def seal(self, subject_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        """As `KeyVault.seal`."""
        if self._created:
            new = self._created.get(subject_id)
            if new is not None:
                return new.key.seal(plaintext, aad)
        return self._vault._key_for_seal(subject_id).seal(plaintext, aad)

    def open(self, subject_id: str, sealed: bytes, *, aad: bytes = b"") -> bytes:
        """As `KeyVault.open`."""
        return self._vault._key_for_open(subject_id, sealed).open(sealed, aad)

    def preload(self, subject_ids: Collection[str]) -> None:
        """Fetch the keys of many subjects in one query (erased ones are noted as such)."""
        self._vault._preload(subject_ids)

    def prepare(self, subject_ids: Collection[str]) -> None:
        """Fetch the keys of subjects about to be sealed for, and create the missing ones
        together, in one transaction (with deferred creation: make them, to be stored by
        `KeyVault.check_active`). Erased subjects are noted; sealing for them raises."""
        self._vault._prepare(subject_ids, self._created)

    def settle(self) -> None:
        """After the transaction that stored this ring's new keys committed: cache them."""
        if self._created:
            for new in self._created.values():
                self._vault._cache.put(new.key)
            self._created.clear()

    def is_erased(self, subject_id: str) -> bool:
        """Whether the subject is known to be erased (after `preload` or a failed open)."""
        return self._vault._cache.is_erased(subject_id)


def _status_of(row: Any) -> SubjectStatus:
    return SubjectStatus(
        row.subject_id, row.state,
        created_at=_utc(row.created_at) if row.created_at else None,
        erased_at=_utc(row.erased_at) if row.erased_at else None,
        request_id=row.request_id, reason=row.reason, key_fingerprint=row.key_fingerprint,
    )


def _wrap_context(subject_id: str, key_version: int) -> bytes:
    encoded = subject_id.encode()
    return (b"keyvault.wrap.v1\x00" + len(encoded).to_bytes(4, "big") + encoded
            + key_version.to_bytes(4, "big"))


def _insert(conn: Connection) -> Any:
    return (postgresql if is_postgres(conn) else sqlite).insert(_S)


def _erased(subject_id: str, *, opening: bool = True) -> SubjectErasedError:
    if opening:
        return KeyErasedError("the subject's key was erased: its data reads as redacted",
                              subject_id=subject_id)
    return SubjectErasedError("the subject was erased: no personal data can be stored for it",
                              subject_id=subject_id)


def _check_subject(subject_id: object) -> None:
    if (not isinstance(subject_id, str) or not subject_id or len(subject_id) > _MAX_SUBJECT_ID
            or _CONTROL.search(subject_id)):
        raise VaultConfigurationError(
            f"a subject id is a non-empty string of at most {_MAX_SUBJECT_ID} characters "
            "without control characters"
        )
    if not _is_utf8(subject_id):
        raise VaultConfigurationError(
            "a subject id must be valid Unicode text: this one holds a lone surrogate "
            "(text decoded with errors='surrogateescape'?); pass the id as valid text")


def _check_service_name(name: object) -> None:
    if (not isinstance(name, str) or not name or len(name) > _MAX_SUBJECT_ID
            or _CONTROL.search(name) or not _is_utf8(name)):
        raise VaultConfigurationError(
            f"a service key's name is a non-empty string of at most {_MAX_SUBJECT_ID} "
            "characters of valid Unicode without control characters")


def _is_utf8(text: str) -> bool:
    """Whether `text` can be stored: lone surrogates cannot be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_note(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_NOTE:
        raise VaultConfigurationError(f"{name} is a string of at most {_MAX_NOTE} characters")
    return value


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

