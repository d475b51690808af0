"""`Scope`: which events a report, an audit or an export covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shredstore.storage.chain import StoredRow

__all__ = ["Scope"]


@dataclass(frozen=True, slots=True)
class Scope:
    """Which events a report covers: all that match every filter given (None: any)."""

    stream_id: str | None = None
    event_type: str | None = None
    subject_id: str | None = None
    """Events that name the subject (through the subject index)."""
    since: datetime | None = None
    """Recorded at or after (aware)."""
    until: datetime | None = None
    """Recorded at or before (aware)."""

    def holds(self, row: StoredRow) -> bool:
        """Whether `row` is in scope (its subject, if filtered, is the caller's to check)."""
        return ((self.stream_id is None or row.stream_id == self.stream_id)
                and (self.event_type is None or row.event_type == self.event_type)
                and (self.since is None or row.recorded_at >= self.since)
                and (self.until is None or row.recorded_at <= self.until))
