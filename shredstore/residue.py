"""The residue check: after an erasure, do the read models still hold the subject's values?

Before the key is destroyed, each of the subject's personal values is opened once and reduced
to a keyed fingerprint (HMAC-SHA256 under a random key that lives only in this process's
memory, for this one check); the values themselves are never written or kept. After the
erasure, once every registered projection has applied the erasure's ledger entry, every text
cell of their tables is fingerprinted the same way, whole and as runs of words, and any match
is residue: reported by projection, table and column with a row count, never by value.

Values are compared case-folded with runs of separators made single spaces. Values shorter
than `MIN_LENGTH` characters are not fingerprinted (a "7" or "GB" would match everywhere).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shredstore.audit.reader import audit_events
from shredstore.errors import ConfigurationError
from shredstore.projections.runner import read_models
from shredstore.storage.log import Scope

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["MIN_LENGTH", "Fingerprints", "ResidueFinding", "ResidueReport", "check_residue",
           "fingerprint_subject"]

MIN_LENGTH = 4
"""Shorter personal values are not looked for."""
_MAX_WORDS = 8
"""Runs of up to this many words of a cell are compared (a value inside a longer text)."""
_SEPARATORS = re.compile(r"[\s,;:<>()\[\]{}\"'|/\\]+")


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """Keyed fingerprints of one subject's personal values; no value is kept."""

    subject_id: str
    digests: frozenset[bytes]
    longest: int
    """The most words in one value: the longest run of a cell worth comparing."""
    _key: bytes = field(repr=False)

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


@dataclass(frozen=True, slots=True)
class ResidueFinding:
    projection: str
    table: str
    column: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"projection": self.projection, "table": self.table, "column": self.column,
                "rows": self.rows}


@dataclass(frozen=True, slots=True)
class ResidueReport:
    """What the scan of the read models found. `clean` only if it could look everywhere."""

    checked: tuple[str, ...]
    """``projection: table`` for every table scanned."""
    values: int
    """How many distinct values of the subject were looked for."""
    lagging: tuple[str, ...] = ()
    """Projections that had not applied the erasure when the wait ended: not scanned."""
    findings: tuple[ResidueFinding, ...] = ()
    note: str | None = None

    @property
    def clean(self) -> bool:
        return not self.findings and not self.lagging

    def to_dict(self) -> dict[str, Any]:
        return {"result": "clean" if self.clean else "RESIDUE" if self.findings
                else "incomplete",
                "read_models": list(self.checked), "values_looked_for": self.values,
                "lagging": list(self.lagging),
                "findings": [finding.to_dict() for finding in self.findings],
                **({"note": self.note} if self.note else {})}


def fingerprint_subject(store: EventStore, subject_id: str) -> Fingerprints:
    """Fingerprints of every personal value the log holds for the subject (needs the master
    key; call it before the erasure: afterwards nothing opens)."""
    if not store._has_master_key:
        raise ConfigurationError("the residue check needs the master key (to fingerprint "
                                 "the subject's values before they are erased)")
    key = secrets.token_bytes(32)
    digests: set[bytes] = set()
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
                    longest = max(longest, min(len(words), _MAX_WORDS))
    return Fingerprints(subject_id, frozenset(digests), longest, key)


def check_residue(engine: Engine, fingerprints: Fingerprints, *, erased_at_position: int,
                  timeout: float = 30.0) -> ResidueReport:
    """Wait (up to `timeout` seconds) until every projection registered in `engine` has
    applied the log up to `erased_at_position`, then scan the tables of those that have."""
    deadline = time.monotonic() + timeout
    while True:
        models = read_models(engine)
        lagging = sorted(name for name, (position, _) in models.items()
                         if position < erased_at_position)
        if not lagging or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not models:
        return ResidueReport((), len(fingerprints.digests),
                             note="no projection is registered in this read-model database")
    checked: list[str] = []
    findings: list[ResidueFinding] = []
    for name, (_, tables) in sorted(models.items()):
        if name in lagging:
            continue
        for table_name in tables:
            checked.append(f"{name}: {table_name}")
            findings += _scan_table(engine, name, table_name, fingerprints)
    return ResidueReport(tuple(checked), len(fingerprints.digests), tuple(lagging),
                         tuple(findings))


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
