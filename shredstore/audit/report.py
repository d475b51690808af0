"""`shredstore report`: the log for auditors, as HTML, JSON, CSV or Markdown.

One pass over the events in scope, in constant memory: each event is rendered as it is read
into a spooled temporary file (memory up to a few MiB, then disk), and the summary, which is
only known at the end, is written before it (it counts sagas by the state their last step in
scope left them in: a few bytes per saga). The integrity verdict is `EventStore.verify`'s.
JSON, CSV and Markdown are rendered here; the HTML page in `html_report`. Every format shows
text from the log as text: nothing in it can act as markup, a link or a formula.
"""

from __future__ import annotations

import collections
import csv
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from shredstore.audit.html_report import HtmlRenderer
from shredstore.audit.rendering import (
    MASK,
    SUMMARY_LABELS,
    Renderer,
    plain_text,
    revealed,
    shown,
    summary_text,
)
from shredstore.erasure import LEDGER_STREAM, SubjectErased
from shredstore.errors import ConfigurationError
from shredstore.records import (
    AuditEvent,
    PersonalField,
    Scope,
    Tally,
    audit_events,
    record_access,
)

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["FORMATS", "MASK", "ReportResult", "write_report"]

FORMATS = ("html", "json", "csv", "md")
_FINDINGS_SHOWN = 1000
_SPOOL = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What a report found: `ok` is the integrity verdict (and no tampered record read)."""

    ok: bool
    summary: dict[str, Any]


def write_report(store: EventStore, out: TextIO, *, scope: Scope, fmt: str = "html",
                 reveal: bool = False, actor: str | None = None, purpose: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ReportResult:
    """Write the report of `scope` to `out`. With `reveal`, held values are shown in the
    clear, and the report is first recorded in the ``$access`` stream (who, when, scope)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown report format {fmt!r}: one of {', '.join(FORMATS)}")
    if reveal and not store.has_master_key:
        raise ConfigurationError("--reveal needs the master key")
    events, streams, subjects = store.count(scope)
    scope_text = _scope_dict(scope)
    access = record_access(store, "report", scope_text, actor=actor, purpose=purpose) \
        if reveal else None
    integrity = store.verify()
    render = _RENDERERS[fmt](reveal, scope)
    tally = Tally()
    sagas: dict[str, str] = {}  # each saga's state, as its last step in scope left it
    # newline="": read back as written (a CR in a CSV field stays in its quoted field)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL, mode="w+", encoding="utf-8",
                                       newline="") as body:
        for done, event in enumerate(audit_events(store, scope, reveal=reveal, tally=tally),
                                     start=1):
            body.write(render.event(event))
            if event.stream_id.startswith("saga-") and event.event_type.startswith("saga:"):
                sagas[event.stream_id] = str(event.plain.get("status", "running"))
            if progress is not None and (done % 1000 == 0 or done == events):
                progress(done, events)
        summary = {
            "generated_at": datetime.now(UTC).isoformat(),
            "scope": scope_text,
            "log_head": str(store.head()),
            "events": tally.events,
            "streams": streams,
            "subjects": subjects,
            "erased_subjects": len(tally.erased_subjects),
            "personal_fields_held": tally.held_fields,
            "personal_fields_redacted": tally.redacted_fields,
            **({"personal_fields_erased_later": tally.erased_later_fields}
               if scope.until is not None else {}),
            "tampered_events": tally.tampered_events,
            **({"sagas": dict(sorted(collections.Counter(sagas.values()).items()))}
               if sagas else {}),
            "values": "revealed" if reveal else "masked",
            "access_record": access,
            "integrity": {
                "ok": integrity.ok,
                "events_checked": integrity.events_checked,
                "problems": len(integrity.findings),
                "findings": [str(f) for f in integrity.findings[:_FINDINGS_SHOWN]],
            },
        }
        out.write(render.head(summary, _ledger(store, scope)))
        body.seek(0)
        shutil.copyfileobj(body, out)
    out.write(render.tail())
    return ReportResult(integrity.ok and not tally.tampered_events, summary)


