"""Bad text and bad paths on the command line: one line on stderr and exit 2, never a traceback.

A byte that is not UTF-8 in an argument reaches Python as a lone surrogate
(``os.fsdecode(b"\\xff") == "\\udcff"``); click's CliRunner passes such strings in-process, and
one real process passes real bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from keyvault import MasterKey
from shredstore import EventStore, erasure
from shredstore.cli import cli
from shredstore.errors import ConfigurationError, ProjectionError
from tests.cli.runner import process_environment
from tests.shredding.events import CustomerRegistered

BAD = os.fsdecode(b"\xff\xfe-c1")
NAME = "Perpetua-Narwhal-2287"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process commands run in a folder of their own: whatever one writes stays there."""
    monkeypatch.chdir(tmp_path)


def invoke(*args: str, url: str | None = None, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> Result:
    """The command line in-process; checks what every answer must hold."""
    environment: dict[str, str | None] = {
        "SHREDSTORE_URL": url, "SHREDSTORE_MASTER_KEY": None,
        "SHREDSTORE_MASTER_KEY_FILE": None, "SHREDSTORE_VAULT_URL": None,
        "SHREDSTORE_RECEIPTS_DIR": str(cwd / "receipts") if cwd else None, **(env or {})}
    result = CliRunner().invoke(cli, list(args), env=environment)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{type(result.exception).__name__} escaped: {result.exception}"
    assert "Traceback" not in result.output
    assert NAME not in result.output
    return result


def one_line_usage_error(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("shredstore: ")
    assert "\udcff" not in result.output, "value echoed"
    assert "\\udcff" not in result.output, "value echoed"
    for word in words:
        assert word in result.stderr


@pytest.fixture
def filled(any_url: str) -> str:
    with EventStore(any_url, master_key=MasterKey.generate()) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id="c-1", name=NAME, email="p@example.org", credit_limit=1)])
    return any_url


