"""The residue check: after an erasure, do the read models still hold the subject's values?

Before the key is destroyed, each of the subject's personal values is opened once and reduced
to a keyed fingerprint (HMAC-SHA256 under a random key that lives only in this process's
memory, for this one check); the values themselves are never written, and kept in memory
only until the check ends (for the byte scan below). After the erasure, once every registered
projection has applied the erasure's ledger entry, every text cell of their tables is
fingerprinted the same way, whole and as runs of words, and any match is residue: reported by
projection, table and column with a row count, never by value. Where the read models share the
store's database, the store's plain-text identifiers are checked too: the log's stream ids
(sagas' ids among them) and the sagas' deadlines. A value found there was used as an id: the
log keeps it for good, which crypto-shredding cannot undo.

Values are compared case-folded with runs of separators made single spaces. Values shorter
than `MIN_LENGTH` characters are not fingerprinted (a "7" or "GB" would match everywhere).

That logical check sees live rows only. A deleted or overwritten row's bytes can outlive it in
the database files, so the check also looks there where it can (`PhysicalCheck`): on SQLite it
checkpoints the WAL (as `shredstore scrub` does) and scans the database file and its WAL for
the values themselves, as they would be stored (the text, and its lower-case forms). For that
the values are held in this process's memory, never written anywhere, from the fingerprinting
until the check ends (`Fingerprints.release`). On PostgreSQL the table files and the WAL are
out of a client's reach: the report says "not verified" and why. A value found in the files
makes the report not clean, like a value found in a live row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from keyvault.engine import CHECKPOINT_WAIT_SECONDS, checkpoint_wal, is_postgres
from shredstore.errors import ConfigurationError
from shredstore.evidence import (
    PhysicalCheck,
    PhysicalFinding,
    ResidueFinding,
    ResidueReport,
)
from shredstore.projections.runner import read_models
from shredstore.records import audit_events
from shredstore.storage.scope import Scope

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["MIN_LENGTH", "Fingerprints", "PhysicalCheck", "PhysicalFinding", "ResidueFinding",
           "ResidueReport", "check_residue", "fingerprint_subject"]

MIN_LENGTH = 4
"""Shorter personal values are not looked for."""
_MAX_WORDS = 8
"""Runs of up to this many words of a cell are compared (a value inside a longer text)."""
_SEPARATORS = re.compile(r"[\s,;:<>()\[\]{}\"'|/\\]+")
_CHUNK = 1 << 20
"""The byte scan reads files in pieces of this size."""


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Keyed fingerprints of one subject's personal values, and the values themselves in
    memory until `release` (for the byte scan of the database files); never printed, pickled
    or written."""

    subject_id: str
    digests: frozenset[bytes]
    longest: int
    """The most words in one value: the longest run of a cell worth comparing."""
    _key: bytes = field(repr=False)
    _values: list[str] = field(default_factory=list, repr=False, compare=False)

    def release(self) -> None:
        """Drop the values (Python cannot wipe memory, but nothing refers to them any more);
        the fingerprints stay usable."""
        self._values.clear()

    def __reduce__(self) -> None:  # type: ignore[override]
        raise TypeError("Fingerprints hold personal values in memory: they are not picklable")

    def matches(self, text: str) -> bool:
        """Whether `text` is, or contains as a run of words, one of the values."""
        words = _words(text)
        if not words or not self.digests:
            return False
        for length in range(1, min(self.longest, len(words)) + 1):
            for start in range(len(words) - length + 1):
                run = " ".join(words[start:start + length])
                if len(run) >= MIN_LENGTH and _digest(self._key, run) in self.digests:
                    return True
        return False


def fingerprint_subject(store: EventStore, subject_id: str) -> Fingerprints:
    """Fingerprints of every personal value the log holds for the subject (needs the master
    key; call it before the erasure: afterwards nothing opens)."""
    if not store.has_master_key:
        raise ConfigurationError("the residue check needs the master key (to fingerprint "
                                 "the subject's values before they are erased)")
    key = secrets.token_bytes(32)
    digests: set[bytes] = set()
    values: set[str] = set()
    longest = 1
    for event in audit_events(store, Scope(subject_id=subject_id), reveal=True,
                              only_subject=subject_id):
        for item in event.personal:
            if item.state != "held":
                continue
            for leaf in _leaves(item.value):
                words = _words(leaf)
                text = " ".join(words)
                if len(text) >= MIN_LENGTH:
                    digests.add(_digest(key, text))
                    values.add(leaf)
                    longest = max(longest, min(len(words), _MAX_WORDS))
    return Fingerprints(subject_id, frozenset(digests), longest, key, sorted(values))