def _scope_dict(scope: Scope) -> dict[str, str]:
    named = {"subject": scope.subject_id, "stream": scope.stream_id, "type": scope.event_type,
             "since": scope.since.isoformat() if scope.since else None,
             "until": scope.until.isoformat() if scope.until else None}
    return {name: value for name, value in named.items() if value is not None} or {
        "log": "whole"}


def _ledger(store: EventStore, scope: Scope) -> Iterator[dict[str, Any]]:
    """The erasure ledger's entries relevant to `scope` (all, or the subject's), as of
    `scope.until`."""
    for record in store.read_stream(LEDGER_STREAM):
        entry = record.event
        if not isinstance(entry, SubjectErased):
            continue
        if scope.subject_id is not None and entry.subject_id != scope.subject_id:
            continue
        if scope.until is not None and entry.erased_at > scope.until:
            continue
        yield {"subject": entry.subject_id, "erased_at": entry.erased_at.isoformat(),
               "request_id": entry.request_id, "reason": entry.reason,
               "ledger_position": record.position}


class _Json(Renderer):
    """One JSON document: {"summary", "ledger", "events"}."""

    def __init__(self, reveal: bool, scope: Scope) -> None:
        super().__init__(reveal, scope)
        self.first = True

    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str:
        return (f'{{"format": "shredstore.audit-report/1", "summary": {_dumps(summary)}, '
                f'"ledger": [{", ".join(_dumps(entry) for entry in ledger)}], "events": [\n')

    def event(self, event: AuditEvent) -> str:
        data = {"position": event.position, "stream": event.stream_id,
                "version": event.version, "type": event.event_type,
                "recorded_at": event.recorded_at.isoformat(), "fields": event.plain,
                "personal": [_personal_json(item, self.reveal) for item in event.personal]}
        if event.tampered:
            data["tampered"] = True
        text = ("" if self.first else ",\n") + _dumps(data)
        self.first = False
        return text

    def tail(self) -> str:
        return "\n]}\n"


def _personal_json(item: PersonalField, reveal: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"field": item.path, "subject": item.subject, "state": item.state}
    if item.erased_at is not None:
        data["erased_at"] = item.erased_at.isoformat()
    if revealed(item, reveal):
        data["value"] = item.value
    return data


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


class _Csv(Renderer):
    """One table (RFC 4180: lines end in CRLF, so a field holding a CR or an LF is quoted);
    `record` says what a row is: summary, erasure, field (one per event field, plain or
    personal), or event (an event without fields).

    A text cell that a spreadsheet would take for a formula (it begins with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return: OWASP's list) begins with ``'`` instead, in every
    column: stream ids, values, request ids and reasons come from the log, and the log from
    anyone who could append to it. Numbers stay numbers."""

    columns = ("record", "position", "recorded_at", "stream", "version", "type", "field",
               "subject", "state", "value", "erased_at", "request_id", "reason")

    def _rows(self, rows: list[dict[str, Any]]) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, lineterminator="\r\n")
        writer.writerows({name: _inert(value) for name, value in row.items()} for row in rows)
        return buffer.getvalue()

    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str:
        rows = [{"record": "summary", "field": name,
                 "value": _dumps(value) if isinstance(value, dict | list) else value}
                for name, value in summary.items()]
        rows += [{"record": "erasure", "position": entry["ledger_position"],
                  "subject": entry["subject"], "state": "erased",
                  "erased_at": entry["erased_at"], "request_id": entry["request_id"],
                  "reason": entry["reason"]}
                 for entry in ledger]
        return ",".join(self.columns) + "\r\n" + self._rows(rows)

    def event(self, event: AuditEvent) -> str:
        where = {"position": event.position, "recorded_at": event.recorded_at.isoformat(),
                 "stream": event.stream_id, "version": event.version,
                 "type": event.event_type}
        rows = [{"record": "field", **where, "field": name, "state": "plain",
                 "value": _plain_cell(value)} for name, value in event.plain.items()]
        for item in event.personal:
            rows.append({"record": "field", **where, "field": item.path,
                         "subject": item.subject, "state": item.state,
                         "value": _dumps(item.value) if revealed(item, self.reveal) else "",
                         "erased_at": item.erased_at.isoformat() if item.erased_at else ""})
        if event.tampered:
            rows.append({"record": "field", **where, "state": "tampered"})
        return self._rows(rows or [{"record": "event", **where}])


