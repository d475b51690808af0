"""The command line as a real process, forked from this one: for tests that signal or kill it.

A new interpreter spends about a second importing shredstore before it does anything; a process
forked from the test run has every module loaded already and starts in a millisecond. It is a
real process all the same: its own pid, its own standard streams on pipes, the signals and the
exit status the operating system gives it. It runs `cli.main` as the console script does, from
a clean start: the test's working folder and environment, SIGINT and SIGTERM at Python's
defaults, fresh standard streams; the library keeps no process-wide state that would differ.

`Forked` answers like a `subprocess.Popen` (`stdout`, `wait`, `send_signal`, `communicate`,
`returncode`, negative for a signal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from shredstore.cli import cli

__all__ = ["Forked"]

_CRASHED = 70
"""The exit status of a child whose command let an exception escape (a traceback on stderr)."""


class Forked:
    """`shredstore ARGS...` in a child process forked from this one, its stdout and stderr on
    pipes (stderr collected in the background, so the child never blocks on it)."""

    def __init__(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # nothing buffered here is written twice by the child
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; it never returns
            os.close(out_read)
            os.close(err_read)
            _run(args, cwd=cwd, env=env, stdout=out_write, stderr=err_write)
        os.close(out_write)
        os.close(err_write)
        self.pid = pid
        self.returncode: int | None = None
        self.stdout = open(out_read, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._stderr = open(err_read, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._errors: list[str] = []
        self._pump = threading.Thread(target=lambda: self._errors.extend(self._stderr),
                                      daemon=True)
        self._pump.start()

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        """The exit code; `subprocess.TimeoutExpired` if the child still runs after `timeout`."""
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forked shredstore (pid {self.pid})", timeout)
            time.sleep(0.005)
        return code

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def communicate(self, timeout: float) -> tuple[str, str]:
        """The rest of stdout and all of stderr, once the child has exited."""
        rest: list[str] = []
        reader = threading.Thread(target=lambda: rest.append(self.stdout.read()), daemon=True)
        reader.start()
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            self.wait(10)
            raise
        finally:
            reader.join(timeout=10)
            self._pump.join(timeout=10)
            self.stdout.close()
            self._stderr.close()
        return "".join(rest), "".join(self._errors)


def _run(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdout: int, stderr: int
         ) -> NoReturn:  # pragma: no cover - runs in the child
    """The child: standard streams on the pipes, then the command line; exits with its code."""
    code = _CRASHED
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.close(stdout)
        os.close(stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                          closefd=False)
        try:
            cli.main(list(args), prog_name="shredstore")
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        else:
            code = 0
    except BaseException:  # noqa: BLE001 - a traceback on stderr, as a real process shows it
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(Exception):
            _save_coverage()
        os._exit(code)


def _save_coverage() -> None:  # pragma: no cover - runs in the child
    """Where the test run is measured, save what this child ran: os._exit skips the save at
    exit. Only a measurement restarted by coverage's fork patch is this child's own (without
    it, the parent's would be written twice)."""
    coverage = sys.modules.get("coverage")
    current = coverage.Coverage.current() if coverage is not None else None
    if current is not None and "fork" in (current.get_option("run:patch") or ()):
        current.stop()
        current.save()
