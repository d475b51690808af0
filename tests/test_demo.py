"""`shredstore demo` as a newcomer meets it: each term of the trade said in plain words where it
first appears, and every command it suggests at the end running as printed."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

from tests.cli.runner import Ran, shredstore

TERMS = {term: term for term in (
    "crypto-shredding", "event store", "key vault", "sealed", "replaying", "dry run", "ledger",
    "position", "erasure receipt", "log head", "signature", "hash chain",
    "immutability triggers", "authenticator")} | {"key fingerprint": "fingerprint"}
"""The jargon the demo prints (and the word it first appears as), each explained on a line of
its own."""

STEP = re.compile(r"^\d+\. ")


def run_demo(folder: Path) -> list[str]:
    ran = shredstore("demo", "--dir", str(folder))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout.splitlines()


def suggested(lines: list[str]) -> list[list[str]]:
    """The command lines the demo suggests, split as a POSIX shell splits them."""
    return [shlex.split(line) for line in lines if line.startswith("   shredstore ")]


def step_of(lines: list[str], index: int) -> int:
    """The number of the narrated step line `index` belongs to (0 before the first)."""
    headers = [n for n, line in enumerate(lines[:index + 1]) if STEP.match(line)]
    return len(headers)


def test_the_demo_explains_each_term_where_it_first_appears(tmp_path: Path) -> None:
    """After the first line that uses a term, in the same step, a line says what it means."""
    lines = run_demo(tmp_path / "demo")
    for term, word in TERMS.items():
        explanations = [n for n, line in enumerate(lines) if line.startswith(f"     {term}: ")]
        assert len(explanations) == 1, f"{term!r} is explained {len(explanations)} times"
        (explained,) = explanations
        first = next(n for n, line in enumerate(lines) if word in line.lower())
        assert first < explained, f"{term!r} is explained before it is used"
        assert step_of(lines, first) == step_of(lines, explained), \
            f"{term!r} is explained steps after it first appears"


def _status(ran: Ran, folder: Path) -> None:
    assert ran.stdout.startswith("c-1002: erased\n")


def _dry_run(ran: Ran, folder: Path) -> None:
    assert re.match(r"c-1002: already erased at \S+ \(request DEMO-1\); nothing to do$",
                    ran.stdout.splitlines()[0])


def _verify(ran: Ran, folder: Path) -> None:
    assert ": intact" in ran.stdout.splitlines()[0]
    assert "not checked" not in ran.stdout  # the master key was given: authenticators checked


def _report(ran: Ran, folder: Path) -> None:
    assert "integrity: intact" in ran.stderr
    assert "<html" in (folder / "report.html").read_text().lower()


def _receipt(ran: Ran, folder: Path) -> None:
    assert "signature valid" in ran.stdout
    assert "pass --public-key" not in ran.stdout  # checked against the demo's public key


CHECKS: dict[str, Callable[[Ran, Path], None]] = {
    "status": _status, "erase": _dry_run, "verify": _verify, "report": _report,
    "receipt": _receipt}
"""What each suggested command must show; a new suggestion needs its check here."""


def test_every_command_the_demo_suggests_runs_as_printed(tmp_path: Path) -> None:
    """Run from another folder, in a demo folder whose name a shell must have quoted (a space,
    an apostrophe, a percent sign, which a database URL must escape): each exits 0 and shows
    what its line promised."""
    folder = tmp_path / "the demo's 100% folder"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    commands = suggested(run_demo(folder))
    names = [next(word for word in command[1:] if word in CHECKS) for command in commands
             if any(word in CHECKS for word in command[1:])]
    assert len(names) == len(commands), "a suggestion this test does not know: add its check"
    assert sorted(names) == sorted(CHECKS)
    for command, name in zip(commands, names, strict=True):
        assert command[0] == "shredstore"
        ran = shredstore(*command[1:], cwd=elsewhere)
        assert ran.returncode == 0, f"{shlex.join(command)}:\n{ran.stdout}{ran.stderr}"
        CHECKS[name](ran, folder)
    assert list(elsewhere.iterdir()) == []  # every path was absolute: nothing written here
