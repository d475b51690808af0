"""How fast Chromium opens the HTML audit report of a large log.

    python -m benchmarks.audit_page                   # 100,000 events, 3 runs
    python -m benchmarks.audit_page --quick           # 10,000 events
    python -m benchmarks.audit_page --events 300000 --repeat 5

The log is the audit-report benchmark's (`benchmarks.audit_report`: ten customers erased, then
the comparison's workload of 1,000 customers) on SQLite; `write_report` writes its masked HTML
report in this process. Debian's Chromium, driven by playwright, then opens the file, in a fresh
page each run: the seconds from the navigation's start to the load event, and to the first
rows of the event table painted (two animation frames after they are in the document). The
median of the runs, with the fastest and the slowest.

Each opened page is checked after the clock stops: it shows the first hundred events of as many
as the log holds, and nothing went wrong in its console.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from shredstore.audit import Scope, write_report

from .audit_report import Log
from .common import check_repeat, progress, render_table
from .workload import sqlite_backend

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
_PAINTED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def write_page(events: int, folder: Path) -> tuple[Path, int]:
    """The HTML report of a log of `events` events, and the number of events it holds."""
    backend = sqlite_backend()
    with backend.fresh() as location:
        log = Log(location, folder)
        try:
            log.grow(events)
            page = folder / "report.html"
            with page.open("w", encoding="utf-8") as out:
                result = write_report(log.session.store, out, scope=Scope(), fmt="html")
        finally:
            log.close()
    backend.dispose()
    return page, result.summary["events"]


def open_page(browser: Browser, page_file: Path, events: int) -> tuple[float, float]:
    """(seconds to the load event, seconds to the first rows painted) of one opening."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    started = time.perf_counter()
    page.goto(page_file.as_uri(), wait_until="load", timeout=120_000)
    loaded = time.perf_counter() - started
    page.wait_for_selector("#events-table tbody tr")
    page.evaluate(_PAINTED)
    painted = time.perf_counter() - started
    status = page.inner_text("#page-status")
    context.close()
    if errors or not status.startswith(f"Events 1\u2013100 of {events:,},"):
        raise RuntimeError(f"the page did not open as it should: {status!r} {errors}")
    return loaded, painted


def figure(seconds: Sequence[float]) -> str:
    return (f"{statistics.median(seconds):.2f} ({min(seconds):.2f}\u2013"
            f"{max(seconds):.2f})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_page",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000,
                        help="events in the log (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 events")
    parser.add_argument("--repeat", type=int, default=3, help="openings (default 3)")
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    wanted = 10_000 if args.quick else args.events
    with tempfile.TemporaryDirectory(prefix="shredstore-page-") as name:
        progress(f"filling a log of {wanted:,} events and writing its report")
        page_file, events = write_page(wanted, Path(name))
        size = page_file.stat().st_size
        loads, paints = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for run in range(1, args.repeat + 1):
                loaded, painted = open_page(browser, page_file, events)
                loads.append(loaded)
                paints.append(painted)
                progress(f"  run {run}: load {loaded:.2f} s, first rows painted {painted:.2f} s")
            browser.close()
    print(render_table(
        ("events", "page MB", "bytes/event", "load s, median (min-max)",
         "first rows painted s"),
        [[f"{events:,}", f"{size / 1e6:.1f}", f"{size / events:.0f}", figure(loads),
          figure(paints)]], left=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
