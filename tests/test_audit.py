"""Audit reports and subject exports through the command line (in this process:
tests/cli/runner.py), on both backends."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyvault import MasterKey
from shredstore import EventRegistry, EventStore
from shredstore.audit.report import FORMATS
from shredstore.records import ACCESS_STREAM, PersonalDataRevealed, Scope, audit_events
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


def test_a_report_over_a_tampered_log_says_so_and_exits_1(log: str, tmp_path: Path) -> None:
    engine = tampering.raw_engine(log)
    tampering.drop_triggers(engine)
    tampering.execute(engine, "UPDATE shredstore_events SET personal = '[{\"x\": 1}]' "
                      "WHERE position = 3")
    engine.dispose()
    out = tmp_path / "report.html"
    result = run("report", "--out", str(out), url=log)
    assert result.returncode == 1
    assert "integrity: FAILED" in result.stderr
    page = out.read_text()
    assert '<section class="alarm" id="integrity"><h2>Integrity failure</h2>' in page
    assert "TAMPERED" in page
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


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("SHREDSTORE_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))

_PROBE = """<script>
window.addEventListener('load', function () {
  function shown(el) {
    if (!el) return false;
    var box = el.getBoundingClientRect(), style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
      && style.display !== 'none';
  }
  var erased = document.querySelector('#events .erased');
  var seen = {summary: shown(document.getElementById('summary')),
    summaryText: document.getElementById('summary').textContent,
    erased: shown(erased), erasedText: erased ? erased.textContent : null};
  var filter = document.getElementById('filter');
  filter.value = 'customer-c-1';
  filter.dispatchEvent(new Event('input'));
  seen.rowsAfterFilter = Array.prototype.filter.call(
    document.querySelectorAll('#events tbody tr'), shown).length;
  document.body.setAttribute('data-probe', JSON.stringify(seen));
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions",
                           "--host-resolver-rules=MAP * ~NOTFOUND", *args],  # no network
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_html_report_renders_in_a_real_browser(sqlite_url: str, master_file: Path,
                                                  tmp_path: Path) -> None:
    """Headless Chromium opens the report with the network off: the summary and an erased
    field are visible, the filter works, and a screenshot is kept as a test artifact."""
    if CHROMIUM is None:
        if os.environ.get("SHREDSTORE_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is not installed and SHREDSTORE_REQUIRE_BROWSER=1")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    url = fill(sqlite_url, master_file)
    page = tmp_path / "report.html"
    assert run("report", "--out", str(page), url=url).returncode == 0
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    dumped = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', dumped.stdout)
    assert found is not None, dumped.stdout[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["summary"]
    assert "erased_subjects" in seen["summaryText"]
    assert seen["erased"]
    assert seen["erasedText"].startswith("name (c-2): erased")
    assert seen["rowsAfterFilter"] == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "audit-report.png"
    shot.unlink(missing_ok=True)
    taken = chromium("--window-size=1400,1000", f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
