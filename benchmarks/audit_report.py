"""``shredstore report`` over a large log: run time and peak memory, at two sizes.

    python -m benchmarks.audit_report                  # 100,000 then 1,000,000 events
    python -m benchmarks.audit_report --quick          # 10,000 then 100,000
    python -m benchmarks.audit_report --backend sqlite --formats html,json,csv,md

The log: ten customers with 100 events each who are then erased (2,000 redacted fields), then
the comparison's workload (`benchmarks.workload`: 1,000 customers, appends of 100) up to the
size. At each size every format is reported twice, masked and ``--reveal``, each time by a
fresh interpreter running the real command line (`benchmarks.cli_child`), so the peak RSS
(VmHWM) is the command's own. ``shredstore status SUBJECT`` in the same kind of child gives the
baseline (interpreter, imports, engine). Constant memory: the peak does not grow with the
log; a report that held its events would grow by the tenfold difference in size.

Every report is checked after the clock stops: exit 0; the events counted in the written file
(streamed) equal the count the command printed and the log's head; the printed summary has the
ten erased subjects and their 2,000 redacted fields; no address of an erased customer appears;
a masked report holds no address at all, a revealing one holds the kept customers'.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from keyvault import MasterKey
from shredstore.audit.report import FORMATS

from . import common
from .common import add_common_arguments, progress, render_table
from .contenders import ShredstoreSession
from .workload import (
    CUSTOMERS,
    Backend,
    Layout,
    Location,
    postgres_backend,
    sqlite_backend,
)

ERASED = 10
"""Customers erased before the workload is appended (numbers CUSTOMERS .. CUSTOMERS + 9)."""
ERASED_EVENTS = ERASED * 100
PER_APPEND = 100
FULL = (100_000, 1_000_000)
QUICK = (10_000, 100_000)
_ROOT = Path(__file__).resolve().parents[1]
_SUMMARY = re.compile(r"^(\d+) event\(s\), (\d+) erased subject\(s\), (\d+) redacted field\(s\)"
                      r"; integrity: intact", re.MULTILINE)
_MD_EVENT = re.compile(r"^\| \d+ \|")
_HTML_EVENT = re.compile(r"\[\d+,")


@dataclass(frozen=True, slots=True)
class Run:
    """One command's figures: wall time (start-up included) and peak RSS."""

    backend: str
    events: int
    command: str
    seconds: float
    peak_mib: float
    output_mib: float

    def cells(self) -> list[str]:
        rate = f"{self.events / self.seconds:,.0f}" if self.events else ""
        return [self.backend, self.command, f"{self.events:,}", f"{self.seconds:.1f}", rate,
                f"{self.peak_mib:.1f}", f"{self.output_mib:,.0f}" if self.output_mib else ""]


HEADER = ("backend", "command", "events", "seconds", "events/s", "peak RSS MiB", "output MiB")


class Log:
    """A filled log on one location, its master key file and its command-line URL."""

    def __init__(self, location: Location, folder: Path) -> None:
        secret = ShredstoreSession.new_secret()
        self.session = ShredstoreSession.open(location, secret)
        self.key_file = folder / "master.key"
        MasterKey.from_base64(secret).to_file(self.key_file)
        self.url = location.sqlalchemy_url("shredstore").render_as_string(hide_password=False)
        self.workload = Layout(events=0, per_append=PER_APPEND)
        self.appended = 0
        erased = Layout(events=ERASED_EVENTS, per_append=PER_APPEND, customers=ERASED,
                        first_customer=CUSTOMERS)
        self.session.fill(erased)
        for customer in range(CUSTOMERS, CUSTOMERS + ERASED):
            self.session.erase(customer)

    def grow(self, events: int) -> None:
        """Append the workload until the log holds `events` events of customers."""
        target = (events - ERASED_EVENTS) // PER_APPEND
        layout = Layout(events=target * PER_APPEND, per_append=PER_APPEND)
        for start in range(self.appended, target, 1000):
            for prepared in self.session.prepare(layout.batches(start, min(start + 1000, target))):
                self.session.append(prepared)
            progress(f"  filled {ERASED_EVENTS + min(start + 1000, target) * PER_APPEND:,}")
        self.appended = target

    def arguments(self) -> list[str]:
        """The command line's global options that open this log."""
        return ["--url", self.url, "--master-key-file", str(self.key_file)]

    def head(self) -> int:
        return self.session.count()

    def close(self) -> None:
        self.session.close()


