"""The HTML report: one self-contained page that opens fast whatever the size of the log.

All but the event table is HTML written here, complete without a script: a banner on a
revealing report, the contents, the integrity verdict, the summary, a legend, charts (inline
SVG, `charts`), the erasure ledger and a section per data subject. The events are a JSON block,
one row a line, written as each event is read; the page's script (`html_assets`) shows them a
page at a time. Every text from the log is escaped, in the HTML and in the block, where ``<``,
``>`` and ``&`` are written as ``\\u003c``... so that nothing in the log can end it.

Memory stays flat in the number of events: counts per day and type for the charts, and per
subject for every erased subject and the first `SUBJECTS_SHOWN` others.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shredstore.audit import charts
from shredstore.audit.html_assets import CONTENT_SECURITY_POLICY, PAGE_SIZE, SCRIPT, STYLE
from shredstore.audit.rendering import (
    MASK,
    SUMMARY_LABELS,
    Renderer,
    masked,
    plain_text,
    shown,
    summary_text,
)
from shredstore.records import AuditEvent, PersonalField, Scope

__all__ = ["SUBJECTS_SHOWN", "HtmlRenderer"]

SUBJECTS_SHOWN = 200
"""Held subjects with a section of their own (erased ones always have one)."""


@dataclass(slots=True)
class _Subject:
    """What the report met of one data subject."""

    events: int = 0
    held: int = 0
    erased: int = 0
    erased_at: datetime | None = None

    @property
    def state(self) -> str:
        if self.erased:
            return "erased"
        return "held then, erased" if self.erased_at else "held"


class HtmlRenderer(Renderer):
    """The page; see the module's docstring."""

    def __init__(self, reveal: bool, scope: Scope) -> None:
        super().__init__(reveal, scope)
        self._first = True
        self._per_day: Counter[tuple[date, str]] = Counter()
        self._subjects: dict[str, _Subject] = {}
        self._held_subjects = 0
        self._more_subjects = False

    def event(self, event: AuditEvent) -> str:
        self._per_day[event.recorded_at.date(), event.event_type] += 1
        self._count_subjects(event)
        personal = [[_css(item), f"{item.path} ({item.subject})",
                     None if masked(item, self.reveal) else shown(item, self.reveal)]
                    for item in event.personal]
        row = [event.position, event.recorded_at.isoformat(timespec="microseconds"),
               event.stream_id, event.version, event.event_type, plain_text(event), personal,
               int(event.tampered)]
        text = ("" if self._first else ",\n") + _script_json(row)
        self._first = False
        return text

    def _count_subjects(self, event: AuditEvent) -> None:
        named = set()
        for item in event.personal:
            if self.scope.subject_id is not None and item.subject != self.scope.subject_id:
                continue
            subject = self._subjects.get(item.subject)
            if subject is None:
                if item.erased_at is None and self._held_subjects == SUBJECTS_SHOWN:
                    self._more_subjects = True
                    continue
                self._held_subjects += item.erased_at is None
                subject = self._subjects[item.subject] = _Subject()
            subject.erased_at = item.erased_at or subject.erased_at
            if item.state == "erased":
                subject.erased += 1
            else:
                subject.held += 1
            named.add(item.subject)
        for name in named:
            self._subjects[name].events += 1

    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str:
        entries = list(ledger)
        return "".join([
            _PAGE_START,
            _banner(summary) if self.reveal else "",
            "<h1>shredstore audit report</h1>\n",
            _CONTENTS,
            _integrity(summary),
            _summary(summary),
            _legend(reveal=self.reveal, later="personal_fields_erased_later" in summary),
            self._charts(summary, entries),
            _ledger(entries),
            self._subject_sections(entries),
            _EVENTS_START,
        ])

    def tail(self) -> str:
        return f"\n]</script>\n<script>{SCRIPT}</script>\n</body></html>\n"

    def _charts(self, summary: dict[str, Any], entries: list[dict[str, Any]]) -> str:
        figures = []
        if self._per_day:
            figures.append(charts.over_time("Events over time, by type", self._per_day))
        erasures = Counter((datetime.fromisoformat(entry["erased_at"]).date(), "erasures")
                           for entry in entries)
        if erasures:
            figures.append(charts.over_time("Erasures over time", erasures))
        later = summary.get("personal_fields_erased_later", 0)
        parts = [("held", summary["personal_fields_held"] - later, charts.COLOURS[0]),
                 *([("held then, erased since", later, charts.COLOURS[1])] if later else []),
                 ("erased", summary["personal_fields_redacted"], charts.COLOURS[5])]
        figures.append(charts.proportions("Personal fields, held and erased", parts))
        return (f'<section id="charts"><h2>Charts</h2><div class="charts">{"".join(figures)}'
                "</div></section>\n")

    def _subject_sections(self, entries: list[dict[str, Any]]) -> str:
        requests = {entry["subject"]: entry["request_id"] for entry in entries}
        sections = [_subject_section(n, name, subject, requests.get(name))
                    for n, (name, subject) in enumerate(self._subjects.items(), start=1)]
        notes = [] if sections else ['<p class="note">No personal data in scope.</p>']
        if self._more_subjects:
            notes.append(f'<p class="note">Every erased subject has a section, and the first '
                         f"{SUBJECTS_SHOWN:,} others met in the log; the summary counts them "
                         "all. Report with --subject to see another.</p>")
        return (f'<section id="subjects"><h2>Data subjects</h2>{"".join(notes)}'
                f'<div class="subjects">{"".join(sections)}</div></section>\n')


