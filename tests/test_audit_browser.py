"""The HTML audit report in headless Chromium, driven by playwright with real clicks: sorting,
filtering and paging, the page without JavaScript, hostile log text, and 100,000 events.

Debian's Chromium (/usr/bin/chromium), never a downloaded one. Without Chromium or playwright
these tests skip, unless SHREDSTORE_REQUIRE_BROWSER=1 (then they fail). Every test also fails
on any error in the page's console, any uncaught exception and any dialog. A screenshot goes to
SHREDSTORE_TEST_ARTIFACTS (default: test-artifacts/).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.records import AuditEvent, PersonalField
from tests.shredding.events import CustomerRegistered, Noted, PaymentSent
from tests.test_audit import (
    HOSTILE,
    fill,
    hostile_event,
    render_html,
    run,
    tamper_with_event_3,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

ARTIFACTS = Path(os.environ.get("SHREDSTORE_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND"]  # no network, should the page ask
EVENT_COLUMNS = (("#", True), ("recorded at", False), ("stream", False), ("v", True),
                 ("type", False), ("fields", False), ("personal fields", False))
LEDGER_COLUMNS = (("subject", False), ("erased at", False), ("request", False),
                  ("reason", False), ("position", True))
"""Each sortable table's columns: (header, numeric)."""


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("SHREDSTORE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and SHREDSTORE_REQUIRE_BROWSER=1")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module (it takes seconds to start)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def problems() -> list[str]:
    """What went wrong in the page: console errors, uncaught exceptions, dialogs."""
    return []


