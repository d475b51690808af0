"""Audit reports and subject exports through the command line (in this process:
tests/cli/runner.py), on both backends; what each format promises of its own (escaping, the
HTML page's parts) on SQLite, or from synthetic events without a store. The HTML report in a
browser: tests/test_audit_browser.py."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from keyvault import MasterKey
from shredstore import EventRegistry, EventStore
from shredstore.audit import charts, html_report
from shredstore.audit.html_report import HtmlRenderer
from shredstore.audit.report import FORMATS
from shredstore.records import (
    ACCESS_STREAM,
    AuditEvent,
    PersonalDataRevealed,
    PersonalField,
    Scope,
    audit_events,
)
from tests.cli.runner import Ran, shredstore
from tests.shredding.events import (
    Address,
    CustomerRegistered,
    Line,
    Noted,
    OrderPlaced,
    PaymentSent,
)
from tests.store import tampering

ACTIVE = ("Orla-Pangolin-2210", "orla.pangolin2210@example.org", "GB11ORLA22103344")
ERASED = ("Ivo-Axolotl-7781", "ivo.axolotl7781@example.org", "DE22IVOA77815566")
"""Personal values of the subject kept (c-1) and of the one erased (c-2)."""


def run(*args: str, url: str, master: Path | None = None) -> Ran:
    """`shredstore ARGS...` in this process (tests/cli/runner.py): an escaped exception fails
    the test with its traceback, as a real process would have shown one."""
    result = shredstore(*args, url=url, master=master)
    assert "Traceback" not in result.stderr
    for value in ERASED:
        assert value not in result.stdout + result.stderr, "an erased value is shown"
    return result


@pytest.fixture
def log(any_url: str, master_file: Path) -> str:
    return fill(any_url, master_file)


def fill(any_url: str, master_file: Path) -> str:
    """c-1 kept, c-2 erased; a payment between them holds personal data of both."""
    with EventStore(any_url, master_key=MasterKey.from_file(master_file)) as store:
        for subject, (name, email, _) in (("c-1", ACTIVE), ("c-2", ERASED)):
            store.append(f"customer-{subject}", [CustomerRegistered(
                customer_id=subject, name=name, email=email, credit_limit=7)])
        store.append("payments", [PaymentSent(payer_id="c-1", payee_id="c-2",
                                              payer_iban=ACTIVE[2], payee_name=ERASED[0],
                                              amount_cents=500)])
        store.append("payments", [PaymentSent(payer_id="c-2", payee_id="c-1",
                                              payer_iban=ERASED[2], payee_name=ACTIVE[0],
                                              amount_cents=700)])
        store.erase_subject("c-2", request_id="REQ-2", reason="Art. 17")
    return any_url


def json_report(*args: str, url: str, master: Path | None = None) -> dict[str, Any]:
    result = run("report", "--format", "json", *args, url=url, master=master)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_masks_held_values_and_shows_erasures(log: str, master_file: Path,
                                                          fmt: str) -> None:
    """Without --reveal (the master key at hand): no personal value anywhere, the erasure
    and its request are there, and nothing is recorded as an access. No key is needed."""
    assert run("report", "--format", fmt, url=log).returncode == 0
    result = run("report", "--format", fmt, url=log, master=master_file)
    assert result.returncode == 0, result.stderr
    for value in ACTIVE:
        assert value not in result.stdout
    assert "REQ-2" in result.stdout
    assert "c-2" in result.stdout
    assert "erased" in result.stdout
    with EventStore(log) as store:
        assert list(store.read_stream(ACCESS_STREAM)) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_reveal_shows_held_values_only_and_is_recorded(log: str, master_file: Path,
                                                       fmt: str) -> None:
    result = run("report", "--format", fmt, "--reveal", "--purpose", "audit 2026-11",
                 url=log, master=master_file)
    assert result.returncode == 0, result.stderr
    for value in ACTIVE:
        assert value in result.stdout  # the erased ones are checked by run()
    with EventStore(log) as store:
        (access,) = list(store.read_stream(ACCESS_STREAM))
    data = access.event.model_dump()
    assert (data["kind"], data["scope"], data["purpose"]) == (
        "report", {"log": "whole"}, "audit 2026-11")
    assert all(value not in json.dumps(data, default=str) for value in ACTIVE)


def test_access_records_read_as_themselves_in_an_applications_registry(
        log: str, master_file: Path) -> None:
    """Any store registers the system events: an application's own registry reads `$access`
    as `PersonalDataRevealed`, not as an unknown event."""
    assert run("export", "c-1", url=log, master=master_file).returncode == 0
    with EventStore(log, registry=EventRegistry()) as store:
        (access,) = list(store.read_stream(ACCESS_STREAM))
    assert isinstance(access.event, PersonalDataRevealed)
    assert (access.event.kind, access.event.scope) == ("export", {"subject": "c-1"})


def test_the_summary_counts_match_the_log(log: str) -> None:
    summary = json_report(url=log)["summary"]
    assert (summary["events"], summary["streams"], summary["subjects"]) == (5, 4, 2)
    assert summary["erased_subjects"] == 1
    # c-2: name, email (1 event) + payee_name + payer_iban; c-1: name, email, iban, payee_name
    assert (summary["personal_fields_redacted"], summary["personal_fields_held"]) == (4, 4)
    assert summary["integrity"] == {"ok": True, "events_checked": 5, "problems": 0,
                                    "findings": []}


def test_scopes(log: str) -> None:
    by_subject = json_report("--subject", "c-2", url=log)
    assert [e["position"] for e in by_subject["events"]] == [2, 3, 4, 5]
    assert [e["subject"] for e in by_subject["ledger"]] == ["c-2"]
    by_stream = json_report("--stream", "payments", url=log)
    assert [e["position"] for e in by_stream["events"]] == [3, 4]
    by_type = json_report("--type", "shredstore.SubjectErased", url=log)
    assert [e["position"] for e in by_type["events"]] == [5]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert json_report("--since", tomorrow, url=log)["summary"]["events"] == 0
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    as_of = json_report("--until", yesterday, url=log)
    assert (as_of["summary"]["events"], as_of["ledger"]) == (0, [])
    bad = run("report", "--since", "last tuesday", url=log)
    assert bad.returncode == 2
    assert "--since" in bad.stderr


def test_until_shows_the_log_as_it_was_at_that_moment(log: str, master_file: Path) -> None:
    """Before c-2's erasure its fields were held: shown so, with the later erasure's date,
    never with a value (the key is gone); the ledger and the counts are as of that moment."""
    before_erasure = json_report(url=log)["events"][3]["recorded_at"]  # the last payment
    for reveal in ((), ("--reveal",)):
        report = json_report("--until", before_erasure, *reveal, url=log, master=master_file)
        summary = report["summary"]
        assert (summary["events"], summary["erased_subjects"], report["ledger"]) == (4, 0, [])
        assert (summary["personal_fields_held"], summary["personal_fields_redacted"],
                summary["personal_fields_erased_later"]) == (8, 0, 4)
        fields = [f for event in report["events"] for f in event["personal"]]
        later = [f for f in fields if f["subject"] == "c-2"]
        assert len(later) == 4
        assert all(f["state"] == "held" and f["erased_at"] and "value" not in f for f in later)
        kept = [f for f in fields if f["subject"] == "c-1"]
        assert all(("value" in f) == bool(reveal) and "erased_at" not in f for f in kept)
    table = run("report", "--format", "md", "--until", before_erasure, url=log)
    assert table.stdout.count("held then, erased ") == 4


def test_export_opens_only_the_subjects_own_data_and_is_recorded(log: str,
                                                                 master_file: Path) -> None:
    result = run("export", "c-1", "--purpose", "Art. 15", url=log, master=master_file)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["subject"], data["state"]) == ("c-1", "active")
    assert [e["position"] for e in data["events"]] == [1, 3, 4]
    assert data["events"][0]["personal"] == {"name": ACTIVE[0], "email": ACTIVE[1]}
    assert data["events"][1]["personal"] == {"payer_iban": ACTIVE[2]}
    assert data["events"][2]["personal"] == {"payee_name": ACTIVE[0]}
    with EventStore(log) as store:
        (access,) = list(store.read_stream(ACCESS_STREAM))
    assert access.event.model_dump()["scope"] == {"subject": "c-1"}


def test_export_of_an_erased_subject_says_when_and_holds_no_values(log: str,
                                                                  master_file: Path) -> None:
    result = run("export", "c-2", url=log, master=master_file)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["state"], data["erasure_request_id"]) == ("erased", "REQ-2")
    assert data["erased_at"]
    assert all(event["personal"] == {} for event in data["events"])
    assert data["events"][0]["erased_fields"] == ["name", "email"]
    unknown = run("export", "nobody", url=log, master=master_file)
    assert unknown.returncode == 1
    assert "unknown subject" in unknown.stderr


def tamper_with_event_3(url: str) -> None:
    """What an attacker with write access to the database does: the triggers dropped, the
    personal column of the event at position 3 replaced."""
    engine = tampering.raw_engine(url)
    tampering.drop_triggers(engine)
    tampering.execute(engine, "UPDATE shredstore_events SET personal = '[{\"x\": 1}]' "
                      "WHERE position = 3")
    engine.dispose()


def test_a_report_over_a_tampered_log_says_so_and_exits_1(log: str, tmp_path: Path) -> None:
    tamper_with_event_3(log)
    out = tmp_path / "report.html"
    result = run("report", "--out", str(out), url=log)
    assert result.returncode == 1
    assert "integrity: FAILED" in result.stderr
    page = out.read_text()
    assert '<section class="alarm" id="integrity"><h2>Integrity failure</h2>' in page
    assert [row[0] for row in events_data(page) if row[7]] == [3]
    data = json.loads(run("report", "--format", "json", url=log).stdout)
    assert data["summary"]["integrity"]["ok"] is False
    assert data["summary"]["tampered_events"] == 1
    markdown = run("report", "--format", "md", url=log).stdout
    assert "INTEGRITY FAILURE" in markdown


def test_a_long_report_shows_its_progress(sqlite_url: str, tmp_path: Path) -> None:
    """Not on a terminal (a log file, a CI job): a line at each tenth of the way, on stderr;
    the report itself is unaffected. (The bar drawn on a terminal is tested for rotation.)"""
    with EventStore(sqlite_url) as store:
        for start in range(0, 12_000, 1_000):
            store.append("notes", [Noted(text=f"note {n}") for n in range(start, start + 1000)])
    out = tmp_path / "report.json"
    result = run("report", "--format", "json", "--out", str(out), url=sqlite_url)
    assert result.returncode == 0, result.stderr
    steps = re.findall(r"^reporting: (\d+)/12000$", result.stderr, re.MULTILINE)
    # counted every 1,000 events; a line when the tenth changes (7,000 is still the sixth)
    assert steps == ["1000", "2000", "3000", "4000", "5000", "6000", "8000", "9000", "10000",
                     "11000", "12000"]
    assert len(json.loads(out.read_text(encoding="utf-8"))["events"]) == 12_000


def test_reveal_needs_the_master_key(log: str) -> None:
    result = run("report", "--reveal", url=log)
    assert result.returncode == 2
    assert "master key" in result.stderr


def test_nested_and_listed_personal_fields_open_per_subject(any_url: str) -> None:
    """Personal values inside nested models and lists, of several subjects in one event, are
    revealed by path and subject, and an export keeps only its subject's."""
    with EventStore(any_url, master_key=MasterKey.generate()) as store:
        store.append("order-1", [OrderPlaced(
            customer_id="c-1", shipping=Address(street="9 Quokka Lane", city="Perth"),
            total_cents=5, lines=[Line(recipient_id="r-1", recipient_name="Zed Numbat",
                                       sku="a"),
                                  Line(recipient_id="r-2", recipient_name="Yan Wombat",
                                       sku="b")])])
        (event,) = audit_events(store, Scope(), reveal=True)
        assert not event.tampered
        assert {(f.path, f.subject, f.value) for f in event.personal} == {
            ("shipping.street", "c-1", "9 Quokka Lane"), ("note", "c-1", None),
            ("lines.0.recipient_name", "r-1", "Zed Numbat"),
            ("lines.1.recipient_name", "r-2", "Yan Wombat")}
        assert event.plain["lines"][1]["sku"] == "b"
        (mine,) = audit_events(store, Scope(subject_id="r-2"), reveal=True, only_subject="r-2")
        assert [(f.path, f.value) for f in mine.personal] == [
            ("lines.1.recipient_name", "Yan Wombat")]
        assert "Zed Numbat" not in json.dumps(mine.plain)


