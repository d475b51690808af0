"""The README's Quickstart and CI stay in step."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, "the Quickstart has a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quickstart_is_exactly_two_commands() -> None:
    """The Quickstart has two commands: the demo on SQLite, and the tests."""
    demo, tests = quickstart_commands()
    assert demo.endswith("shredstore demo")
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run calls the README's test command, character for character."""
    _, tests = quickstart_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines
    assert any("SHREDSTORE_REQUIRE_POSTGRES=1" in line for line in ci_lines)


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's usage example runs as written, in an empty folder."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README shows Python usage"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"print": lambda *a: None})  # noqa: S102


def test_the_quickstart_demo_command_works_in_a_fresh_virtual_environment(tmp_path: Path
                                                                          ) -> None:
    """The first Quickstart command, verbatim, in a copy of the repository without a venv: a
    real install (a wheel built in isolation, as on a new machine), the console script it
    installs, and the demo.

    The second command (venv, ``pip install -e '.[test]'``, pytest) is not run again here: it
    is how this suite itself is run, and `.ci/run` runs it verbatim on a fresh clone
    (`test_ci_runs_the_readme_test_command_verbatim`), so every CI run proves it on a new
    machine; a nested run here cost a second install of the test tools and a minute.
    """
    copy = tmp_path / "shredstore"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build",
        "erasure-receipts", "*.db", ".coverage*", "test-artifacts"))
    venvs = (str(ROOT / ".venv"),) + ((sys.prefix,) if sys.prefix != sys.base_prefix else ())
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("SHREDSTORE_", "PYTEST", "VIRTUAL_ENV", "PYTHON",
                                   "COVERAGE_"))}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "/usr/bin:/bin").split(
        os.pathsep) if not part.startswith(venvs))
    env["TMPDIR"] = str(tmp_path)  # the demo's new temporary folder goes with the test's
    # pip installs without byte-compiling every module of the dependencies (a quarter of its
    # CPU time here, and nothing the demo needs: Python compiles what it imports). pip takes
    # this variable's value as its `compile` setting, so "0" means `--no-compile`; a pip that
    # read it the other way round would only compile, as without it.
    env["PIP_NO_COMPILE"] = "0"
    demo, _ = quickstart_commands()
    bash = shutil.which("bash") or "/bin/bash"
    shown = subprocess.run([bash, "-c", demo], cwd=copy, env=env, capture_output=True,
                           text=True, timeout=600, check=False)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "hash chain and immutability triggers intact" in shown.stdout
    assert (copy / ".venv" / "bin" / "shredstore").exists()