@pytest.mark.parametrize("args", [
    ("status", BAD),
    ("erase", BAD),
    ("erase", "c-1", BAD),
    ("erase", "c-1", "--reason", BAD),
    ("erase", "c-1", "--request-id", BAD),
    ("erase", "c-1", "--read-model-url", BAD),
    ("export", BAD),
    ("export", "c-1", "--purpose", BAD),
    ("report", "--subject", BAD),
    ("report", "--stream", BAD),
    ("report", "--type", BAD),
    ("report", "--purpose", BAD),
    ("report", "--since", BAD),
    ("verify", "--expect-head", BAD),
    ("--url", BAD, "status", "c-1"),
    ("--vault-url", BAD, "status", "c-1"),
], ids=lambda args: " ".join(a if a != BAD else "BAD" for a in args))
def test_text_that_is_not_utf8_is_refused_before_anything_runs(
    filled: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Ids, stream names, reasons, request ids, purposes and URLs: the parameter is named,
    its value is not shown, and the store is not touched."""
    with EventStore(filled) as store:
        head = store.head()
    result = invoke(*args, url=filled, cwd=tmp_path)
    one_line_usage_error(result, "not valid UTF-8")
    with EventStore(filled) as store:
        assert store.head() == head
        assert store.subject_status("c-1").state == "active"
    assert not (tmp_path / "receipts").exists()


@pytest.mark.parametrize("args", [
    ("--master-key-file", BAD, "status", "c-1"),
    ("erase", "--from-file", BAD),
    ("erase", "c-1", "--receipts", BAD),
    ("erase", "c-1", "--signing-key-file", BAD),
    ("report", "--out", BAD),
    ("export", "c-1", "--out", BAD),
    ("keys", "new-master", "--out", BAD),
    ("keys", "new-signing-key", "--out", BAD),
    ("keys", "rotate-master", "--new-key-file", BAD),
    ("receipt", "verify", BAD),
    ("receipt", "verify", "r.json", "--public-key", BAD),
    ("demo", "--dir", BAD),
], ids=lambda args: " ".join(a if a != BAD else "BAD" for a in args))
def test_file_names_that_are_not_utf8_are_refused(sqlite_url: str, tmp_path: Path,
                                                  args: tuple[str, ...]) -> None:
    result = invoke(*args, url=sqlite_url, cwd=tmp_path)
    one_line_usage_error(result, "not valid UTF-8")


@pytest.mark.parametrize("variable", ["SHREDSTORE_URL", "SHREDSTORE_VAULT_URL",
                                      "SHREDSTORE_RECEIPTS_DIR", "SHREDSTORE_MASTER_KEY_FILE"])
def test_environment_values_that_are_not_utf8_are_refused(tmp_path: Path, variable: str
                                                          ) -> None:
    result = invoke("erase", "c-1", env={"SHREDSTORE_URL": f"sqlite:///{tmp_path / 'e.db'}",
                                         variable: BAD})
    one_line_usage_error(result, "not valid UTF-8")


def test_a_master_key_in_the_environment_that_is_not_utf8_is_refused(filled: str) -> None:
    result = invoke("export", "c-1", url=filled, env={"SHREDSTORE_MASTER_KEY": BAD})
    one_line_usage_error(result)


@pytest.mark.parametrize(("args", "words"), [
    (("keys", "new-master", "--out", "{tmp}/missing/dir/k"), ("cannot write",)),
    (("keys", "new-signing-key", "--out", "{tmp}/missing/dir/k"), ("cannot write",)),
    (("report", "--out", "{tmp}/missing/dir/r.html"), ("cannot write",)),
    (("erase", "--from-file", "{tmp}/missing.csv"), ("cannot read",)),
    (("erase", "c-1", "--signing-key-file", "{tmp}/missing.pem"), ("cannot read",)),
    (("--master-key-file", "{tmp}/missing.key", "export", "c-1"), ()),
    (("receipt", "verify", "{tmp}/missing.json"), ("cannot read",)),
    (("demo", "--dir", "{tmp}/a-file/demo"), ("cannot use",)),
], ids=lambda item: " ".join(item) if isinstance(item, tuple) else None)
def test_paths_that_do_not_exist_are_one_line_and_exit_2(
    filled: str, tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    (tmp_path / "a-file").write_text("")
    result = invoke(*(a.format(tmp=tmp_path) for a in args), url=filled, cwd=tmp_path)
    one_line_usage_error(result, *words)
    with EventStore(filled) as store:
        assert store.subject_status("c-1").state == "active"


@pytest.mark.parametrize(("args", "words"), [
    (("receipt", "verify", "{tmp}"), ("is a directory",)),
    (("keys", "rotate-master"), ("--new-key-file",)),
    (("erase",), ("name at least one SUBJECT",)),
    (("report", "--format", "pdf"), ("--format",)),
])
def test_a_subcommands_usage_errors_are_one_line(
    sqlite_url: str, tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    result = invoke(*(a.format(tmp=tmp_path) for a in args), url=sqlite_url)
    one_line_usage_error(result, *words)


def test_a_receipts_folder_that_cannot_be_made_stops_before_any_key_is_destroyed(
    filled: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    result = invoke("erase", "c-1", "--receipts", str(tmp_path / "a-file" / "receipts"),
                    url=filled)
    one_line_usage_error(result, "cannot create")
    with EventStore(filled) as store:
        assert store.subject_status("c-1").state == "active"


def test_a_receipt_that_cannot_be_written_fails_that_request_only(
    filled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is already destroyed: the line says so, and says how to get a receipt."""
    def refuse(folder: Path, receipt: Any) -> Path:
        raise ConfigurationError(f"cannot write {folder}/x.json: No space left on device")
    monkeypatch.setattr(erasure, "write_receipt", refuse)
    result = invoke("erase", "c-1", url=filled, cwd=tmp_path)
    assert result.exit_code == 1
    assert "c-1: erased, but no receipt" in result.stdout
    assert "1 erased, 1 receipt(s) not written" in result.stdout


def test_a_batch_file_that_is_not_utf8_is_refused(filled: str, tmp_path: Path) -> None:
    requests = tmp_path / "requests.csv"
    requests.write_bytes(b"subject,reason\nc-1,\xff\xfe\n")
    one_line_usage_error(invoke("erase", "--from-file", str(requests), url=filled, cwd=tmp_path),
                         "is not UTF-8 text")
    with EventStore(filled) as store:
        assert store.subject_status("c-1").state == "active"


def test_batch_lines_with_lone_surrogates_are_reported_and_the_rest_done(
    filled: str, tmp_path: Path
) -> None:
    """JSON's \\ud800 escapes decode to text no database takes: the line is reported by number."""
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join([
        '{"subject": "c-\\ud800"}',
        '{"subject": "c-1", "reason": "Art. 17 \\udcff"}',
        '{"subject": "c-1", "request_id": "R-\\udfff"}',
        json.dumps({"subject": "c-1", "request_id": "R-1"}),
    ]) + "\n")
    result = invoke("erase", "--from-file", str(requests), url=filled, cwd=tmp_path)
    assert result.exit_code == 1
    for line, name in ((1, "subject"), (2, "reason"), (3, "request_id")):
        assert f"line {line}: {name} is not valid text" in result.stdout
    assert "1 erased, 3 invalid request(s)" in result.stdout
    with EventStore(filled) as store:
        assert store.subject_status("c-1").state == "erased"


@pytest.mark.parametrize(("raised", "code", "shown"), [
    (PermissionError(13, "Permission denied", "/srv/x"), 2, "Permission denied: /srv/x"),
    (UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"), 2, "not valid UTF-8"),
    (ConfigurationError("bad\nsetting"), 2, "bad setting"),
    (ProjectionError("a projection stopped"), 1, "a projection stopped"),
])
def test_whatever_escapes_a_command_becomes_one_line_and_an_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: Exception, code: int, shown: str
) -> None:
    """The group's handler: library, OS and Unicode errors never reach the user as a trace."""
    def fail(path: Path) -> str:
        raise raised
    monkeypatch.setattr(erasure, "generate_signing_key", fail)
    result = invoke("keys", "new-signing-key", "--out", str(tmp_path / "k.pem"))
    assert result.exit_code == code
    assert result.stderr == f"shredstore: {shown}\n" or shown in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_real_process_given_non_utf8_bytes_exits_2_with_one_line(sqlite_url: str,
                                                                   tmp_path: Path) -> None:
    """Bytes from the operating system, decoded by the interpreter itself: the console script
    answers as the in-process tests above show (which cover every parameter)."""
    EventStore(sqlite_url).close()
    script = Path(sys.executable).parent / "shredstore"
    assert script.exists(), f"no console script {script}: install the package (pip install -e .)"
    result = subprocess.run(
        [str(script), b"status", b"\xff\xfe"], capture_output=True, timeout=60, check=False,
        cwd=tmp_path, env=process_environment(SHREDSTORE_URL=sqlite_url))
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(b"shredstore: ")
    assert b"\xff" not in result.stderr + result.stdout
