"""`shredstore export SUBJECT`: everything the log holds about one person (GDPR Art. 15/20).

JSON: each event that names the subject, with its place, its plain fields and the subject's
own personal fields opened. Other subjects' personal data in the same events is left out. For
an erased subject: when and by which request, and no personal values (there are none left).
Streamed: memory stays one page of events whatever the subject's history.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from shredstore.errors import ConfigurationError, UnknownSubjectError
from shredstore.records import Scope, audit_events, record_access

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["write_export"]

EXPORT_FORMAT = "shredstore.subject-export/1"


def write_export(store: EventStore, subject_id: str, out: TextIO, *, actor: str | None = None,
                 purpose: str | None = None) -> int:
    """Write the subject's export to `out`; the number of events in it. Exporting the data
    of a subject that is not erased reveals it, so it is first recorded in ``$access``."""
    status = store.subject_status(subject_id)
    footprint = store.subject_footprint(subject_id)
    if status.state == "unknown" and footprint.mentions == 0:
        raise UnknownSubjectError(f"unknown subject {subject_id!r}: nothing held")
    reveal = status.state == "active"
    if reveal and not store.has_master_key:
        raise ConfigurationError("exporting a subject's data needs the master key")
    access = record_access(store, "export", {"subject": subject_id}, actor=actor,
                           purpose=purpose) if reveal else None
    head: dict[str, Any] = {
        "format": EXPORT_FORMAT, "subject": subject_id, "state": status.state,
        "generated_at": datetime.now(UTC).isoformat(), "access_record": access}
    if status.state == "erased":
        head |= {"erased_at": status.erased_at.isoformat() if status.erased_at else None,
                 "erasure_request_id": status.request_id,
                 "note": "the subject was erased: its personal data can no longer be read"}
    out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "events": [\n')
    count = 0
    for event in audit_events(store, Scope(subject_id=subject_id), reveal=reveal,
                              only_subject=subject_id):
        entry: dict[str, Any] = {
            "position": event.position, "stream": event.stream_id, "version": event.version,
            "type": event.event_type, "recorded_at": event.recorded_at.isoformat(),
            "fields": event.plain,
            "personal": {item.path: item.value for item in event.personal
                         if item.state == "held"},
        }
        erased = [item.path for item in event.personal if item.state == "erased"]
        if erased:
            entry["erased_fields"] = erased
        if event.tampered:
            entry["tampered"] = True
        out.write(("" if count == 0 else ",\n")
                  + json.dumps(entry, ensure_ascii=False, default=str))
        count += 1
    out.write("\n]}\n")
    return count
