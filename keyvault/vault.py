"""`KeyVault`: one data key per subject, wrapped by a master key, erasable for good; and
`KeyRing`, the view of its keys that one unit of work seals and opens with.

The vault is a facade over the modules that do the work: `keyvault.keys` (load, cache and
create subjects' keys), `keyvault.erasure` (tombstones and statuses),
`keyvault.service_keys`, `keyvault.rotation` and `keyvault.scrub`. Besides the subjects'
data keys, a vault keeps a few *service keys*: secrets that belong to the application, not to a
subject (shredstore authenticates every stored row with one). They are wrapped by the master
key like data keys, re-wrapped by `KeyVault.rotate_master_key`, and never erased: an erasure
destroys a subject's key, never the keys that prove the log intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Collection, Iterator
from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from keyvault import erasure, rotation, schema, statements
from keyvault.cache import KeyCache
from keyvault.engine import (
    CHECKPOINT_WAIT_SECONDS,
    Transactions,
    checkpoint_wal,
    create_engine,
    is_postgres,
    translate_errors,
)
from keyvault.erasure import ErasureRecord, ErasureResult, SubjectStatus
from keyvault.errors import KeyErasedError, VaultConfigurationError, WrongMasterKeyError
from keyvault.keys import NewKey, SubjectKeys, erased_error
from keyvault.master import KeyProvider
from keyvault.names import check_note, check_subject
from keyvault.rotation import RotationResult
from keyvault.scrub import VAULT_TABLES, ScrubResult, scrub_tables
from keyvault.service_keys import ServiceKeys

__all__ = ["KeyRing", "KeyVault"]

_S = schema.SUBJECTS
_ST = schema.STATE


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
        self._db = Transactions(
            self._engine, read_only=read_only,
            refusal="this vault was opened read-only: it can neither create nor erase keys")
        self._cache = KeyCache(cache_size)
        self._keys = SubjectKeys(self._db, self._cache, provider=master_key,
                                 record=erasure_record)
        self._service_keys = ServiceKeys(self._db)
        try:
            if read_only:
                with self._db.read() as conn:
                    if not sa.inspect(conn).has_table(_ST.name):
                        raise VaultConfigurationError("this database holds no key vault")
                    if master_key is not None:
                        _check_master_key(conn, master_key)
            else:
                with self._db.write() as conn:
                    schema.install(conn)
                    if master_key is not None and _check_master_key(conn, master_key) is None:
                        conn.execute(_ST.update().values(master_key_id=master_key.key_id))
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
        `KeyRing.settle` caches the new keys. The erasure record (if the vault has one) is
        not asked about subjects that have no key yet: the caller's transaction must refuse
        those it names, as shredstore's append guard does with its ledger.
        """
        if refresh:
            self._keys.refresh()
        yield KeyRing(self, defer_creation=defer_creation)

    def refresh(self, connection: Connection | None = None) -> None:
        """The erasure check a keyring makes on entering, on its own: forget cached keys of
        subjects erased since the last check. In `connection`'s transaction if given, which
        must be on the vault's database: a reader that shares it checks in the transaction
        that read its rows (one round trip, and both as of one moment), then opens them with
        ``keyring(refresh=False)``."""
        self._keys.refresh(connection)

    def ask_refresh(self, connection: Connection) -> Callable[[], None]:
        """`refresh` in `connection`'s transaction, in two steps: the queries are sent now,
        and the function returned reads their answers (on PostgreSQL, a reader sends them in
        the pipeline of its page: one round trip for both)."""
        return self._keys.ask_refresh(connection)

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
        return self._service_keys.get(name, self._keys.require_provider, create=create)

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
        check_subject(subject_id)
        reason = check_note("reason", reason)
        request_id = check_note("request_id", request_id)
        if connection is not None:
            with translate_errors():
                return erasure.erase(connection, self._cache, subject_id, reason=reason,
                                     request_id=request_id)
        with self._db.write() as conn:
            result = erasure.erase(conn, self._cache, subject_id, reason=reason,
                                   request_id=request_id)
        if result.already_erased or not result.held_key:
            return result
        return dataclasses.replace(result, scrubbed=self.checkpoint())

    def checkpoint(self) -> bool:
        """After an erasure committed: make the deleted key's bytes leave the live files as far
        as is cheap (SQLite: checkpoint and truncate the WAL, with a short wait for readers);
        whether that completed. PostgreSQL: False, `scrub` does it (VACUUM FULL)."""
        return checkpoint_wal(self._engine)

    def status(self, subject_id: str) -> SubjectStatus:
        """Whether the subject has a key ("active"), was erased ("erased"), or is "unknown"."""
        check_subject(subject_id)
        with self._db.read() as conn, erasure.unaltered():
            row = conn.execute(sa.select(_S).where(_S.c.subject_id == subject_id)).first()
            if row is None:
                return SubjectStatus(subject_id, "unknown")
            return erasure.status_of(row)

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
        with self._db.write() if not is_postgres(self._engine) else self._db.read() as conn:
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
            self._keys.store_created(created, connection)
            subject_ids = set(subject_ids) - created.keys()
        subject_ids = sorted(set(subject_ids))
        if not subject_ids:
            return
        postgres = is_postgres(connection)
        cursor = connection.connection.cursor()  # the driver's, in the caller's transaction
        try:
            cursor.execute(statements.erased_among(len(subject_ids), postgres=postgres),
                           tuple(subject_ids))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        erased = [row[0] for row in rows if not postgres or row[1] == "erased"]
        if erased:
            self._cache.mark_erased(erased)
            raise erased_error(erased[0], opening=False)

    def erasures(self) -> Iterator[SubjectStatus]:
        """Every erased subject's tombstone, oldest erasure first."""
        return erasure.tombstones(self._db)

    def erased_subjects(self, subject_ids: Collection[str]) -> frozenset[str]:
        """Which of `subject_ids` are erased, in one query."""
        with self._db.read() as conn:
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
        old = self._keys.require_provider()
        if not isinstance(new, KeyProvider):
            raise VaultConfigurationError("the new master key must be a MasterKey or KeyProvider")
        result = rotation.rotate(self._db, old, new, batch_size=batch_size, progress=progress)
        self._keys.provider = new
        return result

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
        self._service_keys.forget()
        self._db.close()
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

    # What KeyRing draws on (kept here, so that it can be observed per vault)

    def _prepare(self, subject_ids: Collection[str],
                 created: dict[str, NewKey] | None = None) -> None:
        self._keys.prepare(subject_ids, created)


