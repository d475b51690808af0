"""The command line run in this process, answering as a finished process would.

`shredstore(*args)` invokes the click group with click's `CliRunner` (about a millisecond to
start, where a new interpreter takes a second of imports) and returns the exit code, stdout and
stderr apart, like `subprocess.run`. The environment is the one a test names, nothing else of
shredstore's (SHREDSTORE_* variables of the test run are hidden), and the command runs in `cwd`.
An exception that escapes the command fails the test with its traceback: in a real process it
would have been a traceback on the user's screen.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from shredstore.cli import cli

__all__ = ["Ran", "shredstore"]


@dataclass(frozen=True, slots=True)
class Ran:
    """What a command left: its exit code and its standard output and error."""

    returncode: int
    stdout: str
    stderr: str


def shredstore(*args: str, url: str | None = None, master: Path | None = None,
               cwd: Path | None = None, env: Mapping[str, str | None] | None = None,
               color: bool = False) -> Ran:
    """`shredstore ARGS...` in this process, with SHREDSTORE_URL `url` and
    SHREDSTORE_MASTER_KEY_FILE `master` if given, and `env` on top; `color`: as on a
    terminal that shows colour (else click drops it, as for a pipe)."""
    environment: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("SHREDSTORE_") or name in (
            "COLUMNS", "LINES", "NO_COLOR")}
    if url is not None:
        environment["SHREDSTORE_URL"] = url
    if master is not None:
        environment["SHREDSTORE_MASTER_KEY_FILE"] = str(master)
    environment.update(env or {})
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        result = CliRunner().invoke(cli, list(args), env=environment, prog_name="shredstore",
                                    color=color)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def process_environment(**variables: str) -> dict[str, str]:
    """The environment of a real `shredstore` process that a test starts: PATH, coverage's
    variables (so that what the process runs is measured too), and `variables`."""
    kept = {name: value for name, value in os.environ.items()
            if name == "PATH" or name.startswith("COVERAGE_")}
    return {"PATH": "/usr/bin:/bin", **kept, **variables}
