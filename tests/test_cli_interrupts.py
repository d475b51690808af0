"""`shredstore erase --from-file` stopped by a signal, as a real process whose vault is in a
database of its own (issue 15, part 2). The process is forked from the test run
(`tests.cli.forked`): real signals and exit statuses, without a second of imports per run.

SIGINT and SIGTERM stop a batch between two subjects, never inside one: every subject the run
reports done is erased and recorded in the ledger, the vault's tombstones and the ledger agree
exactly, and the run says how to resume. SIGKILL, which no program can hold back, may stop an
erasure between destroying the key and recording it: `verify` must report every such gap and
`reconcile` must close it.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore, erasure
from shredstore.cli.interrupts import signals_deferred
from tests.cli.forked import Forked
from tests.cli.runner import process_environment, shredstore

SUBJECTS = 2000
"""Lines of the request file: far more than any one run gets through before its signal."""

DONE = re.compile(r"^line (\d+): (\S+): (?:erased|already erased);", re.MULTILINE)
STOPPED = re.compile(r"^stopped by (SIG\w+) after (\d+) of (\d+) request\(s\), each done in "
                     r"full; the last: (\S+) \(line (\d+)\); (\d+) not started$", re.MULTILINE)
RESUME = re.compile(r"^to resume: the same command with --start-line (\d+), or the same "
                    r"command again", re.MULTILINE)


@dataclass(frozen=True)
class Batch:
    """A store whose vault has its own database, and a request file for every subject."""

    folder: Path
    url: str
    vault_url: str
    requests: Path

    def start(self, *options: str) -> Forked:
        """`shredstore erase --from-file` as a child process, its output on pipes."""
        return Forked(
            ["--url", self.url, "--vault-url", self.vault_url, "erase",
             "--from-file", str(self.requests), "--receipts", str(self.folder / "receipts"),
             *options],
            cwd=self.folder, env=process_environment())

    def interrupt(self, number: int, *, delay: float, options: tuple[str, ...] = ()
                  ) -> tuple[int, str, str]:
        """Start a run, send signal `number` `delay` seconds after its first subject is done;
        its exit code, stdout and stderr."""
        child = self.start(*options)
        assert child.stdout is not None
        first = child.stdout.readline()  # the batch is under way: a subject is erased
        if first:
            try:
                child.wait(timeout=delay)  # sleeps, unless the child ends first
            except subprocess.TimeoutExpired:
                child.send_signal(number)
        out, err = child.communicate(timeout=60)
        assert first, f"the run printed nothing (exit {child.returncode}): {err}"
        return child.returncode, first + out, err

    def tombstones(self) -> set[str]:
        with EventStore(self.url, vault_url=self.vault_url) as store:
            return {status.subject_id for status in store.vault.erasures()}

    def ledger(self) -> set[str]:
        with EventStore(self.url, vault_url=self.vault_url) as store:
            return set(erasure.ledger(store))

    def command(self, *args: str) -> tuple[int, str]:
        """A command of the CLI, in this process (tests/cli/runner.py: none of the test run's
        SHREDSTORE_* settings): its exit code and output."""
        result = shredstore("--url", self.url, "--vault-url", self.vault_url, *args,
                            cwd=self.folder)
        return result.returncode, result.stdout + result.stderr


@pytest.fixture
def batch(tmp_path: Path, master_file: Path, separate_urls: tuple[str, str]) -> Batch:
    url, vault_url = separate_urls
    subjects = [f"s-{n:05d}" for n in range(SUBJECTS)]
    with EventStore(url, vault_url=vault_url, master_key=MasterKey.from_file(master_file)
                    ) as store, store.vault.keyring() as ring:
        ring.prepare(subjects)  # a key each; events would only slow the setup
    requests = tmp_path / "big.csv"
    requests.write_text("subject,request_id\n"
                        + "".join(f"{subject},REQ-{n}\n" for n, subject in enumerate(subjects)))
    return Batch(tmp_path, url, vault_url, requests)


def assert_ledger_and_vault_agree(batch: Batch, context: str) -> None:
    """Where the vault's tombstones and the ledger differ, `verify` says so (exit 1, naming
    `reconcile`) and `reconcile` closes the gap; then they agree and `verify` passes."""
    tombstones, ledger = batch.tombstones(), batch.ledger()
    if tombstones != ledger:
        code, output = batch.command("verify")
        assert code == 1, f"verify missed a gap {sorted(tombstones ^ ledger)}: {output}"
        assert "reconcile" in output
        for subject in tombstones ^ ledger:
            assert subject in output, f"verify did not name {subject}: {output}\n{context}"
        code, output = batch.command("reconcile")
        assert code == 0, output
        assert batch.tombstones() == batch.ledger(), context
    code, output = batch.command("verify")
    assert code == 0, f"{output}\n{context}"


@pytest.mark.processes
def test_sigint_stops_a_batch_between_subjects_and_says_how_to_resume(batch: Batch) -> None:
    """Twenty runs, each resumed as the last one said and stopped at a random moment: each
    exits 130, reports the subjects it did in full and where to resume, and leaves nothing
    half done (every reported subject erased and in the ledger, and nothing else)."""
    seed = secrets.randbits(32)
    rng = random.Random(seed)  # noqa: S311 - picks when to interrupt, not a secret
    done: set[str] = set()
    start = 2  # the first request's line (after the CSV header)
    for run in range(20):
        options = () if run == 0 else ("--start-line", str(start))
        code, out, err = batch.interrupt(signal.SIGINT, delay=rng.choice([0, rng.uniform(0, 0.3)]),
                                         options=options)
        context = f"run {run} (seed {seed}), exit {code}:\n{out[-1500:]}\n{err}"
        assert code == 130, context
        assert "Traceback" not in out + err, context
        assert "Aborted" not in out + err, context
        lines = [(int(line), subject) for line, subject in DONE.findall(out)]
        assert [line for line, _ in lines] == list(range(start, start + len(lines))), context
        stopped = STOPPED.search(out)
        assert stopped is not None, context
        assert stopped.groups() == (
            "SIGINT", str(len(lines)), str(SUBJECTS + 2 - start), lines[-1][1],
            str(lines[-1][0]), str(SUBJECTS + 2 - start - len(lines))), context
        resume = RESUME.search(out)
        assert resume is not None, context
        assert int(resume[1]) == lines[-1][0] + 1, context
        assert "SIGINT: finishing the subject in hand, then stopping" in err, context
        done |= {subject for _, subject in lines}
        assert batch.tombstones() == batch.ledger() == done, context  # nothing half done
        assert_ledger_and_vault_agree(batch, context)
        start = int(resume[1])


@pytest.mark.processes
def test_sigterm_stops_a_batch_the_same_way_and_says_so_in_json(batch: Batch) -> None:
    """SIGTERM (a service manager stopping the job) exits 143 after the subject in hand, and
    with --json the last object says how far the run got and where to resume."""
    code, out, err = batch.interrupt(signal.SIGTERM, delay=secrets.randbelow(300) / 1000,
                                     options=("--json",))
    assert code == 143, err
    *results, stopped = [json.loads(line) for line in out.splitlines()]
    assert {result["result"] for result in results} == {"erased"}
    assert stopped["result"] == "stopped"
    assert stopped["signal"] == "SIGTERM"
    assert stopped["done"] == len(results)
    assert stopped["last_done"] == {"subject": results[-1]["subject"], "line": len(results) + 1}
    assert stopped["resume_at_line"] == len(results) + 2
    assert f"{len(results)} erased" in err
    assert batch.tombstones() == batch.ledger() == {result["subject"] for result in results}
    assert_ledger_and_vault_agree(batch, out)


@pytest.mark.processes
def test_sigkill_gaps_are_reported_by_verify_and_closed_by_reconcile(batch: Batch) -> None:
    """SIGKILL cannot be held back: a run killed at a random moment may leave a key destroyed
    and not recorded. Whatever it left, `verify` reports each gap and `reconcile` closes it;
    every subject the run reported done is erased and recorded."""
    seed = secrets.randbits(32)
    rng = random.Random(seed)  # noqa: S311 - picks when to kill, not a secret
    start = 2
    for run in range(6):
        code, out, err = batch.interrupt(signal.SIGKILL, delay=rng.uniform(0, 0.3),
                                         options=("--start-line", str(start)))
        context = f"run {run} (seed {seed}):\n{out[-1500:]}\n{err}"
        assert code == -signal.SIGKILL, context
        lines = [(int(line), subject) for line, subject in DONE.findall(out)]
        assert {subject for _, subject in lines} <= batch.ledger() & batch.tombstones(), context
        assert_ledger_and_vault_agree(batch, context)
        start = lines[-1][0] + 1  # the subject in hand, if any, again: harmless


def test_signals_are_only_noted_while_held_back_and_restored_after(
        capfd: pytest.CaptureFixture[str]) -> None:
    """While held back, a signal sets the flag and says on stderr that the subject in hand is
    finished first, also a second one; afterwards the previous handlers are back."""
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with signals_deferred() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signal == signal.SIGINT
    assert {number: signal.getsignal(number) for number in before} == before
    err = capfd.readouterr().err
    assert "SIGINT: finishing the subject in hand, then stopping" in err
    assert "SIGTERM again: still finishing the subject in hand" in err