def _css(item: PersonalField) -> str:
    if item.state == "erased":
        return "erased"
    return "later" if item.erased_at else "held"


def _script_json(data: Any) -> str:
    """`data` as JSON that can stand inside a ``<script>`` element: no ``</script>``, no
    ``<!--`` (the only places ``<``, ``>`` and ``&`` can be in JSON are its strings). Only
    ASCII, too: Chromium parses an ASCII block about twice as fast."""
    text = json.dumps(data, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _banner(summary: dict[str, Any]) -> str:
    return ('<p class="revealed" id="revealed" role="note"><strong>This report contains '
            "personal data in the clear.</strong> Held values were revealed, and the reveal "
            f"was recorded in $access at position {_h(summary['access_record'])}. Keep this "
            "file as you keep the data itself: only where that data may be, and no longer "
            "than its purpose needs.</p>\n")


def _integrity(summary: dict[str, Any]) -> str:
    integrity = summary["integrity"]
    if integrity["ok"] and not summary["tampered_events"]:
        return (f'<p class="ok" id="integrity">Integrity: intact, '
                f"{integrity['events_checked']} events checked (hash chain and immutability "
                "triggers).</p>\n")
    findings = "".join(f"<li>{_h(finding)}</li>" for finding in integrity["findings"])
    return (f'<section class="alarm" id="integrity"><h2>Integrity failure</h2>'
            f"<p>verify found {integrity['problems']} problem(s) and "
            f"{summary['tampered_events']} event(s) could not be read: the log was "
            f"altered, or the vault disagrees with its erasure ledger (each "
            f"finding says which and what to do).</p><ul>{findings}</ul></section>\n")


def _summary(summary: dict[str, Any]) -> str:
    integrity = summary["integrity"]
    rows = [(SUMMARY_LABELS[name], summary_text(value))
            for name, value in summary.items() if name != "integrity"]
    rows.append(("Integrity", f"{'intact' if integrity['ok'] else 'FAILED'} "
                              f"({integrity['events_checked']} events checked)"))
    cells = "".join(f'<tr><th scope="row">{_h(label)}</th><td>{_h(text)}</td></tr>'
                    for label, text in rows)
    return (f'<section id="summary"><h2>Summary</h2><table id="summary-table">{cells}</table>'
            "</section>\n")


def _legend(*, reveal: bool, later: bool) -> str:
    terms = [
        ("held", "held", "The subject's key exists: the value can still be read."),
        ("held", "held, revealed" if reveal else f"held {MASK}",
         "Shown in the clear: this report was made with --reveal, recorded in $access."
         if reveal else "Masked: this report was made without --reveal and opened nothing."),
        ("erased", "erased", "The subject's key was destroyed on the date shown: no one can "
         "read the value again. The event stays in the log; only its key is gone."),
        *([("later", "held then, erased", "Held at the --until date of this report; its key "
            "was destroyed since, on the date shown.")] if later else []),
        ("tampered", "TAMPERED", "The event's personal data is malformed or failed "
         "authentication: the log was altered (see Integrity). Never the same as erased."),
    ]
    items = "".join(f'<dt><span class="{css}">{_h(term)}</span></dt><dd>{_h(meaning)}</dd>'
                    for css, term, meaning in terms)
    return f'<section id="legend"><h2>Legend</h2><dl>{items}</dl></section>\n'


def _sortable_head(columns: Sequence[tuple[str, bool]], *, ordered_by: int) -> str:
    """A header row of buttons, for columns of (name, numeric); the rows come sorted by the
    column `ordered_by`, ascending."""
    cells = []
    for n, (name, numeric) in enumerate(columns):
        number = ' data-type="number"' if numeric else ""
        order = ' aria-sort="ascending"' if n == ordered_by else ""
        cells.append(f'<th scope="col"{number}{order}><button type="button">{_h(name)}'
                     "</button></th>")
    return f"<thead><tr>{''.join(cells)}</tr></thead>"


def _ledger(entries: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_h(e['subject'])}</td><td>{_h(e['erased_at'])}</td>"
        f"<td>{_h(e['request_id'] or '')}</td><td>{_h(e['reason'] or '')}</td>"
        f"<td>{e['ledger_position']}</td></tr>" for e in entries)
    head = _sortable_head([("subject", False), ("erased at", False), ("request", False),
                           ("reason", False), ("position", True)], ordered_by=4)
    note = "" if entries else '<p class="note">No erasure in scope.</p>'
    return (f'<section id="ledger"><h2>Erasure ledger</h2>{note}<table id="ledger-table">'
            f"{head}<tbody>{rows}</tbody></table></section>\n")


