"""Audit: what the log holds, read for auditors (invariant 10: stored records alone).

- `write_report` writes the replay report (html, json, csv, md) of a `Scope` of the log, with
  each personal field held (masked, or revealed and recorded) or erased;
- `write_export` writes everything the log holds of one subject (GDPR Art. 15/20);
- `audit_events` yields the events of a scope as `AuditEvent`s, for your own reports;
- `record_access` records a reveal in ``$access`` (the report and the export do it for you).

See docs/audit.md. The names load on first use: the erasure workflow reads the log through
`shredstore.audit.reader`, and importing the package must not pull the report writer (a layer
above the workflow) in with it.
"""

from __future__ import annotations

import importlib
import typing

if typing.TYPE_CHECKING:
    from shredstore.audit.export import write_export
    from shredstore.audit.reader import (
        AuditEvent,
        PersonalField,
        Scope,
        Tally,
        audit_events,
        record_access,
    )
    from shredstore.audit.report import FORMATS, ReportResult, write_report

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

_HOMES = {
    "FORMATS": "report", "ReportResult": "report", "write_report": "report",
    "write_export": "export",
    "AuditEvent": "reader", "PersonalField": "reader", "Scope": "reader", "Tally": "reader",
    "audit_events": "reader", "record_access": "reader",
}


def __getattr__(name: str) -> typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