SUMMARY: dict[str, Any] = {
    "generated_at": "2026-12-01T00:00:00+00:00", "scope": {"log": "whole"},
    "log_head": "1:00", "events": 0, "streams": 0, "subjects": 0, "erased_subjects": 0,
    "personal_fields_held": 0, "personal_fields_redacted": 0, "tampered_events": 0,
    "values": "masked", "access_record": None,
    "integrity": {"ok": True, "events_checked": 0, "problems": 0, "findings": []}}
"""A report's summary, for pages rendered from synthetic events (`render_html`)."""

SUBJECT = re.compile(r'<section class="subject[^"]*" id="subject-\d+"[^>]*><h3[^>]*>(.*?)</h3>'
                     r"<dl>(.*?)</dl></section>")


def render_html(path: Path, events: Iterable[AuditEvent], *, reveal: bool = False,
                ledger: Iterable[dict[str, Any]] = (),
                summary: dict[str, Any] | None = None) -> None:
    """The HTML report of synthetic `events` over the whole log, without a store: rendered
    as `write_report` renders (every event, then the head written before them), with
    `summary` over `SUMMARY`."""
    renderer = HtmlRenderer(reveal, Scope())
    with path.open("w", encoding="utf-8") as out, \
            tempfile.TemporaryFile("w+", encoding="utf-8") as body:
        for event in events:
            body.write(renderer.event(event))
        out.write(renderer.head({**SUMMARY, **(summary or {})}, iter(ledger)))
        body.seek(0)
        shutil.copyfileobj(body, out)
        out.write(renderer.tail())