def _subject_section(n: int, name: str, subject: _Subject, request: str | None) -> str:
    css = "subject erased-subject" if subject.erased_at else "subject"
    facts = [("State", f'<span class="{_STATE_CSS[subject.state]}">{subject.state}</span>'),
             ("Erased at", _h(subject.erased_at.isoformat(" ", "seconds"))
              if subject.erased_at else "\u2014"),
             ("Erasure request", _h(request) if request else "\u2014"),
             ("Events with its data", f"{subject.events:,}"),
             ("Fields held", f"{subject.held:,}"),
             ("Fields erased", f"{subject.erased:,}")]
    items = "".join(f"<dt>{term}</dt><dd>{value}</dd>" for term, value in facts)
    return (f'<section class="{css}" id="subject-{n}" aria-labelledby="subject-{n}-name">'
            f'<h3 id="subject-{n}-name">{_h(name)}</h3><dl>{items}</dl></section>')


_STATE_CSS = {"held": "held", "erased": "erased", "held then, erased": "later"}
"""A subject's state as the style of a personal field in that state."""

_PAGE_START = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_h(CONTENT_SECURITY_POLICY)}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shredstore audit report</title>
<style>{STYLE}</style></head><body>
"""

_CONTENTS = ('<nav id="contents" aria-label="Contents"><h2>Contents</h2><ol>'
             + "".join(f'<li><a href="#{anchor}">{title}</a></li>' for anchor, title in (
                 ("integrity", "Integrity"), ("summary", "Summary"), ("legend", "Legend"),
                 ("charts", "Charts"), ("ledger", "Erasure ledger"),
                 ("subjects", "Data subjects"), ("events", "Events")))
             + "</ol></nav>\n")

_EVENTS_START = f"""<section id="events"><h2>Events</h2>
<noscript><p class="note">The event table needs JavaScript, which is off here; everything above
it is complete without. For the events, report with --format csv, md or json.</p></noscript>
<div id="events-view" hidden>
<p><label>Filter <input id="filter" type="search" size="40"
 placeholder="any text: position, stream, type, field, subject"></label></p>
<p class="pager"><button type="button" id="first">First</button><button type="button"
 id="previous">Previous</button><button type="button" id="next">Next</button><button
 type="button" id="last">Last</button> <span id="page-status" aria-live="polite"></span></p>
<table id="events-table" data-page-size="{PAGE_SIZE}" data-masked="held {MASK}">{_sortable_head([
    ("#", True), ("recorded at", False), ("stream", False), ("v", True), ("type", False),
    ("fields", False), ("personal fields", False)], ordered_by=0)}<tbody></tbody></table>
</div></section>
<script type="application/json" id="events-data">[
"""
