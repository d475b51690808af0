"""The subjects' data keys: loaded, unwrapped, cached, created, and checked against erasures.

`SubjectKeys` is what a `KeyRing` draws on. A key is unwrapped once and cached; the cache never
outlives an erasure (`refresh`, once per key ring, see `keyvault.cache`); a subject with no
row gets a new key, created under the state row's shared lock so that no key outlives an
erasure that races it; and an `ErasureRecord` outranks the vault's own rows for every key it
loads.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection

from keyvault import statements
from keyvault.cache import ErasureMark, KeyCache
from keyvault.engine import Transactions
from keyvault.envelope import KEY_SIZE, DataKey, key_version_of
from keyvault.erasure import ErasureRecord, as_utc
from keyvault.errors import (
    KeyCreationConflict,
    KeyErasedError,
    KeyNotFoundError,
    SubjectErasedError,
    TamperedError,
    VaultConfigurationError,
    WrongMasterKeyError,
)
from keyvault.master import KeyProvider
from keyvault.names import check_subject

__all__ = ["KEY_VERSION", "NewKey", "SubjectKeys", "erased_error", "wrap_context"]

_log = logging.getLogger("keyvault")

KEY_VERSION = 1
"""The version of the data keys this vault creates."""

_KeyRow = Any  # a statements.LoadedKey, or a _RecordedErasure


class NewKey(NamedTuple):
    """A key made but not yet stored: the key, and its row as it will be stored."""

    key: DataKey
    row: dict[str, Any]


class _RecordedErasure(NamedTuple):
    """A subject the erasure record names, read as an erased row whatever the vault holds."""

    subject_id: str
    state: str = "erased"


class SubjectKeys:
    """The data keys of one vault's subjects, as its key rings use them.

    `provider` is the master key that wraps them (None: the vault was opened without one; a
    rotation replaces it).
    """

    def __init__(self, transactions: Transactions, cache: KeyCache, *,
                 provider: KeyProvider | None, record: ErasureRecord | None) -> None:
        self._db = transactions
        self.cache = cache
        self.provider = provider
        self._record = record

    def require_provider(self) -> KeyProvider:
        """The master key; `VaultConfigurationError` if the vault was opened without one."""
        if self.provider is None:
            raise VaultConfigurationError("this vault was opened without a master key")
        return self.provider

    def for_open(self, subject_id: str, sealed: bytes) -> DataKey:
        """The key that opens `sealed` for `subject_id` (see `KeyVault.open` for the errors)."""
        key = self.cache.get(subject_id)
        if key is not None:
            return key
        check_subject(subject_id)
        if self.cache.is_erased(subject_id):
            raise erased_error(subject_id)
        key_version_of(sealed)  # a malformed value is tampering, whatever the subject's state
        rows = self._load([subject_id])
        row = rows.get(subject_id)
        if row is None:
            raise KeyNotFoundError(
                "this vault holds no key and no erasure record for the subject: the data was "
                "sealed with another vault (or one restored from too old a backup)"
            )
        return self._key_from_row(row)

    def for_seal(self, subject_id: str) -> DataKey:
        """The subject's key, created on first use; `SubjectErasedError` if erased."""
        key = self.cache.get(subject_id)
        if key is not None:
            return key
        check_subject(subject_id)
        if self.cache.is_erased(subject_id):
            raise erased_error(subject_id, opening=False)
        row = self._load([subject_id]).get(subject_id)
        if row is None:
            return self._create(subject_id)
        return self._key_from_row(row, opening=False)

    def preload(self, subject_ids: Collection[str]) -> None:
        """Load the keys of `subject_ids` that are not cached, in one query."""
        wanted = [s for s in subject_ids
                  if self.cache.get(s) is None and not self.cache.is_erased(s)]
        if not wanted:
            return
        for row in self._load(wanted).values():
            # A malformed row is left for the value that needs it to report, where the
            # reader can name the record it belongs to.
            with contextlib.suppress(SubjectErasedError, TamperedError):
                self._key_from_row(row)

    def prepare(self, subject_ids: Collection[str],
                created: dict[str, NewKey] | None = None) -> None:
        """Load the keys of `subject_ids` and create the missing ones, in two queries.

        With `created` (a deferred-creation ring's), missing keys are only made, into it.
        """
        wanted = [s for s in dict.fromkeys(subject_ids)
                  if self.cache.get(s) is None and not self.cache.is_erased(s)
                  and (created is None or s not in created)]
        if not wanted:
            return
        for subject_id in wanted:
            check_subject(subject_id)
        found = self._load(wanted, missing_are_guarded=created is not None)
        for row in found.values():
            with contextlib.suppress(SubjectErasedError):
                self._key_from_row(row, opening=False)
        missing = [s for s in wanted if s not in found]
        if missing and created is not None:
            created.update(self.new_keys(missing))
        elif missing:
            self._create_many(missing)

    def new_keys(self, subject_ids: list[str]) -> dict[str, NewKey]:
        """Fresh keys for `subject_ids`, wrapped and ready to store; nothing written yet."""
        provider = self.require_provider()
        now = datetime.now(UTC)
        made = {}
        for subject_id in subject_ids:
            secret = secrets.token_bytes(KEY_SIZE)
            key = DataKey(subject_id, KEY_VERSION, secret)
            made[subject_id] = NewKey(
                key,
                {"subject_id": subject_id, "state": "active", "key_version": KEY_VERSION,
                 "wrapped_key": provider.wrap(secret, context=wrap_context(subject_id,
                                                                           KEY_VERSION)),
                 "wrapped_by": provider.key_id, "key_fingerprint": key.fingerprint,
                 "created_at": now})
        return made

    def store_created(self, made: dict[str, NewKey], conn: Connection) -> None:
        """Store a deferred-creation ring's keys in `conn`'s transaction;
        `KeyCreationConflict` where another process stored one first."""
        rows = self._insert_new_keys(conn, made, list(made))
        stored = {row.subject_id: row.wrapped_key for row in rows}
        lost = [s for s, new in made.items() if stored.get(s) != new.row["wrapped_key"]]
        if lost:
            raise KeyCreationConflict(lost)

    def refresh(self, connection: Connection | None = None) -> None:
        """Drop cached keys of subjects erased (by any process) since the last check; drop
        them all if the vault's erasures are not a continuation of those last seen (a vault
        restored from a backup: see keyvault.cache). In `connection`'s transaction if given
        (on the vault's database), else in a short one of its own."""
        if connection is not None:
            self.ask_refresh(connection)()
            return
        with self._db.read() as conn:
            self.ask_refresh(conn)()

    def ask_refresh(self, connection: Connection) -> Callable[[], None]:
        """`refresh` in two steps, in `connection`'s transaction: the queries are sent now
        (on the driver's cursor), and the function returned reads their answers and updates
        the cache. In psycopg's pipeline mode they share the round trip of whatever else is
        sent before the answers are read (a page of a read, on PostgreSQL); the function may
        then still ask more, on the same connection, when erasures happened since the last
        check."""
        answer = statements.ask_latest_erasure(connection)
        record = (None if self._record is None else
                  self._record.ask_erased_since(self.cache.seen_record, self.cache.size,
                                                connection))

        def finish() -> None:
            named: Collection[str] | None = ()
            erasures, subject_id, erased_at = answer()
            if record is not None:
                record_mark, named = record()
            mark = ErasureMark(erasures, subject_id, as_utc(erased_at) if erased_at else None)
            seen = self.cache.seen
            erased = [] if mark == seen else self._erased_since(connection, seen, mark)
            if erased is None or named is None:
                self.cache.clear()
            elif erased or named:
                self.cache.mark_erased([*erased, *named])
            self.cache.seen = mark
            if record is not None:
                self.cache.seen_record = record_mark

        return finish

    def _erased_since(self, conn: Connection, seen: ErasureMark | None, now: ErasureMark
                      ) -> list[str] | None:
        """The subjects erased after `seen` if `now` continues its history; None if it cannot
        (unknown, gone backwards, too many to evict one by one, or another erasure at `seen`'s
        number: the history was replaced)."""
        if seen is None or now.number < seen.number or now.number - seen.number > self.cache.size:
            return None
        # The driver's cursor: this runs in a read's pipeline on PostgreSQL.
        rows = statements.erasures_from(conn, seen.number)
        if seen.number:
            same = [subject for subject, number, erased_at in rows if number == seen.number
                    and subject == seen.subject_id
                    and erased_at is not None and as_utc(erased_at) == seen.erased_at]
            if not same:
                return None
        return [subject for subject, number, _ in rows if number > seen.number]

    def _key_from_row(self, row: _KeyRow, *, opening: bool = True) -> DataKey:
        if row.state == "erased":
            self.cache.mark_erased([row.subject_id])
            raise erased_error(row.subject_id, opening=opening)
        if not (type(row.key_version) is int and 0 <= row.key_version < _KEY_VERSIONS
                and isinstance(row.wrapped_key, bytes) and isinstance(row.wrapped_by, str)):
            # Values no vault writes (only an edit of its table stores them): never a raw
            # OverflowError or TypeError out of the unwrapping.
            raise TamperedError("a subject's stored key is malformed: the vault's table was "
                                "altered")
        provider = self.require_provider()
        if row.wrapped_by != provider.key_id:
            raise WrongMasterKeyError(
                f"the subject's key is wrapped by master key {row.wrapped_by}, not by "
                f"{provider.key_id}: a rotation changed the master key; restart with the new one"
            )
        secret = provider.unwrap(row.wrapped_key,
                                 context=wrap_context(row.subject_id, row.key_version))
        key = DataKey(row.subject_id, row.key_version, secret)
        self.cache.put(key)
        return key

    def _create(self, subject_id: str) -> DataKey:
        self._create_many([subject_id])
        key = self.cache.get(subject_id)
        if key is not None:
            return key
        row = self._load([subject_id]).get(subject_id)
        if row is None:  # pragma: no cover - the row was just written or found
            raise KeyNotFoundError("a key was created and is gone: is the vault being restored?")
        return self._key_from_row(row, opening=False)  # erased meanwhile: raises

    def _create_many(self, subject_ids: list[str]) -> None:
        """Create keys for subjects that have no row, in one transaction; cache them all."""
        made = self.new_keys(subject_ids)
        with self._db.write() as conn:
            rows = self._insert_new_keys(conn, made, subject_ids)
        for row in rows:
            new = made[row.subject_id]
            if row.state == "active" and row.wrapped_key == new.row["wrapped_key"]:
                self.cache.put(new.key)
            else:  # another process created it first, or erased it meanwhile
                with contextlib.suppress(SubjectErasedError):
                    self._key_from_row(row, opening=False)

    def _insert_new_keys(self, conn: Connection, made: dict[str, NewKey],
                         read_back: list[str]) -> list[statements.LoadedKey]:
        """Insert the rows of `made` where no row exists, in `conn`'s transaction, and read
        the rows of `read_back` as they then are.

        Takes the state row first (shared), as erase takes it exclusively: on PostgreSQL an
        erase and a first use of one subject cannot interleave, so no key outlives an
        erasure. Refuses a master key that no longer wraps the vault; raised before the
        commit, that takes back the keys inserted. The three statements are sent before any
        answer is read: one round trip in a pipeline.
        """
        provider = self.require_provider()
        ids = statements.ask_master_key_ids(conn)
        statements.insert_keys(conn, [new.row for new in made.values()])
        rows = statements.ask_load_keys(conn, read_back)
        master_key_id, rotating_to = ids()
        if provider.key_id not in (master_key_id, rotating_to):
            raise WrongMasterKeyError(
                f"the master key {provider.key_id} no longer wraps this vault "
                f"(now {master_key_id}); restart with the current master key")
        return rows()

    def _load(self, subject_ids: Collection[str], *, missing_are_guarded: bool = False
              ) -> dict[str, _KeyRow]:
        """The vault's rows of `subject_ids`, with the erasure record's word on them.

        `missing_are_guarded`: subjects without a row will only get one through
        `store_created`, in a transaction whose caller checks the erasure record itself
        (`check_active` with a deferred-creation ring): the record is asked only about the
        subjects found, which saves a new subject's first append a query.
        """
        # Each subject's row stands alone (a key created or erased between two parts of a
        # long list is met by the append's guard): no transaction around the statements.
        with self._db.statements() as conn:
            rows = statements.load_keys(conn, list(subject_ids))
        found: dict[str, _KeyRow] = {row.subject_id: row for row in rows}
        if self._record is not None:
            unerased = [s for s in subject_ids
                        if (s not in found and not missing_are_guarded)
                        or (s in found and found[s].state != "erased")]
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


_KEY_VERSIONS = 2**32
"""Key versions are stored in four bytes of the wrapping's context and of sealed values."""


def wrap_context(subject_id: str, key_version: int) -> bytes:
    """What a subject's wrapped key is bound to: its subject and key version."""
    encoded = subject_id.encode()
    return (b"keyvault.wrap.v1\x00" + len(encoded).to_bytes(4, "big") + encoded
            + key_version.to_bytes(4, "big"))


def erased_error(subject_id: str, *, opening: bool = True) -> SubjectErasedError:
    """The error for an erased subject: `KeyErasedError` (read as redacted) when opening,
    `SubjectErasedError` when sealing (nothing can be stored for it)."""
    if opening:
        return KeyErasedError("the subject's key was erased: its data reads as redacted",
                              subject_id=subject_id)
    return SubjectErasedError("the subject was erased: no personal data can be stored for it",
                              subject_id=subject_id)
