"""The command line in-process: exit codes, messages, no tracebacks (the console script as a
real process: tests/cli/test_console_script.py)."""

from __future__ import annotations

import json
import runpy
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyvault import MasterKey
from shredstore import EventStore, erasure
from shredstore.cli import cli
from tests.cli.runner import Ran, shredstore
from tests.store import tampering
from tests.store.contract import notes


def run(*args: str, env_url: str | None = None) -> Ran:
    return shredstore(*args, url=env_url)


def test_demo_erases_a_customer_and_proves_it(tmp_path: Path) -> None:
    """`shredstore demo` does the whole job on SQLite, narrated, masking personal values."""
    result = run("demo", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "none found, only ciphertext" in out
    assert "#4 customer-c-1002 CustomerRegistered: email -> erased@invalid, name -> REDACTED" \
        in out
    assert "#7 order-o-3 OrderPlaced: shipping_address -> REDACTED" in out
    assert "refused (SubjectErasedError)" in out
    assert "no ciphertext of the subject opens" in out
    assert "signature valid" in out
    assert "11 events checked: hash chain and immutability triggers intact" in out
    assert "every row's authenticator checks" in out
    for value in ("Ben Demo", "ben@example.com", "Beispielweg", "DE00 DEMO"):
        assert value not in out  # masked unless --reveal

    (receipt_file,) = (tmp_path / "erasure-receipts").iterdir()
    receipt = json.loads(receipt_file.read_text())
    assert (receipt["subject"], receipt["request_id"], receipt["held"]["events"]) == (
        "c-1002", "DEMO-1", 4)
    assert erasure.verify_receipt(receipt).ok
    master = MasterKey.from_file(tmp_path / "master.key")
    with EventStore(f"sqlite:///{tmp_path / 'events.db'}", master_key=master) as store:
        assert store.head().position == 11
        assert store.subject_status("c-1002").state == "erased"
        assert store.subject_status("c-1001").state == "active"
        assert store.verify().ok


def test_demo_reveal_shows_the_invented_values_and_a_used_folder_is_refused(tmp_path: Path
                                                                            ) -> None:
    revealed = run("demo", "--reveal", "--dir", str(tmp_path / "a"))
    assert revealed.returncode == 0, revealed.stderr
    assert "name=Ben Demo" in revealed.stdout
    again = run("demo", "--dir", str(tmp_path / "a"))
    assert again.returncode == 2
    assert "is not empty" in again.stderr
    assert "Traceback" not in again.stderr


def test_verify_exits_0_on_an_intact_log(any_url: str) -> None:
    """`shredstore verify` on an untouched log reports it intact."""
    with EventStore(any_url) as store:
        store.append("s", notes(3))
        head = store.head()
    result = run("--url", any_url, "verify", "--expect-head", str(head))
    assert result.returncode == 0, result.stderr
    assert "3 events checked" in result.stdout


def test_verify_exits_1_and_lists_every_finding(any_url: str) -> None:
    """`shredstore verify` on a tampered log lists the findings and exits 1."""
    with EventStore(any_url) as store:
        store.append("s", notes(4))
    engine = tampering.raw_engine(any_url)
    tampering.drop_triggers(engine)
    tampering.execute(engine, "DELETE FROM shredstore_events WHERE position = 2")
    engine.dispose()
    result = run("verify", env_url=any_url)
    assert result.returncode == 1
    assert "position 2: deleted" in result.stdout
    assert "unprotected" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "nonsense://x", "init"], "unsupported database"),
    (["--url", "::::", "init"], "malformed database URL"),
    (["--url", "sqlite:////nonexistent-dir/x/y.db", "init"], "cannot reach the database"),
    (["verify", "--expect-head", "12:nothex"], "--expect-head"),
])
def test_configuration_errors_are_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    """A bad URL or option prints one line on stderr and exits 2, without a traceback."""
    result = run(*args, env_url=f"sqlite:///{tmp_path / 'e.db'}")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_init_is_idempotent(tmp_path: Path) -> None:
    """`shredstore init` twice leaves one ready store."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert run("--url", url, "init").returncode == 0
    again = run("--url", url, "init")
    assert again.returncode == 0
    assert "ready" in again.stdout


def test_init_restores_dropped_triggers_and_says_so(any_url: str) -> None:
    """`shredstore init` re-creates dropped immutability triggers and names them."""
    EventStore(any_url).close()
    engine = tampering.raw_engine(any_url)
    tampering.drop_triggers(engine)
    engine.dispose()
    assert run("--url", any_url, "verify").returncode == 1
    result = run("--url", any_url, "init")
    assert result.returncode == 0, result.stderr
    assert "restored the missing immutability trigger" in result.stdout
    assert run("--url", any_url, "verify").returncode == 0


def test_verify_says_what_it_could_not_check(any_url: str, master_file: Path) -> None:
    """Without the master key verify says it checked no authenticators; with it, it counts
    the rows a key-less writer appended, which only an anchored head vouches for."""
    with EventStore(any_url) as store:
        store.append("s", notes(2))
    keyless = CliRunner().invoke(cli, ["--url", any_url, "verify"])
    assert keyless.exit_code == 0, keyless.output
    assert "row authenticators not checked" in keyless.output
    keyed = CliRunner().invoke(cli, ["--url", any_url, "--master-key-file", str(master_file),
                                     "verify"])
    assert keyed.exit_code == 0, keyed.output
    assert "2 row(s) without an authenticator" in keyed.output


def test_version_names_the_installed_release() -> None:
    """`shredstore --version` prints the installed distribution's version and exits 0."""
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"shredstore {version('shredstore')}\n"


def test_python_dash_m_is_the_same_command_line(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m shredstore.cli` runs the console script's entry point."""
    monkeypatch.setattr(sys, "argv", ["shredstore", "--version"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("shredstore.cli", run_name="__main__")
    assert done.value.code == 0
    assert capsys.readouterr().out == f"shredstore {version('shredstore')}\n"
