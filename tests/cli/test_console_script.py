"""The installed console script as a real process on a fresh store: the entry point, what goes
to stdout and what to stderr, the exit codes, and never a traceback.

Everything else about the commands is tested in this process (`tests.cli.runner`); this file,
the signal tests (`tests/test_cli_interrupts.py`) and one non-UTF-8 argument
(`tests/test_cli_bad_input.py`) are what only a real process shows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.runner import process_environment

SCRIPT = Path(sys.executable).parent / "shredstore"


def script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"no console script {SCRIPT}: install the package (pip install -e .)"
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=process_environment(), check=False)


def test_the_console_script_creates_a_store_and_answers_with_exit_codes(tmp_path: Path
                                                                        ) -> None:
    """`init` on a fresh SQLite file (exit 0), a subject it knows nothing of (exit 1, one line
    on stderr), and a URL it cannot use (exit 2, one line on stderr)."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    made = script("--url", url, "init", cwd=tmp_path)
    assert (made.returncode, made.stdout, made.stderr) == (0, "event store ready\n", "")

    unknown = script("--url", url, "status", "c-1", cwd=tmp_path)
    assert unknown.returncode == 1, unknown.stderr
    assert unknown.stdout == "c-1: unknown\n  0 event(s) in 0 stream(s) hold its personal data\n"
    assert unknown.stderr == "shredstore: unknown subject: no key, no erasure record, no events\n"

    broken = script("--url", "nonsense://x", "init", cwd=tmp_path)
    assert broken.returncode == 2
    assert broken.stdout == ""
    (line,) = broken.stderr.splitlines()
    assert line.startswith("shredstore: ")
    assert "unsupported database" in line
