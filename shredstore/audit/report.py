"""`shredstore report`: the log for auditors, as HTML, JSON, CSV or Markdown.

One pass over the events in scope, in constant memory: each event is rendered as it is read
into a spooled temporary file (memory up to a few MiB, then disk), and the summary, which is
only known at the end, is written before it (it counts sagas by the state their last step in
scope left them in: a few bytes per saga). The integrity verdict is `EventStore.verify`'s.
"""

from __future__ import annotations

import collections
import csv
import html
import io
import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

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
MASK = "\u2022\u2022\u2022\u2022"
"""How a held personal value is shown when not revealed."""
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
    render = _RENDERERS[fmt](reveal)
    tally = Tally()
    sagas: dict[str, str] = {}  # each saga's state, as its last step in scope left it
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL, mode="w+", encoding="utf-8") as body:
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


def _shown(item: PersonalField, reveal: bool) -> str:
    erased = item.erased_at.date().isoformat() if item.erased_at else ""
    if item.state == "erased":
        return f"erased {erased}".strip()
    if item.erased_at is not None:  # held as of the report's --until, erased since
        return f"held then, erased {erased}"
    if not reveal:
        return f"held {MASK}"
    return json.dumps(item.value, ensure_ascii=False, default=str)


def _revealed(item: PersonalField, reveal: bool) -> bool:
    """Whether the report shows this field's value (held now, and revealing)."""
    return reveal and item.state == "held" and item.erased_at is None


def _plain(event: AuditEvent) -> str:
    return json.dumps(event.plain, ensure_ascii=False, sort_keys=True, default=str)


class _Renderer(ABC):
    """One output format: the head (summary and ledger), one piece per event, the tail."""

    def __init__(self, reveal: bool) -> None:
        self.reveal = reveal

    @abstractmethod
    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str: ...

    @abstractmethod
    def event(self, event: AuditEvent) -> str: ...

    def tail(self) -> str:
        return ""


class _Json(_Renderer):
    """One JSON document: {"summary", "ledger", "events"}."""

    def __init__(self, reveal: bool) -> None:
        super().__init__(reveal)
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
    if _revealed(item, reveal):
        data["value"] = item.value
    return data


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


class _Csv(_Renderer):
    """One table; `record` says what a row is: summary, erasure, field (one per event field,
    plain or personal), or event (an event without fields)."""

    columns = ("record", "position", "recorded_at", "stream", "version", "type", "field",
               "subject", "state", "value", "erased_at", "request_id")

    def _rows(self, rows: list[dict[str, Any]]) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, lineterminator="\n")
        writer.writerows(rows)
        return buffer.getvalue()

    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str:
        rows = [{"record": "summary", "field": name,
                 "value": _dumps(value) if isinstance(value, dict | list) else value}
                for name, value in summary.items()]
        rows += [{"record": "erasure", "position": entry["ledger_position"],
                  "subject": entry["subject"], "state": "erased",
                  "erased_at": entry["erased_at"], "request_id": entry["request_id"]}
                 for entry in ledger]
        return ",".join(self.columns) + "\n" + self._rows(rows)

    def event(self, event: AuditEvent) -> str:
        where = {"position": event.position, "recorded_at": event.recorded_at.isoformat(),
                 "stream": event.stream_id, "version": event.version,
                 "type": event.event_type}
        rows = [{"record": "field", **where, "field": name, "state": "plain",
                 "value": value if isinstance(value, str) else _dumps(value)}
                for name, value in event.plain.items()]
        for item in event.personal:
            rows.append({"record": "field", **where, "field": item.path,
                         "subject": item.subject, "state": item.state,
                         "value": _dumps(item.value) if _revealed(item, self.reveal) else "",
                         "erased_at": item.erased_at.isoformat() if item.erased_at else ""})
        if event.tampered:
            rows.append({"record": "field", **where, "state": "tampered"})
        return self._rows(rows or [{"record": "event", **where}])


class _Markdown(_Renderer):
    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str:
        lines = ["# shredstore audit report", ""]
        integrity = summary["integrity"]
        if not integrity["ok"] or summary["tampered_events"]:
            lines += [f"> **INTEGRITY FAILURE: {integrity['problems']} problem(s) found by "
                      "verify: the log was altered, or the vault disagrees with its erasure ledger "
                      "(each finding says which and what to do).**", ">"]
            lines += [f"> - {_md(finding)}" for finding in integrity["findings"]]
            lines.append("")
        lines += ["## Summary", "", "| | |", "|---|---|"]
        lines += [f"| {name} | {_md(_summary_value(name, value))} |"
                  for name, value in summary.items() if name != "integrity"]
        lines += [f"| integrity | {'intact' if integrity['ok'] else 'FAILED'} "
                  f"({integrity['events_checked']} events checked) |", ""]
        lines += ["## Erasure ledger", "", "| subject | erased at | request | reason | position |",
                  "|---|---|---|---|---:|"]
        lines += [f"| {_md(e['subject'])} | {e['erased_at']} | {_md(e['request_id'] or '')} | "
                  f"{_md(e['reason'] or '')} | {e['ledger_position']} |" for e in ledger]
        lines += ["", "## Events", "", "| # | recorded at | stream | v | type | fields | "
                  "personal fields |", "|---:|---|---|---:|---|---|---|"]
        return "\n".join(lines) + "\n"

    def event(self, event: AuditEvent) -> str:
        personal = "; ".join(f"{item.path} ({item.subject}): {_shown(item, self.reveal)}"
                             for item in event.personal)
        if event.tampered:
            personal = "TAMPERED: unreadable"
        return (f"| {event.position} | {event.recorded_at.isoformat()} | {_md(event.stream_id)} "
                f"| {event.version} | {_md(event.event_type)} | {_md(_plain(event))} | "
                f"{_md(personal)} |\n")