class KeyRing:
    """Seals and opens with the keys the vault knew when the ring was made (see `keyring`)."""

    __slots__ = ("_created", "_find", "_keys", "_vault")

    def __init__(self, vault: KeyVault, *, defer_creation: bool = False) -> None:
        self._vault = vault
        self._keys = vault._keys
        self._find = self._keys.cache.find
        self._created: dict[str, NewKey] | None = {} if defer_creation else None

    def seal(self, subject_id: str, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        """As `KeyVault.seal`."""
        if self._created:
            new = self._created.get(subject_id)
            if new is not None:
                return new.key.seal(plaintext, aad)
        return self._keys.for_seal(subject_id).seal(plaintext, aad)

    def open(self, subject_id: str, sealed: bytes, *, aad: bytes = b"") -> bytes:
        """As `KeyVault.open`."""
        return self._keys.for_open(subject_id, sealed).open(sealed, aad)

    def open_unless_erased(self, subject_id: str, sealed: bytes, *, aad: bytes = b""
                           ) -> bytes | None:
        """As `open`, but None instead of `KeyErasedError` where the subject's key was erased:
        for readers that show an erased subject's values as redacted (a read opens one value
        per subject and event, and an erased subject is then no slower to read)."""
        key = self._find(subject_id)
        if key is not None:
            return key.open(sealed, aad)
        if self._keys.cache.is_erased(subject_id):
            return None
        try:
            return self._keys.for_open(subject_id, sealed).open(sealed, aad)
        except KeyErasedError:
            return None

    def preload(self, subject_ids: Collection[str]) -> None:
        """Fetch the keys of many subjects in one query (erased ones are noted as such)."""
        self._keys.preload(subject_ids)

    def prepare(self, subject_ids: Collection[str]) -> None:
        """Fetch the keys of subjects about to be sealed for, and create the missing ones
        together, in one transaction (with deferred creation: make them, to be stored by
        `KeyVault.check_active`). Erased subjects are noted; sealing for them raises."""
        self._vault._prepare(subject_ids, self._created)

    def settle(self) -> None:
        """After the transaction that stored this ring's new keys committed: cache them."""
        if self._created:
            for new in self._created.values():
                self._keys.cache.put(new.key)
            self._created.clear()

    def is_erased(self, subject_id: str) -> bool:
        """Whether the subject is known to be erased (after `preload` or a failed open)."""
        return self._keys.cache.is_erased(subject_id)


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
