"""What the erasure ledger's authority over the vault costs (issue 15, part 1), on SQLite.

What is measured (each case repeated, reported as the median and the range):

``erasure check``
    One `KeyVault.keyring()` refresh, as every page of a read and every single `open` makes:
    a plain vault (the erasure counter and the tombstone it numbers) and a store's vault,
    which also reads the ledger's last entry, in the same transaction (µs per check).
``key load``
    A cold read: `read_all` of 1,000 events of 1,000 subjects by a new store, so that every
    key is loaded from the vault, and the ledger is asked once per page whether it names
    any of the page's subjects (µs per event). ``ledger lookup`` is that question alone, for
    1,000 subjects (µs per subject).
``shred``
    `erasure.shred` of one subject with the vault in the store's database: the key destroyed
    and the ledger entry appended in one transaction, and the WAL checkpoint (ms each).

Run from the repository root::

    python -m benchmarks.erasure_checks             # 3 repetitions
    python -m benchmarks.erasure_checks --repeat 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

from benchmarks.common import progress, render_table
from keyvault import KeyVault, MasterKey
from shredstore import EventStore, PersonalData, SubjectId
from shredstore.erasure import shred
from shredstore.events import Event

SUBJECTS = 1000
CHECKS = 2000


class ContactNoted(Event, type_name="bench.ContactNoted"):
    """An event with one subject's personal data."""

    customer_id: SubjectId
    email: Annotated[str, PersonalData()]


def _checks(vault: KeyVault) -> float:
    start = time.perf_counter()
    for _ in range(CHECKS):
        with vault.keyring():
            pass
    return (time.perf_counter() - start) / CHECKS * 1e6


def _run(folder: Path) -> dict[str, float]:
    master = MasterKey.generate()
    url = f"sqlite:///{folder / 'events.db'}"
    results: dict[str, float] = {}
    with KeyVault(f"sqlite:///{folder / 'plain-vault.db'}", master_key=master) as plain:
        plain.erase("warm-up")
        results["erasure check, plain vault (µs)"] = _checks(plain)
    with EventStore(url, master_key=master) as store:
        store.append("contacts", [ContactNoted(customer_id=f"c-{n}", email=f"c{n}@example.org")
                                  for n in range(SUBJECTS)])
        shred(store, "warm-up")
        results["erasure check, store's vault (µs)"] = _checks(store.vault)
        start = time.perf_counter()
        store._log.in_ledger(None, [f"c-{n}" for n in range(SUBJECTS)])
        results["ledger lookup (µs/subject)"] = (time.perf_counter() - start) / SUBJECTS * 1e6
        timings = []
        for n in range(20):
            start = time.perf_counter()
            shred(store, f"c-{n}")
            timings.append(time.perf_counter() - start)
        results["shred, shared vault (ms)"] = statistics.median(timings) * 1e3
    with EventStore(url, master_key=master) as cold:
        start = time.perf_counter()
        count = sum(1 for _ in cold.read_all())
        results["cold read_all (µs/event)"] = (time.perf_counter() - start) / count * 1e6
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (default 3)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    runs: list[dict[str, float]] = []
    for n in range(args.repeat):
        progress(f"run {n + 1} of {args.repeat}")
        with tempfile.TemporaryDirectory() as folder:
            runs.append(_run(Path(folder)))
    rows = []
    for name in runs[0]:
        values = [run[name] for run in runs]
        rows.append([name, f"{statistics.median(values):.1f}",
                     f"{min(values):.1f}-{max(values):.1f}"])
    print(f"erasure checks on SQLite, Python {platform.python_version()}, "
          f"{args.repeat} run(s)")
    print(render_table(["case", "median", "range"], rows, left=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