def _md(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _summary_value(name: str, value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


class _Html(_Renderer):
    """One self-contained page: inline style and script, no network, no external assets."""

    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str:
        integrity = summary["integrity"]
        failed = not integrity["ok"] or summary["tampered_events"]
        parts = [_HTML_HEAD]
        if failed:
            findings = "".join(f"<li>{_h(f)}</li>" for f in integrity["findings"])
            parts.append(f'<section class="alarm" id="integrity"><h2>Integrity failure</h2>'
                         f"<p>verify found {integrity['problems']} problem(s) and "
                         f"{summary['tampered_events']} event(s) could not be read: the log was "
                         f"altered, or the vault disagrees with its erasure ledger (each "
                         f"finding says which and what to do).</p><ul>{findings}</ul></section>")
        else:
            parts.append(f'<p class="ok" id="integrity">Integrity: intact, '
                         f"{integrity['events_checked']} events checked (hash chain and "
                         "immutability triggers).</p>")
        rows = "".join(f"<tr><th>{_h(name)}</th><td>{_h(_summary_value(name, value))}</td></tr>"
                       for name, value in summary.items() if name != "integrity")
        parts.append(f'<h2>Summary</h2><table id="summary">{rows}</table>')
        entries = "".join(
            f"<tr><td>{_h(e['subject'])}</td><td>{_h(e['erased_at'])}</td>"
            f"<td>{_h(e['request_id'] or '')}</td><td>{_h(e['reason'] or '')}</td>"
            f"<td>{e['ledger_position']}</td></tr>" for e in ledger)
        parts.append("<h2>Erasure ledger</h2><table id=\"ledger\" class=\"sortable\"><thead><tr>"
                     "<th>subject</th><th>erased at</th><th>request</th><th>reason</th>"
                     f"<th>position</th></tr></thead><tbody>{entries}</tbody></table>")
        parts.append('<h2>Events</h2><p><input id="filter" type="search" '
                      'placeholder="filter events (any text)" size="40"></p>'
                      '<table id="events" class="sortable"><thead><tr><th>#</th>'
                      "<th>recorded at</th><th>stream</th><th>v</th><th>type</th><th>fields</th>"
                      "<th>personal fields</th></tr></thead><tbody>\n")
        return "".join(parts)

    def event(self, event: AuditEvent) -> str:
        cells = []
        for item in event.personal:
            css = "erased" if item.state == "erased" else "held"
            cells.append(f'<span class="{css}">{_h(item.path)} ({_h(item.subject)}): '
                         f"{_h(_shown(item, self.reveal))}</span>")
        if event.tampered:
            cells = ['<span class="tampered">TAMPERED: unreadable</span>']
        return (f"<tr><td>{event.position}</td><td>{_h(event.recorded_at.isoformat())}</td>"
                f"<td>{_h(event.stream_id)}</td><td>{event.version}</td>"
                f"<td>{_h(event.event_type)}</td><td><code>{_h(_plain(event))}</code></td>"
                f"<td>{'<br>'.join(cells)}</td></tr>\n")

    def tail(self) -> str:
        return "</tbody></table>" + _HTML_SCRIPT + "</body></html>\n"


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


_HTML_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>shredstore audit report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0 0 1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
thead th{background:#eee;cursor:pointer}
code{font-size:12px}
.alarm{background:#fdd;border:3px solid #c00;padding:.5em 1em;color:#900}
.ok{background:#dfd;padding:.5em 1em}
.erased{color:#a00;font-weight:bold}
.held{color:#555}
.tampered{color:#fff;background:#c00;padding:0 .3em}
</style></head><body>
<h1>shredstore audit report</h1>
"""

_HTML_SCRIPT = """<script>
document.getElementById('filter').addEventListener('input', function (e) {
  var text = e.target.value.toLowerCase();
  document.querySelectorAll('#events tbody tr').forEach(function (row) {
    row.style.display = row.textContent.toLowerCase().indexOf(text) >= 0 ? '' : 'none';
  });
});
document.querySelectorAll('table.sortable thead th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], up = th.dataset.up !== '1';
    th.dataset.up = up ? '1' : '0';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].textContent, y = b.cells[column].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
</script>"""

_RENDERERS: dict[str, Callable[[bool], _Renderer]] = {
    "html": _Html, "json": _Json, "csv": _Csv, "md": _Markdown}
