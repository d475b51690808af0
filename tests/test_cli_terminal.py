"""`shredstore erase --from-file` as a person sees it: a real process on a pseudo-terminal, what it
wrote rendered by a terminal emulator (pyte), and what is left on the screen.

While a batch runs, a progress bar sits below the results; the results are printed through the
bar's console, which clears the bar, prints the line and draws the bar again. So each result
ends up on a line of its own and the bar leaves nothing behind. Off a terminal there is no bar:
a plain line on stderr at each tenth of the way, for logs.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pyte
import pytest

import shredstore
from keyvault import MasterKey
from shredstore import EventStore
from tests.cli.runner import process_environment
from tests.cli.runner import shredstore as run

ROWS, COLUMNS = 200, 400
"""The terminal's size: tall enough for every line of a run, wide enough that no result wraps
(rich is told COLUMNS=100, as a user may; it draws its bar within that)."""

SOURCE = Path(shredstore.__file__).resolve().parents[1]
"""The source tree under test, for the child's imports."""

RESULT = re.compile(r"^line (\d+): (s-\d+): erased; .*receipt \S+\.json$")
NOTE = "shredstore: SIGINT: finishing the subject in hand, then stopping"
FOLLOWING_A_STOP = re.compile(r"^(\d+ erased|stopped by SIGINT after \d+ of \d+ request\(s\), "
                              r".*|to resume: the same command with --start-line \d+, .*)$")


@dataclass(frozen=True)
class Screen:
    """What a run left: its exit code, the terminal's rows as an emulator renders them (trailing
    blank rows dropped), everything written to the terminal, and stdout if it was piped."""

    returncode: int
    rows: list[str]
    drawn: bytes
    stdout: str


@dataclass(frozen=True)
class Batch:
    """A store with a key for each of `subjects`, and requests.csv in `folder` naming them."""

    folder: Path
    url: str
    master: Path
    subjects: list[str]

    def erase(self, *, piped_stdout: bool = False, interrupt_after: bytes | None = None
              ) -> Screen:
        return on_terminal(["--url", self.url, "--master-key-file", str(self.master), "erase",
                            "--from-file", "requests.csv"], cwd=self.folder,
                           piped_stdout=piped_stdout, interrupt_after=interrupt_after)


def batch_of(count: int, folder: Path, master: Path) -> Batch:
    """A store holding a key for each of `count` subjects, and requests.csv naming them all."""
    url, subjects = f"sqlite:///{folder / 'events.db'}", [f"s-{n:03d}" for n in range(count)]
    with EventStore(url, master_key=MasterKey.from_file(master)) as store, \
            store.vault.keyring() as ring:
        ring.prepare(subjects)  # a key each; events would only slow the setup
    (folder / "requests.csv").write_text("subject\n" + "".join(f"{s}\n" for s in subjects))
    return Batch(folder, url, master, subjects)


def _controlling_terminal() -> None:  # pragma: no cover - runs in the child
    """Make stdin's terminal the child's controlling one, so that ^C typed there is SIGINT."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def on_terminal(args: list[str], *, cwd: Path, piped_stdout: bool,
                interrupt_after: bytes | None) -> Screen:
    """`shredstore ARGS` in a new process with stdin and stderr (and stdout, unless piped) on a
    pseudo-terminal, TERM=xterm, COLUMNS=100 and no NO_COLOR; if `interrupt_after`, ^C is
    typed once the terminal shows it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    modes = termios.tcgetattr(follower)
    modes[3] |= termios.NOFLSH  # ^C must not discard output this test has yet to read
    termios.tcsetattr(follower, termios.TCSANOW, modes)
    out_read, out_write = os.pipe() if piped_stdout else (-1, follower)
    environment = process_environment(TERM="xterm", COLUMNS="100", PYTHONPATH=str(SOURCE))
    assert "NO_COLOR" not in environment
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "shredstore.cli", *args], stdin=follower, stdout=out_write,
            stderr=follower, cwd=cwd, env=environment, start_new_session=True,
            preexec_fn=_controlling_terminal)  # noqa: PLW1509 - an ioctl, then exec
    finally:
        os.close(follower)
        if piped_stdout:
            os.close(out_write)
    drawn, out = bytearray(), bytearray()
    open_fds = {leader: drawn, **({out_read: out} if piped_stdout else {})}
    deadline = time.monotonic() + 300  # only so that a hung child fails the test
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 1.0)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the terminal's last writer is gone (EIO)
                    chunk = b""
                if not chunk:
                    del open_fds[fd]
                    continue
                open_fds[fd].extend(chunk)
                if interrupt_after is not None and interrupt_after in drawn:
                    os.write(leader, b"\x03")  # ^C, as typed
                    interrupt_after = None
        code = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(leader)
        if piped_stdout:
            os.close(out_read)
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(screen).feed(bytes(drawn))
    rows = [row.rstrip() for row in screen.display]
    while rows and not rows[-1]:
        rows.pop()
    return Screen(code, rows, bytes(drawn), out.decode())