def _plain_cell(value: Any) -> Any:
    """A plain field's value in a cell: text and numbers as they are, the rest as JSON."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return _dumps(value)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(value: Any) -> Any:
    """`value`, with a ``'`` before it if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class _Markdown(Renderer):
    """Headings and tables; every text from the log is escaped (`_md`)."""

    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str:
        lines = ["# shredstore audit report", ""]
        if self.reveal:
            lines += ["> **This report contains personal data in the clear** (revealed, "
                      f"recorded in $access at position {summary['access_record']}): keep it "
                      "as you keep the data itself.", ""]
        integrity = summary["integrity"]
        if not integrity["ok"] or summary["tampered_events"]:
            lines += [f"> **INTEGRITY FAILURE: {integrity['problems']} problem(s) found by "
                      "verify: the log was altered, or the vault disagrees with its erasure ledger "
                      "(each finding says which and what to do).**", ">"]
            lines += [f"> - {_md(finding)}" for finding in integrity["findings"]]
            lines.append("")
        lines += ["## Summary", "", "| | |", "|---|---|"]
        lines += [f"| {SUMMARY_LABELS[name]} | {_md(summary_text(value))} |"
                  for name, value in summary.items() if name != "integrity"]
        lines += [f"| Integrity | {'intact' if integrity['ok'] else 'FAILED'} "
                  f"({integrity['events_checked']} events checked) |", ""]
        lines += ["## Erasure ledger", "", "| subject | erased at | request | reason | position |",
                  "|---|---|---|---|---:|"]
        lines += [f"| {_md(e['subject'])} | {_md(e['erased_at'])} | {_md(e['request_id'] or '')} "
                  f"| {_md(e['reason'] or '')} | {e['ledger_position']} |" for e in ledger]
        lines += ["", "## Events", "", "| # | recorded at | stream | v | type | fields | "
                  "personal fields |", "|---:|---|---|---:|---|---|---|"]
        return "\n".join(lines) + "\n"

    def event(self, event: AuditEvent) -> str:
        personal = "; ".join(f"{item.path} ({item.subject}): {shown(item, self.reveal)}"
                             for item in event.personal)
        if event.tampered:
            personal = "TAMPERED: unreadable"
        return (f"| {event.position} | {event.recorded_at.isoformat()} | {_md(event.stream_id)} "
                f"| {event.version} | {_md(event.event_type)} | {_md(plain_text(event))} | "
                f"{_md(personal)} |\n")


_MD_ESCAPES = str.maketrans({
    "\\": "\\\\", "|": "\\|", "\n": " ", "\r": " ",  # the table's own syntax
    "&": "&amp;", "<": "&lt;", ">": "&gt;",  # a viewer renders raw HTML
    "`": "\\`", "*": "\\*", "_": "\\_", "~": "\\~", "[": "\\[", "]": "\\]",  # formatting, links
})


def _md(text: str) -> str:
    """`text` as the literal content of a table cell: no HTML, formatting or link in it acts."""
    return str(text).translate(_MD_ESCAPES)


_RENDERERS: dict[str, Callable[[bool, Scope], Renderer]] = {
    "html": HtmlRenderer, "json": _Json, "csv": _Csv, "md": _Markdown}
