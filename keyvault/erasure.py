"""Erasure: the tombstone that replaces a subject's key, what a subject's state is, and the
record of erasures that outranks the vault's own.

A subject has one row in ``keyvault_subjects`` for good: its wrapped key while active, a
tombstone (time, request id, reason, the fingerprint of the key destroyed) once erased. An
erasure replaces the key by the tombstone and advances the erasure counter, in one
transaction; the counter is what every process checks to drop cached keys (`keyvault.cache`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keyvault import schema, statements
from keyvault.cache import KeyCache
from keyvault.engine import Transactions

__all__ = ["ErasureRecord", "ErasureResult", "SubjectStatus", "as_utc", "erase", "status_of",
           "tombstones"]

_S = schema.SUBJECTS
_ST = schema.STATE
_PAGE = 1000


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

    def ask_erased_since(self, mark: Hashable | None, limit: int, connection: Connection
                         ) -> Callable[[], tuple[Hashable, Collection[str] | None]]:
        """Ask for the record's mark now, and the subjects it named after `mark` (a mark it
        returned before); the function returned gives both. None instead of the subjects when
        it cannot tell (no `mark`, a record that does not continue from it, or more than
        `limit` of them): then the vault drops its cache.

        `connection` is the vault's, in a read transaction: a record kept in the same database
        may read through it, with the driver's cursor. Its queries are sent when this is
        called and their answers read when the function is (after other queries may have been
        sent in between: psycopg's pipeline mode, one round trip for all)."""
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


def erase(conn: Connection, cache: KeyCache, subject_id: str, *, reason: str | None,
          request_id: str | None) -> ErasureResult:
    """Replace the subject's key by a tombstone in `conn`'s write transaction (idempotent);
    `cache` forgets the key at once (evicting before the commit is safe)."""
    # Lock the state row first: erasures, and first uses of a key, queue behind it.
    erasures = conn.execute(statements.ERASURES.with_for_update()).scalar_one()
    row = conn.execute(sa.select(_S).where(_S.c.subject_id == subject_id)).first()
    if row is not None and row.state == "erased":
        return ErasureResult(
            subject_id, as_utc(row.erased_at), already_erased=True,
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
    cache.mark_erased([subject_id])
    return ErasureResult(
        subject_id, erased_at, already_erased=False, held_key=row is not None,
        key_fingerprint=row.key_fingerprint if row is not None else None,
        request_id=request_id, reason=reason, scrubbed=row is None,
    )


def status_of(row: Any) -> SubjectStatus:
    """The status a stored subject row says (`row` has every column of the subjects table)."""
    return SubjectStatus(
        row.subject_id, row.state,
        created_at=as_utc(row.created_at) if row.created_at else None,
        erased_at=as_utc(row.erased_at) if row.erased_at else None,
        request_id=row.request_id, reason=row.reason, key_fingerprint=row.key_fingerprint,
    )


@contextlib.contextmanager
def unaltered() -> Iterator[None]:
    """Subjects-table rows read as statuses in the block: a value no vault writes (a time that
    does not parse, which SQLAlchemy's own conversion meets first) is `TamperedError`."""
    try:
        yield
    except (TypeError, ValueError):
        raise statements.altered_row() from None


def tombstones(transactions: Transactions) -> Iterator[SubjectStatus]:
    """Every erased subject's tombstone, oldest erasure first, a page per transaction."""
    after = 0
    while True:
        with transactions.read() as conn, unaltered():
            rows = conn.execute(sa.select(_S).where(
                _S.c.state == "erased", _S.c.erasure_seq > after,
            ).order_by(_S.c.erasure_seq).limit(_PAGE)).all()
            statuses = [status_of(row) for row in rows]
        yield from statuses
        if len(rows) < _PAGE:
            return
        after = rows[-1].erasure_seq


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite hands back naive UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