def assert_results_intact(rows: list[str], batch: Batch) -> None:
    """Each row is one whole result, in the file's order (its lines 2, 3, ...)."""
    found = [RESULT.match(row) for row in rows]
    assert all(found), "\n".join(row for row, match in zip(rows, found, strict=True)
                                 if match is None)
    assert [(int(m.group(1)), m.group(2)) for m in found if m] == [
        (n + 2, subject) for n, subject in enumerate(batch.subjects[:len(rows)])]


def assert_no_bar_left(rows: list[str]) -> None:
    for row in rows:
        assert "━" not in row, f"a bar left on the screen: {row!r}"
        assert "erasing" not in row, f"a bar left on the screen: {row!r}"


@pytest.mark.processes
def test_on_a_terminal_each_result_has_its_own_line_and_the_bar_goes(
        tmp_path: Path, master_file: Path) -> None:
    """stdout and stderr on the same terminal: fifty results, each intact on its own line,
    then the summary; a bar was drawn, and nothing of it is left."""
    batch = batch_of(50, tmp_path, master_file)
    run = batch.erase()
    assert run.returncode == 0, "\n".join(run.rows)
    assert b"erasing" in run.drawn  # a bar was drawn
    assert b"\x1b[" in run.drawn
    assert run.rows[-1] == "50 erased"
    assert_results_intact(run.rows[:-1], batch)
    assert len(run.rows) == 51
    assert_no_bar_left(run.rows)


@pytest.mark.processes
def test_with_stdout_piped_the_results_go_to_the_pipe_and_the_bar_to_the_terminal(
        tmp_path: Path, master_file: Path) -> None:
    """stdout piped, stderr a terminal: every result in the pipe, none on the terminal, where
    the bar was drawn and left nothing."""
    batch = batch_of(50, tmp_path, master_file)
    run = batch.erase(piped_stdout=True)
    assert run.returncode == 0, run.stdout
    lines = run.stdout.splitlines()
    assert lines[-1] == "50 erased"
    assert_results_intact(lines[:-1], batch)
    assert len(lines) == 51
    assert b"erasing" in run.drawn
    assert run.rows == []


@pytest.mark.processes
def test_ctrl_c_on_a_terminal_prints_its_note_on_a_line_of_its_own(
        tmp_path: Path, master_file: Path) -> None:
    """^C typed during a batch: the note that the run is stopping takes the bar's place, on a
    line of its own among the results; the stop report follows; no bar is left."""
    batch = batch_of(400, tmp_path, master_file)
    run = batch.erase(interrupt_after=b"line 4: ")
    assert run.returncode == 128 + signal.SIGINT, "\n".join(run.rows)
    assert run.rows.count(NOTE) == 1, "\n".join(run.rows)
    note = run.rows.index(NOTE)
    before, after = run.rows[:note], run.rows[note + 1:]
    in_hand = [row for row in after[:1] if RESULT.match(row)]  # finished after the note
    assert_results_intact(before + in_hand, batch)
    rest = after[len(in_hand):]
    assert rest[0] == f"{len(before) + len(in_hand)} erased"
    assert [row for row in rest if not FOLLOWING_A_STOP.match(row)] == [], "\n".join(run.rows)
    assert_no_bar_left(run.rows)


def test_off_a_terminal_a_batch_reports_each_tenth_on_stderr(tmp_path: Path,
                                                             master_file: Path) -> None:
    """No terminal: a plain line on stderr at the start and at each tenth, the results and the
    summary on stdout; the same for a dry run ("checking") and in JSON; nothing for one
    subject."""
    batch = batch_of(50, tmp_path, master_file)
    tenths = [f"{n}/50" for n in range(0, 51, 5)]
    dry = run("erase", "--from-file", "requests.csv", "--dry-run", url=batch.url, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stderr.splitlines() == [f"checking: {done}" for done in tenths]
    erased = run("erase", "--from-file", "requests.csv", "--json", url=batch.url,
                 master=master_file, cwd=tmp_path)
    assert erased.returncode == 0, erased.stderr
    assert len(erased.stdout.splitlines()) == 50
    assert erased.stderr.splitlines() == [*(f"erasing: {done}" for done in tenths),
                                          "50 erased"]
    one = run("erase", "s-000", url=batch.url, cwd=tmp_path)
    assert (one.returncode, one.stderr) == (0, "")