def run_command(args: Sequence[str], folder: Path) -> tuple[float, float, str]:
    """(seconds, peak MiB, stderr) of ``shredstore ARGS`` in a fresh interpreter."""
    result = folder / "result.json"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli_child"],
        input=json.dumps({"args": list(args), "result": str(result)}), text=True,
        capture_output=True, cwd=_ROOT, check=False)
    seconds = time.perf_counter() - started
    answer = json.loads(result.read_text(encoding="ascii")) if result.exists() else {}
    result.unlink(missing_ok=True)
    if done.returncode != 0 or answer.get("exit") != 0:
        raise RuntimeError(f"shredstore {' '.join(args)} failed ({answer.get('exit')}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds, answer["peak_rss_kib"] / 1024, done.stderr


def count_events(path: Path, fmt: str) -> int:
    """Events in a written report, counted by streaming the file."""
    with path.open(encoding="utf-8", newline="") as file:
        if fmt == "csv":
            positions = (row["position"] for row in csv.DictReader(file)
                         if row["record"] in ("field", "event"))
            return sum(1 for _ in _changes(positions))
        starts: Callable[[str], bool] = {
            "json": lambda line: line.startswith('{"position"'),
            "html": lambda line: _HTML_EVENT.match(line) is not None,  # the data block's rows
            "md": lambda line: _MD_EVENT.match(line) is not None,
        }[fmt]
        return sum(1 for line in file if starts(line))


def _changes(values: Iterator[str]) -> Iterator[str]:
    last = None
    for value in values:
        if value != last:
            last = value
            yield value


def check_report(path: Path, fmt: str, stderr: str, *, expected: int, reveal: bool) -> None:
    found = _SUMMARY.search(stderr)
    if found is None:
        raise RuntimeError(f"no intact summary line in the command's output:\n{stderr[-2000:]}")
    events, erased, redacted = map(int, found.groups())
    counted = count_events(path, fmt)
    if not events == counted == expected:
        raise RuntimeError(f"{fmt}: {counted} events in the file, {events} reported, "
                           f"{expected} in the log")
    if (erased, redacted) != (ERASED, ERASED_EVENTS * 2):
        raise RuntimeError(f"{fmt}: {erased} erased subjects, {redacted} redacted fields")
    gone = [f"customer.{c}@example.com" for c in range(CUSTOMERS, CUSTOMERS + ERASED)]
    kept = 0
    with path.open(encoding="utf-8") as file:
        for line in file:
            if "@example.com" in line:
                if not reveal or any(address in line for address in gone):
                    raise RuntimeError(f"{fmt}: a personal value it must not hold: {line[:200]}")
                kept += 1
    if reveal and not kept:
        raise RuntimeError(f"{fmt}: --reveal showed no held value")


def report_size(log: Log, backend: str, formats: Sequence[str], folder: Path) -> list[Run]:
    runs = []
    base = log.arguments()
    for fmt in formats:
        for reveal in (False, True):
            expected = log.head() + (1 if reveal else 0)  # --reveal records its access first
            out = folder / f"report.{fmt}"
            args = [*base, "report", "--format", fmt, "--out", str(out)]
            args += ["--reveal", "--purpose", "benchmark"] if reveal else []
            seconds, peak, stderr = run_command(args, folder)
            size = out.stat().st_size / 2**20
            check_report(out, fmt, stderr, expected=expected, reveal=reveal)
            out.unlink()
            command = f"report --format {fmt}" + (" --reveal" if reveal else "")
            runs.append(Run(backend, expected, command, seconds, peak, size))
            progress(f"  {command}: {expected:,} events, {seconds:.1f} s, "
                     f"peak {peak:.1f} MiB, {size:,.0f} MiB written")
    return runs


def run_backend(backend: Backend, sizes: Sequence[int], formats: Sequence[str]) -> list[Run]:
    runs = []
    with backend.fresh() as location, tempfile.TemporaryDirectory(
            prefix="shredstore-report-") as name:
        folder = Path(name)
        log = Log(location, folder)
        try:
            base = log.arguments()
            for size in sizes:
                log.grow(size)
                if backend.admin is not None:  # planner statistics, as autovacuum would
                    with backend.admin.connect() as conn:
                        conn.exec_driver_sql(f'ANALYZE "{location.schema}".shredstore_events')
                seconds, peak, _ = run_command([*base, "status", "C000001"], folder)
                runs.append(Run(backend.name, 0, "status SUBJECT (baseline)", seconds, peak, 0))
                runs.extend(report_size(log, backend.name, formats, folder))
        finally:
            log.close()
    return runs


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_report",
                                     description=__doc__.split("\n")[0])
    add_common_arguments(parser, quick_help="10,000 and 100,000 events instead of 100,000 and "
                         "1,000,000", repeat=False)
    parser.add_argument("--formats", default="html,json",
                        help=f"comma-separated, of {', '.join(FORMATS)} (default: html,json)")
    args = parser.parse_args(argv)
    args.formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    unknown = [name for name in args.formats if name not in FORMATS]
    if unknown or not args.formats:
        parser.error(f"--formats: one or more of {', '.join(FORMATS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    backends = common.select_backends(args.backend, args.postgres_url, sqlite=sqlite_backend,
                                      postgres=postgres_backend)
    runs: list[Run] = []
    try:
        for backend in backends:
            progress(f"== {backend.description}")
            runs.extend(run_backend(backend, sizes, args.formats))
    finally:
        for backend in backends:
            backend.dispose()
    print(render_table(HEADER, [run.cells() for run in runs]))
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(run) for run in runs], indent=2)
                             + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
