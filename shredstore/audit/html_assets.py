"""The HTML report's style sheet and script, and the Content-Security-Policy that admits them.

The policy names the two by their SHA-256 hashes, so the page runs this script and no other:
even a script that reached the page from the log would not run. It also forbids every fetch
(``default-src 'none'``): the page works offline and tells no one it was opened.

The script shows the events of the JSON block ``#events-data``, rows of
``[position, recorded_at, stream, version, type, fields, personal, tampered]`` where
`personal` is a list of ``[css class, "path (subject)", shown]`` (shown: null when masked,
the table's ``data-masked`` text): a page of rows at a time, sorted by any column
and filtered over all of them. It writes every text from the log with ``textContent``, never
as HTML.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CONTENT_SECURITY_POLICY", "PAGE_SIZE", "SCRIPT", "STYLE"]

PAGE_SIZE = 100
"""Event rows in the page at a time (the events table's ``data-page-size``)."""

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 2em 2em;color:#222}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:0 0 1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
thead th{background:#eee;padding:0;white-space:nowrap}
thead th button{font:inherit;font-weight:bold;background:none;border:0;width:100%;
 padding:.3em 1.4em .3em .6em;text-align:left;cursor:pointer}
th[aria-sort=ascending] button::after{content:" \\25b2"}
th[aria-sort=descending] button::after{content:" \\25bc"}
code{font-size:12px;word-break:break-word}
.revealed{background:#fff3cd;border:3px solid #b58100;padding:.6em 1em;margin:1em 0 0}
.alarm{background:#fdd;border:3px solid #c00;padding:.5em 1em;color:#900}
.ok{background:#dfd;padding:.5em 1em}
.erased{color:#a00;font-weight:bold}
.held{color:#555}
.later{color:#8a5a00}
.tampered{color:#fff;background:#c00;padding:0 .3em;font-weight:bold}
tr.tampered td{background:#fdd;border-color:#c00}
#legend dt{float:left;clear:left;width:11em}
#legend dd{margin:0 0 .4em 11em}
.charts{display:flex;flex-wrap:wrap;gap:1em 2em}
.chart{margin:0}
.chart figcaption{font-weight:bold}
.chart svg{max-width:100%;height:auto}
.chart text{font-size:11px;fill:#333}
.chart line.grid{stroke:#ddd}
.chart-legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.2em 1.2em}
.subjects{display:grid;grid-template-columns:repeat(auto-fill,minmax(20em,1fr));gap:.8em}
.subject{border:1px solid #ccc;border-radius:4px;padding:.2em .8em}
.subject.erased-subject{border-left:5px solid #a00}
.subject h3{margin:.3em 0;font-size:1em;word-break:break-all}
.subject dl{display:grid;grid-template-columns:auto 1fr;gap:0 .8em;margin:.3em 0}
.subject dt{white-space:nowrap}
.subject dd{margin:0;overflow-wrap:anywhere}
#events-table td:nth-child(-n+2),#events-table td:nth-child(4){white-space:nowrap}
.pager button{margin-right:.3em}
.note{color:#555}
"""

SCRIPT = """
(function () {
  'use strict';
  var collator = new Intl.Collator(undefined, {numeric: true});
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };
  var byId = function (id) { return document.getElementById(id); };

  function sortable(table, sortBy) {
    var headers = table.tHead.rows[0].cells;
    each(headers, function (th, column) {
      th.querySelector('button').addEventListener('click', function () {
        var ascending = th.getAttribute('aria-sort') !== 'ascending';
        each(headers, function (other) { other.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        sortBy(column, th.getAttribute('data-type') === 'number', ascending ? 1 : -1);
      });
    });
  }

  function order(keys, numeric, direction) {
    var indices = keys.map(function (_, i) { return i; });
    return indices.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      return direction * (numeric ? x - y : collator.compare(x, y));
    });
  }

  var ledger = byId('ledger-table');
  sortable(ledger, function (column, numeric, direction) {
    var body = ledger.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var keys = rows.map(function (row) {
      var text = row.cells[column].textContent;
      return numeric ? Number(text) : text;
    });
    order(keys, numeric, direction).forEach(function (i) { body.appendChild(rows[i]); });
  });

  var data = JSON.parse(byId('events-data').textContent);
  var table = byId('events-table'), filter = byId('filter'), status = byId('page-status');
  var PAGE = Number(table.getAttribute('data-page-size'));
  var MASKED = table.getAttribute('data-masked');
  var buttons = {first: byId('first'), previous: byId('previous'), next: byId('next'),
                 last: byId('last')};
  var sorted = data.map(function (_, i) { return i; }), visible = sorted, texts = null, page = 0;

  function personal(row) {
    if (row[7]) return 'TAMPERED: unreadable';
    return row[6].map(shown).join('; ');
  }
  function shown(item) { return item[1] + ': ' + (item[2] === null ? MASKED : item[2]); }
  function key(row, column) { return column === 6 ? personal(row) : row[column]; }
  function text(row) { return row.slice(0, 6).concat(personal(row)).join(' ').toLowerCase(); }

  function select() {
    var needle = filter.value.toLowerCase();
    if (!needle) { visible = sorted; return; }
    if (texts === null) texts = data.map(text);
    visible = sorted.filter(function (i) { return texts[i].indexOf(needle) >= 0; });
  }

  function cell(tr, value) {
    var td = document.createElement('td');
    if (value !== undefined) td.textContent = value;
    return tr.appendChild(td);
  }
  function span(parent, className, value) {
    var element = document.createElement('span');
    element.className = className;
    element.textContent = value;
    parent.appendChild(element);
  }
  function rowElement(row) {
    var tr = document.createElement('tr');
    for (var column = 0; column < 5; column++) cell(tr, row[column]);
    var code = document.createElement('code');
    code.textContent = row[5];
    cell(tr).appendChild(code);
    var fields = cell(tr);
    if (row[7]) {
      tr.className = 'tampered';
      span(fields, 'tampered', '\\u26a0 TAMPERED: unreadable');
    }
    row[6].forEach(function (item, n) {
      if (n) fields.appendChild(document.createElement('br'));
      span(fields, item[0], shown(item));
    });
    return tr;
  }

  function render() {
    var pages = Math.max(1, Math.ceil(visible.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    var start = page * PAGE, end = Math.min(start + PAGE, visible.length);
    var rows = document.createDocumentFragment();
    for (var n = start; n < end; n++) rows.appendChild(rowElement(data[visible[n]]));
    table.tBodies[0].replaceChildren(rows);
    var count = function (n) { return n.toLocaleString('en'); };
    status.textContent = visible.length === 0 ? 'No event matches the filter.' :
      'Events ' + count(start + 1) + '\\u2013' + count(end) + ' of ' + count(visible.length) +
      (visible.length < data.length ? ' (filtered from ' + count(data.length) + ')' : '') +
      ', page ' + count(page + 1) + ' of ' + count(pages) + '.';
    buttons.first.disabled = buttons.previous.disabled = page === 0;
    buttons.next.disabled = buttons.last.disabled = page === pages - 1;
  }

  sortable(table, function (column, numeric, direction) {
    sorted = order(data.map(function (row) { return key(row, column); }), numeric, direction);
    select();
    page = 0;
    render();
  });
  filter.addEventListener('input', function () { select(); page = 0; render(); });
  var moves = {first: function () { return 0; }, previous: function () { return page - 1; },
               next: function () { return page + 1; }, last: function () { return Infinity; }};
  Object.keys(moves).forEach(function (name) {
    buttons[name].addEventListener('click', function () { page = moves[name](); render(); });
  });
  byId('events-view').hidden = false;
  render();
})();
"""


def _source(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


CONTENT_SECURITY_POLICY = (f"default-src 'none'; style-src {_source(STYLE)}; "
                           f"script-src {_source(SCRIPT)}; base-uri 'none'; form-action 'none'")
"""Only this style sheet and this script; nothing fetched, nothing sent."""