def events_data(page: str) -> list[list[Any]]:
    """The event rows of an HTML report's data block."""
    found = re.search(r'<script type="application/json" id="events-data">(.*?)</script>',
                      page, re.DOTALL)
    assert found is not None, "no event data block"
    rows: list[list[Any]] = json.loads(found.group(1))
    return rows


def subject_sections(page: str) -> dict[str, dict[str, str]]:
    """Each subject section of an HTML report: its facts (term: text), by subject."""
    return {html.unescape(name): {term: html.unescape(re.sub("<[^>]+>", "", value))
                                  for term, value in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>",
                                                                facts)}
            for name, facts in SUBJECT.findall(page)}


def report_output(*args: str, url: str, master: Path | None = None) -> str:
    """What `shredstore report ARGS...` writes to standard output (it must succeed)."""
    result = run("report", *args, url=url, master=master)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_html_page_is_self_contained_and_runs_only_its_own_script(sqlite_url: str,
                                                                       master_file: Path) -> None:
    """Nothing is fetched (no source, no link out, no style import), and the policy names
    the page's one style sheet and one script by their hashes: no other script can run."""
    page = report_output(url=fill(sqlite_url, master_file))
    assert not re.search(r"\bsrc=|\bhref=\"(?!#)|url\(|@import", page)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy is not None
    rules = dict(rule.strip().split(" ", 1) for rule in html.unescape(policy.group(1)).split(";"))
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert style is not None
    assert len(scripts) == 1
    assert rules == {"default-src": "'none'", "style-src": sha256_source(style.group(1)),
                     "script-src": sha256_source(scripts[0]), "base-uri": "'none'",
                     "form-action": "'none'"}