def check_residue(engine: Engine, fingerprints: Fingerprints, *, erased_at_position: int,
                  timeout: float = 30.0, physical: bool = True,
                  checkpoint_wait: float = CHECKPOINT_WAIT_SECONDS) -> ResidueReport:
    """Wait (up to `timeout` seconds) until every projection registered in `engine` has
    applied the log up to `erased_at_position`, then scan the tables of those that have; then,
    unless `physical` is False or a projection lags, the database files (see `PhysicalCheck`;
    on SQLite after a WAL checkpoint, waiting up to `checkpoint_wait` seconds for readers).

    The values in `fingerprints` are released when it returns: a check runs once.
    """
    try:
        deadline = time.monotonic() + timeout
        while True:
            models = read_models(engine)
            lagging = sorted(name for name, (position, _) in models.items()
                             if position < erased_at_position)
            if not lagging or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        checked: list[str] = []
        findings: list[ResidueFinding] = []
        for name, (_, tables) in sorted(models.items()):
            if name in lagging:
                continue
            for table_name in tables:
                checked.append(f"{name}: {table_name}")
                findings += _scan_table(engine, name, table_name, fingerprints)
        for label, table_name, columns in _STORE_PLACES:  # reported only where found
            findings += _scan_distinct(engine, label, table_name, columns, fingerprints) or []
        if lagging:
            scan = PhysicalCheck(False, detail="projections have not caught up: their live "
                                 "rows still hold what they will forget")
        elif physical:
            scan = _scan_files(engine, fingerprints, checkpoint_wait)
        else:
            scan = PhysicalCheck(False, detail="not asked for")
        note = None if models else "no projection is registered in this read-model database"
        return ResidueReport(tuple(checked), len(fingerprints.digests), tuple(lagging),
                             tuple(findings), note, scan)
    finally:
        fingerprints.release()


def _scan_files(engine: Engine, fingerprints: Fingerprints, wait: float) -> PhysicalCheck:
    """Checkpoint an SQLite database's WAL, then count the values' places in its files."""
    if is_postgres(engine):
        return PhysicalCheck(False, detail=(
            "PostgreSQL keeps deleted and overwritten row versions (dead tuples) in the table "
            "files until VACUUM FULL (shredstore scrub), and in its WAL; a client cannot read "
            "either"))
    database = engine.url.database
    if database in (None, "", ":memory:") or not Path(database).is_file():
        return PhysicalCheck(False, detail="no database file at the URL's path (an in-memory "
                             "or URI database)")
    if not fingerprints._values:
        return PhysicalCheck(False, detail="the values were already released by an earlier "
                             "check")
    with engine.connect() as conn:
        encoding = str(conn.exec_driver_sql("PRAGMA encoding").scalar())
    needles = _needles(fingerprints._values, encoding)
    checkpointed = checkpoint_wal(engine, wait=wait)
    path = Path(database)
    files = [file for file in (path, *(path.with_name(path.name + suffix)
                                       for suffix in ("-wal", "-journal")))
             if file.exists()]
    found = tuple(PhysicalFinding(file.name, places) for file in files
                  if (places := _places(file, needles)))
    how = (" scanned after a WAL checkpoint" if checkpointed else
           " scanned; the WAL could not be checkpointed (another connection kept it busy): "
           "run shredstore scrub")
    return PhysicalCheck(True, found, ", ".join(file.name for file in files) + how)


def _needles(values: Iterable[str], encoding: str) -> list[bytes]:
    """The values as the database would store them: as given and lower-cased."""
    forms = {form for value in values for form in (value, value.lower(), value.casefold())}
    return sorted(form.encode(encoding) for form in forms)


def _places(file: Path, needles: list[bytes]) -> int:
    """How many times the needles occur in `file`, read piece by piece (a match may straddle
    two pieces: the last bytes of one are searched again with the next)."""
    keep = max(len(needle) for needle in needles) - 1
    places, tail = 0, b""
    try:
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                data = tail + chunk
                for needle in needles:  # count only matches that end in the new piece
                    places += data.count(needle, max(0, len(tail) - len(needle) + 1))
                tail = data[-keep:] if keep else b""
    except FileNotFoundError:  # a WAL removed by a checkpoint meanwhile
        return places
    return places


def _scan_table(engine: Engine, projection: str, table_name: str,
                fingerprints: Fingerprints) -> list[ResidueFinding]:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(table_name):
            return []
        table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
        counts = dict.fromkeys(table.columns.keys(), 0)
        result = conn.execution_options(yield_per=1000).execute(sa.select(table))
        for row in result:
            for column, value in zip(counts, row, strict=True):
                if value is not None and fingerprints.matches(_text(value)):
                    counts[column] += 1
    return [ResidueFinding(projection, table_name, column, rows)
            for column, rows in counts.items() if rows]


_STORE_PLACES = (
    ("event log", "shredstore_events", ("stream_id",)),
    ("sagas", "shredstore_saga_deadlines", ("saga_id", "name")),
)
"""Plain-text identifiers of the store's own tables, where the read models share its database:
stream ids (a saga's id is part of its stream's) and sagas' deadlines. Crypto-shredding cannot
reach them: a value found there was used as an id, and stays in the log for good."""


def _scan_distinct(engine: Engine, label: str, table_name: str, columns: tuple[str, ...],
                   fingerprints: Fingerprints) -> list[ResidueFinding] | None:
    """The distinct values of `columns` that match, counted per column (None: no table)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(table_name):
            return None
        table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
        findings = []
        for column in columns:
            rows = conn.execution_options(yield_per=1000).execute(
                sa.select(table.c[column]).distinct())
            matches = sum(1 for (value,) in rows
                          if value is not None and any(map(fingerprints.matches,
                                                           _id_parts(_text(value)))))
            if matches:
                findings.append(ResidueFinding(label, table_name, column, matches))
    return findings


def _id_parts(text: str) -> list[str]:
    """An id and each of its tails after a "-" (``customer-`` + a value, ``saga-name-`` + a
    value): the separators of words leave "-" inside words, as in names."""
    return [text, *(text[at + 1:] for at, char in enumerate(text) if char == "-")]


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _words(text: str) -> list[str]:
    return [word for word in _SEPARATORS.split(text.casefold()) if word]


def _digest(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
