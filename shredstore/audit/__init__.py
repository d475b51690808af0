"""Audit: what the log holds, read for auditors (invariant 10: stored records alone).

- `write_report` writes the replay report (html, json, csv, md) of a `Scope` of the log, with
  each personal field held (masked, or revealed and recorded) or erased;
- `write_export` writes everything the log holds of one subject (GDPR Art. 15/20);
- `audit_events` yields the events of a scope as `AuditEvent`s, for your own reports;
- `record_access` records a reveal in ``$access`` (the report and the export do it for you).

The reading itself is `shredstore.records`, below the erasure workflow, which uses it too. See
docs/audit.md.
"""

from shredstore.audit.export import write_export
from shredstore.audit.report import FORMATS, ReportResult, write_report
from shredstore.records import (
    AuditEvent,
    PersonalField,
    Scope,
    Tally,
    audit_events,
    record_access,
)

__all__ = [
    "FORMATS",
    "AuditEvent",
    "PersonalField",
    "ReportResult",
    "Scope",
    "Tally",
    "audit_events",
    "record_access",
    "write_export",
    "write_report",
]