def sha256_source(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def test_the_html_report_has_contents_legend_charts_and_a_summary_in_words(
        sqlite_url: str, master_file: Path) -> None:
    """Every part is listed in the contents and is there; the summary reads in words, while
    JSON keeps its keys; the three charts are inline SVG; no banner without --reveal."""
    page = report_output(url=fill(sqlite_url, master_file))
    anchors = re.findall(r'<li><a href="#([a-z]+)">', page)
    assert anchors == ["integrity", "summary", "legend", "charts", "ledger", "subjects", "events"]
    assert all(f'id="{anchor}"' in page for anchor in anchors)
    assert '<th scope="row">Personal fields held</th><td>4</td>' in page
    assert '<th scope="row">Personal fields erased (redacted)</th><td>4</td>' in page
    assert "personal_fields_held" not in page
    legend = re.search(r'<section id="legend">(.*?)</section>', page, re.DOTALL)
    assert legend is not None
    assert re.findall(r"<dt><span[^>]*>([^<]*)</span></dt>", legend.group(1)) == [
        "held", "held \u2022\u2022\u2022\u2022", "erased", "TAMPERED"]
    captions = re.findall(r"<figcaption>(.*?)</figcaption><svg role=\"img\"", page)
    assert captions == ["Events over time, by type", "Erasures over time",
                        "Personal fields, held and erased"]
    assert 'id="revealed"' not in page
    assert "<noscript>" in page


def test_the_html_report_has_a_section_per_subject_in_scope(sqlite_url: str,
                                                          master_file: Path) -> None:
    """Its state, when it was erased and by which request, the events with its data and its
    fields held and erased; only the scope's subject with --subject; with --until, the
    subject erased since reads as held then."""
    url = fill(sqlite_url, master_file)
    whole = subject_sections(report_output(url=url))
    assert list(whole) == ["c-1", "c-2"]
    assert whole["c-1"] == {"State": "held", "Erased at": "\u2014", "Erasure request": "\u2014",
                            "Events with its data": "3", "Fields held": "4",
                            "Fields erased": "0"}
    erased = whole["c-2"]
    assert erased.pop("Erased at").startswith(datetime.now(UTC).date().isoformat())
    assert erased == {"State": "erased", "Erasure request": "REQ-2",
                      "Events with its data": "3", "Fields held": "0", "Fields erased": "4"}
    assert list(subject_sections(report_output("--subject", "c-2", url=url))) == ["c-2"]
    before_erasure = json_report(url=url)["events"][3]["recorded_at"]
    then = subject_sections(report_output("--until", before_erasure, url=url))["c-2"]
    assert (then["State"], then["Erasure request"], then["Fields held"]) == (
        "held then, erased", "\u2014", "4")


def test_a_revealing_report_says_so_at_its_top(sqlite_url: str, master_file: Path) -> None:
    """The page's first element, and the Markdown's first paragraph; only when revealing.
    (Only the top is compared: a failure must not print the revealed values.)"""
    url = fill(sqlite_url, master_file)
    banner = ('<p class="revealed" id="revealed" role="note"><strong>This report contains '
              "personal data in the clear.</strong>")
    page = report_output("--reveal", url=url, master=master_file)
    body = page[page.index("<body>") + len("<body>"):].lstrip()
    assert body[:len(banner)] == banner
    notice = "> **This report contains personal data in the clear**"
    markdown = report_output("--format", "md", "--reveal", url=url, master=master_file)
    assert markdown.split("\n")[2][:len(notice)] == notice
    assert "in the clear" not in report_output("--format", "md", url=url)


HOSTILE = ("</script><script>alert(1)</script>", "<img src=x onerror=alert(2)>",
           "<!--<script>alert(3)//", "]]></x>&amp;\u2028\"'\\")
"""Log text that would run, or break out of where it is put, if a report did not escape it."""


def hostile_event(position: int, text: str, *, tampered: bool = False) -> AuditEvent:
    """An event whose every text (stream, type, field names and values, subject) is `text`."""
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    personal = () if tampered else (
        PersonalField(text, text, "held", value=text),
        PersonalField(text, text, "erased", erased_at=moment))
    return AuditEvent(position, text, 1, text, moment, {text: text}, personal, tampered)


def test_log_text_in_the_html_report_is_escaped_and_kept_exactly(tmp_path: Path) -> None:
    """In the page no text from the log can open an element or end the data block, and the
    block gives every text back unchanged."""
    out = tmp_path / "report.html"
    ledger = [{"subject": text, "erased_at": "2026-12-01T00:00:00+00:00", "request_id": text,
               "reason": text, "ledger_position": n} for n, text in enumerate(HOSTILE)]
    render_html(out, [hostile_event(n, text) for n, text in enumerate(HOSTILE, start=1)],
                reveal=True, ledger=ledger, summary={
                    "scope": {"stream": HOSTILE[0]},
                    "integrity": {**SUMMARY["integrity"], "ok": False, "findings": list(HOSTILE)}})
    page = out.read_text(encoding="utf-8")
    assert page.count("<script") == 2
    assert "<img" not in page
    assert page.count("<!--") == 0
    rows = events_data(page)
    assert [(row[2], row[4], row[5], row[6]) for row in rows] == [
        (text, text, json.dumps({text: text}, ensure_ascii=False),
         [["held", f"{text} ({text})", json.dumps(text, ensure_ascii=False)],
          ["erased", f"{text} ({text})", "erased 2026-12-01"]]) for text in HOSTILE]
    assert list(subject_sections(page)) == list(HOSTILE)


def test_csv_cells_a_spreadsheet_would_run_begin_with_a_quote(sqlite_url: str,
                                                              master_file: Path) -> None:
    """Text beginning with =, +, -, @, a tab or a carriage return, in any column (stream,
    value, subject, request, reason), is written after a ' ; numbers stay numbers."""
    with EventStore(sqlite_url, master_key=MasterKey.from_file(master_file)) as store:
        store.append("=HYPERLINK(\"http://x\")", [Noted(text=text) for text in (
            "+1+1", "-1+1", "@SUM(A1)", "\tTAB", "\rCR", "a=b")])
        store.append("payments", [PaymentSent(payer_id="@c-9", payee_id="c-8", payer_iban="x",
                                              payee_name="y", amount_cents=-5)])
        store.erase_subject("@c-9", request_id="=REQ-1", reason="-reason")
    rows = list(csv.DictReader(io.StringIO(report_output("--format", "csv", url=sqlite_url))))
    texts = [row["value"] for row in rows if row["type"] == "test.shredding.Noted"]
    assert texts == ["'+1+1", "'-1+1", "'@SUM(A1)", "'\tTAB", "'\rCR", "a=b"]
    assert {row["stream"] for row in rows if row["type"] == "test.shredding.Noted"} == {
        "'=HYPERLINK(\"http://x\")"}
    (erasure,) = [row for row in rows if row["record"] == "erasure"]
    assert (erasure["subject"], erasure["request_id"], erasure["reason"]) == (
        "'@c-9", "'=REQ-1", "'-reason")
    payment = {row["field"]: row for row in rows if row["stream"] == "payments"}
    assert payment["amount_cents"]["value"] == "-5"
    assert payment["payer_id"]["value"] == "'@c-9"
    assert payment["payer_iban"]["subject"] == "'@c-9"
    assert all(row["position"].isdigit() for row in rows if row["record"] != "summary")


def test_markdown_cells_show_log_text_literally(sqlite_url: str) -> None:
    """Rendered as a Markdown viewer renders (raw HTML on), text from the log makes no
    element, formatting, code or link, and reads back as it was."""
    text = "a|b <img src=x onerror=alert(1)> *b* _i_ `c` [l](http://x) ~~s~~ &amp; \\ <b>"
    with EventStore(sqlite_url) as store:
        store.append(text, [Noted(text="x")])
    events = report_output("--format", "md", url=sqlite_url).split("## Events")[1]
    viewer = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    cells = re.findall(r"<td[^>]*>(.*?)</td>", viewer.render(events), re.DOTALL)
    assert "<" not in cells[2]
    assert html.unescape(cells[2]) == text


def test_every_erased_subject_has_a_section_and_the_first_held_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays flat in a log of many subjects: past `SUBJECTS_SHOWN` held subjects,
    only erased ones get a section, and the page says so."""
    monkeypatch.setattr(html_report, "SUBJECTS_SHOWN", 2)
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    events = [AuditEvent(n, "s", n, "t", moment, {}, (PersonalField("name", f"h-{n}", "held"),))
              for n in range(1, 5)]
    events.append(AuditEvent(5, "s", 5, "t", moment, {}, (
        PersonalField("name", "e-1", "erased", erased_at=moment),)))
    out = tmp_path / "report.html"
    render_html(out, events)
    page = out.read_text(encoding="utf-8")
    assert list(subject_sections(page)) == ["h-1", "h-2", "e-1"]
    assert "Every erased subject has a section, and the first 2 others" in page


def test_charts_draw_a_bar_per_period_and_stack_the_commonest_types() -> None:
    """Days up to two months, then months up to five years, then years; the six commonest
    types each have a colour, the rest are drawn together as "other"."""
    day = date(2026, 1, 30)
    assert charts.timeline([day, day + timedelta(days=2)]).labels == (
        "2026-01-30", "2026-01-31", "2026-02-01")
    months = charts.timeline([day, date(2026, 4, 2)])
    assert (months.labels, months.period(date(2026, 3, 9))) == (
        ("2026-01", "2026-02", "2026-03", "2026-04"), "2026-03")
    assert charts.timeline([day, date(2032, 1, 1)]).labels == tuple(
        str(year) for year in range(2026, 2033))
    counts = Counter({(day, f"type-{n}"): 10 - n for n in range(8)})
    figure = charts.over_time("Events", counts)
    assert re.findall(r"<li>.*?</svg> ([^<]*)</li>", figure) == [
        *(f"type-{n} ({10 - n})" for n in range(6)), "other (7)"]
    assert figure.count("<rect x=") == 7