@pytest.fixture
def page(browser: Browser, problems: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(30_000)

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def opened_dialog(dialog: Dialog) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    opened.on("console", logged)
    opened.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    opened.on("dialog", opened_dialog)
    yield opened
    context.close()


@pytest.fixture
def report(sqlite_url: str, master_file: Path, tmp_path: Path) -> str:
    """The address of the HTML report of a log of 129 events (two pages): customers c-1 to
    c-4, c-2 to c-4 erased by requests REQ-10, REQ-9 and REQ-100; 120 notes; payments."""
    with EventStore(sqlite_url, master_key=MasterKey.from_file(master_file)) as store:
        for n in range(1, 5):
            store.append(f"customer-c-{n}", [CustomerRegistered(
                customer_id=f"c-{n}", name=f"Name {n}", email=f"{n}@example.org",
                credit_limit=n * 7 % 5)])
        store.append("notes", [Noted(text=f"note {n}") for n in range(120)])
        store.append("payments", [
            PaymentSent(payer_id="c-1", payee_id="c-2", payer_iban="X1", payee_name="Y2",
                        amount_cents=500),
            PaymentSent(payer_id="c-3", payee_id="c-1", payer_iban="X3", payee_name="Y1",
                        amount_cents=70)])
        for subject, request, reason in (("c-2", "REQ-10", "b: asked by mail"),
                                         ("c-3", "REQ-9", "c: account closed"),
                                         ("c-4", "REQ-100", "a: court order")):
            store.erase_subject(subject, request_id=request, reason=reason)
    out = tmp_path / "report.html"
    assert run("report", "--out", str(out), url=sqlite_url).returncode == 0
    return out.as_uri()


def shown_column(page: Page, table: str, column: int) -> list[str]:
    """The texts of a column in the rows on screen (the lines of a cell joined by "; ")."""
    texts: list[str] = page.eval_on_selector_all(
        f"#{table} tbody tr",
        "(rows, n) => rows.map(row => row.cells[n].innerText.replace(/\\n/g, '; '))", column)
    return texts


def whole_column(page: Page, table: str, column: int) -> list[str]:
    """The texts of a column in every row, in order: the events table page after page, from
    the first page, back to which it goes."""
    if table == "ledger-table":
        return shown_column(page, table, column)
    texts = shown_column(page, table, column)
    while not page.is_disabled("#next"):
        page.click("#next")
        texts += shown_column(page, table, column)
    page.click("#first")
    return texts


def in_order(page: Page, texts: list[str], *, numeric: bool, descending: bool) -> list[str]:
    """`texts` sorted: numbers by value, words as the browser's locale orders them (with
    numbers in words by value: REQ-9 before REQ-10)."""
    if numeric:
        return sorted(texts, key=int, reverse=descending)
    ordered: list[str] = page.evaluate(
        "texts => texts.slice().sort((a, b) => a.localeCompare(b, undefined, {numeric: true}))",
        texts)
    return ordered[::-1] if descending else ordered


@pytest.mark.parametrize(("table", "columns"), [("ledger-table", LEDGER_COLUMNS),
                                                ("events-table", EVENT_COLUMNS)])
def test_every_column_sorts_its_own_table_both_ways(page: Page, problems: list[str],
                                                    report: str, table: str,
                                                    columns: tuple[tuple[str, bool], ...]
                                                    ) -> None:
    """A click on a header sorts the whole table by that column (numbers by value, text by
    locale), the next click the other way; the header says which (aria-sort), and only it."""
    page.goto(report)
    headers = page.locator(f"#{table} thead th")
    for column, (name, numeric) in enumerate(columns):
        header = headers.nth(column)
        assert header.inner_text().startswith(name)
        before = whole_column(page, table, column)
        ascending_first = header.get_attribute("aria-sort") != "ascending"
        seen = []
        for descending in (not ascending_first, ascending_first):
            header.locator("button").click()
            assert header.get_attribute("aria-sort") == (
                "descending" if descending else "ascending"), name
            assert [headers.nth(n).get_attribute("aria-sort") is None
                    for n in range(len(columns)) if n != column] == [True] * (len(columns) - 1)
            seen.append(whole_column(page, table, column))
            assert seen[-1] == in_order(page, before, numeric=numeric,
                                        descending=descending), name
        assert seen[0] != seen[1], f"sorting by {name} changed nothing"
    if table == "ledger-table":
        headers.nth(2).locator("button").click()
        assert shown_column(page, table, 2) == ["REQ-9", "REQ-10", "REQ-100"]
    assert problems == []


def test_the_filter_and_the_pages_go_over_every_event(page: Page, problems: list[str],
                                                      report: str) -> None:
    """A hundred rows a page; the buttons page forward and back; the filter (any text, in
    any case) and the sort apply to every event, not to the page on screen."""
    page.goto(report)
    status = page.locator("#page-status")
    assert status.inner_text() == "Events 1\u2013100 of 129, page 1 of 2."
    assert shown_column(page, "events-table", 0) == [str(n) for n in range(1, 101)]
    assert page.is_disabled("#first")
    assert page.is_disabled("#previous")
    page.click("#next")
    assert status.inner_text() == "Events 101\u2013129 of 129, page 2 of 2."
    assert shown_column(page, "events-table", 0) == [str(n) for n in range(101, 130)]
    assert page.is_disabled("#next")
    assert page.is_disabled("#last")
    page.click("#previous")
    assert shown_column(page, "events-table", 0)[0] == "1"
    page.click("#last")
    assert status.inner_text().endswith("page 2 of 2.")
    page.click("#first")
    assert status.inner_text().endswith("page 1 of 2.")

    page.fill("#filter", "customer-c-1")
    assert status.inner_text() == "Events 1\u20131 of 1 (filtered from 129), page 1 of 1."
    assert shown_column(page, "events-table", 2) == ["customer-c-1"]
    page.fill("#filter", "NOTE 1")  # note 1, note 10 to 19, note 100 to 119
    assert set(shown_column(page, "events-table", 2)) == {"notes"}
    assert len(shown_column(page, "events-table", 2)) == 31
    page.fill("#filter", "notes")
    page.locator("#events-table thead th").nth(3).locator("button").click()
    assert shown_column(page, "events-table", 3)[0] == "1"
    page.locator("#events-table thead th").nth(3).locator("button").click()
    assert shown_column(page, "events-table", 3)[:2] == ["120", "119"]
    page.click("#next")
    assert status.inner_text() == ("Events 101\u2013120 of 120 (filtered from 129), "
                                   "page 2 of 2.")
    assert shown_column(page, "events-table", 3)[-1] == "1"
    page.fill("#filter", "no such text")
    assert status.inner_text() == "No event matches the filter."
    assert page.locator("#events-table tbody tr").count() == 0
    page.fill("#filter", "")
    assert status.inner_text() == "Events 1\u2013100 of 129, page 1 of 2."
    assert problems == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "audit-report.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_javascript_all_but_the_event_table_shows(browser: Browser,
                                                          report: str) -> None:
    """The summary, legend, charts, ledger and subjects are HTML; the event table says that
    it needs JavaScript, and its empty controls stay hidden."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(report)
    for selector in ("#integrity", "#summary-table", "#legend dl", "#ledger-table",
                     "#contents"):
        assert page.locator(selector).is_visible(), selector
    assert page.locator("#ledger-table tbody tr").count() == 3
    assert page.locator("#charts svg[role=img]:visible").count() == 3
    assert page.locator("#subjects section.subject:visible").count() == 4
    notice = page.locator("noscript p")  # text locators pass over <noscript>
    assert notice.is_visible()
    assert notice.inner_text().startswith("The event table needs JavaScript")
    assert not page.locator("#events-view").is_visible()
    context.close()


def test_log_text_cannot_run_in_the_page(page: Page, problems: list[str],
                                         tmp_path: Path) -> None:
    """Stream ids, types, field names and values, subjects, request ids, reasons and
    findings that hold markup show as text: no element is made of them, nothing runs."""
    out = tmp_path / "report.html"
    ledger = [{"subject": text, "erased_at": "2026-12-01T00:00:00+00:00", "request_id": text,
               "reason": text, "ledger_position": n} for n, text in enumerate(HOSTILE)]
    render_html(out, [hostile_event(n, text) for n, text in enumerate(HOSTILE, start=1)],
                reveal=True, ledger=ledger, summary={"integrity": {
                    "ok": False, "events_checked": 4, "problems": 4, "findings": list(HOSTILE)}})
    page.goto(out.as_uri())
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.images.length") == 0
    assert page.locator("[onerror]").count() == 0
    assert page.locator("#integrity li").all_text_contents() == list(HOSTILE)
    assert page.locator("#subjects h3").all_text_contents() == list(HOSTILE)
    assert page.eval_on_selector_all(
        "#events-table tbody tr", "rows => rows.map(row => row.cells[2].textContent)",
    ) == list(HOSTILE)
    assert page.locator("#ledger-table tbody td").nth(3).text_content() == HOSTILE[0]
    assert problems == []


def test_a_tampered_event_is_marked_in_its_row(page: Page, problems: list[str],
                                               sqlite_url: str, master_file: Path,
                                               tmp_path: Path) -> None:
    url = fill(sqlite_url, master_file)
    tamper_with_event_3(url)
    out = tmp_path / "report.html"
    assert run("report", "--out", str(out), url=url).returncode == 1
    page.goto(out.as_uri())
    assert page.locator("#integrity.alarm").is_visible()
    tampered = page.locator("#events-table tbody tr.tampered")
    assert tampered.count() == 1
    assert tampered.locator("td").first.inner_text() == "3"
    marker = tampered.locator("span.tampered")
    assert marker.is_visible()
    assert marker.inner_text() == "\u26a0 TAMPERED: unreadable"
    assert problems == []


def synthetic_event(n: int) -> AuditEvent:
    """Event `n` of a large log: its own stream, one of 1,000 subjects, two personal fields."""
    subject = f"c-{n % 1000}"
    return AuditEvent(
        n, f"customer-{n}", n % 50 + 1, "shop.CustomerRegistered",
        datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n * 60),
        {"customer_id": subject, "plan": "team", "credit_limit": n % 5000},
        (PersonalField("name", subject, "held"), PersonalField("email", subject, "held")))


def test_a_report_of_100000_events_holds_one_page_of_rows(page: Page, problems: list[str],
                                                          tmp_path: Path) -> None:
    """The page's size is a few hundred bytes an event and its document holds one page of
    rows, whatever the number of events; sort, filter and paging reach every event. (How fast
    it opens: python -m benchmarks.audit_page.)"""
    events = 100_000
    out = tmp_path / "report.html"
    render_html(out, map(synthetic_event, range(1, events + 1)), summary={"events": events})
    assert out.stat().st_size < events * 300
    page.goto(out.as_uri())
    status = page.locator("#page-status")
    assert status.inner_text() == "Events 1\u2013100 of 100,000, page 1 of 1,000."
    assert page.locator("#events-table tbody tr").count() == 100
    assert page.evaluate("document.getElementsByTagName('*').length") < 10_000
    page.locator("#events-table thead th").first.locator("button").click()
    assert shown_column(page, "events-table", 0)[:2] == ["100000", "99999"]
    page.fill("#filter", "customer-77777")
    assert shown_column(page, "events-table", 2) == ["customer-77777"]
    page.fill("#filter", "")
    page.click("#last")
    assert status.inner_text() == "Events 99,901\u2013100,000 of 100,000, page 1,000 of 1,000."
    assert shown_column(page, "events-table", 0)[-1] == "1"
    assert problems == []
