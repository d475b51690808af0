"""The subject index checked against the events: the walk behind verify's "index" findings.

The index (``shredstore_event_subjects``) is a copy, kept for speed, of each event's own
``subjects`` column, which the hash chain and the row authenticators cover. Reads through the
index already keep only rows that name the subject; this walk finds the index entries that
are missing (a subject's event hidden from its export and footprint), extra (an entry for a
subject the event does not name), or pointing at no event at all.
"""

from __future__ import annotations

from collections.abc import Iterator

from shredstore.storage.chain import Finding, StoredRow
from shredstore.storage.formats import parse_subjects

__all__ = ["IndexCheck"]


class IndexCheck:
    """Walks the index entries (in position order) beside the rows of a verify pass.

    Memory: the entries of one position at a time, and the findings.
    """

    def __init__(self, entries: Iterator[tuple[int, str]]) -> None:
        self._entries = entries
        self._next: tuple[int, str] | None = next(entries, None)
        self.findings: dict[int, Finding] = {}

    def step(self, row: StoredRow) -> None:
        indexed = set()
        while self._next is not None and self._next[0] <= row.position:
            position, subject = self._next
            if position < row.position:
                self._orphan(position)
            else:
                indexed.add(subject)
            self._next = next(self._entries, None)
        named = parse_subjects(row.subjects)
        if row.subjects is not None and not named:
            self._found(row.position, "the event's subjects column is malformed")
        missing, extra = len(named - indexed), len(indexed - named)
        if missing:
            self._found(row.position, f"the subject index lacks {missing} subject(s) that this "
                                      "event names (reads through the index found the rest)")
        if extra:
            self._found(row.position, f"the subject index names {extra} subject(s) that this "
                                      "event does not name (reads through the index ignore "
                                      "them)")

    def finish(self) -> list[Finding]:
        """The findings, once every row was stepped through; entries left point past the log."""
        while self._next is not None:
            self._orphan(self._next[0])
            self._next = next(self._entries, None)
        return [self.findings[position] for position in sorted(self.findings)]

    def _orphan(self, position: int) -> None:
        self._found(position, "the subject index points at a position that holds no event")

    def _found(self, position: int, message: str) -> None:
        self.findings.setdefault(position, Finding("index", position, message))
