"""The erasure commands through the real entry point, on both backends, and their bad inputs."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.erasure import LEDGER_STREAM
from tests.shredding.events import CustomerRegistered

NAME, EMAIL = "Tobias-Okapi-5150", "tobias.okapi5150@example.org"


def run(*args: str, url: str | None = None, cwd: Path | None = None,
        master: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if url is not None:
        env["SHREDSTORE_URL"] = url
    if master is not None:
        env["SHREDSTORE_MASTER_KEY_FILE"] = str(master)
    result = subprocess.run(
        [sys.executable, "-c", "from shredstore.cli import main; main()", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd, check=False,
    )
    for stream in (result.stdout, result.stderr):
        assert NAME not in stream, "personal data on screen"
        assert EMAIL not in stream, "personal data on screen"
        assert "Traceback" not in stream
    return result


@pytest.fixture
def filled(any_url: str, master_file: Path) -> str:
    with EventStore(any_url, master_key=MasterKey.from_file(master_file)) as store:
        for n in range(3):
            store.append(f"customer-{n}", [CustomerRegistered(
                customer_id=f"c-{n}", name=NAME, email=EMAIL, credit_limit=n)])
    return any_url


def test_a_dry_run_shows_what_would_be_erased_and_changes_nothing(filled: str, tmp_path: Path
                                                                  ) -> None:
    with EventStore(filled) as store:
        head = store.head()
    result = run("erase", "c-1", "--dry-run", url=filled, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "would make 1 event(s) in 1 stream(s)" in result.stdout
    assert "test.shredding.CustomerRegistered:email" in result.stdout
    with EventStore(filled) as store:
        assert store.head() == head
        assert store.subject_status("c-1").state == "active"
    assert not (tmp_path / "erasure-receipts").exists()


def test_erase_writes_a_receipt_and_the_ledger_entry(filled: str, tmp_path: Path,
                                                     master_file: Path) -> None:
    result = run("erase", "c-1", "--request-id", "REQ-1", "--reason", "Art. 17", "--json",
                 url=filled, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    answer = json.loads(line)
    assert (answer["result"], answer["events"]) == ("erased", 1)
    receipt = json.loads((tmp_path / answer["receipt"]).read_text())
    assert receipt["subject"] == "c-1"
    assert receipt["check"]["result"] == "no ciphertext of the subject opens"
    with EventStore(filled, master_key=MasterKey.from_file(master_file)) as store:
        (entry,) = store.read_stream(LEDGER_STREAM)
        assert entry.position == receipt["ledger_position"]
        (record,) = store.read_stream("customer-1")
        assert record.redacted_fields == {"name", "email"}
    again = run("erase", "c-1", url=filled, cwd=tmp_path)
    assert again.returncode == 0
    assert "already erased" in again.stdout


def test_a_batch_file_with_bad_lines_does_the_good_ones_and_reports_the_bad(
    filled: str, tmp_path: Path
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join([
        json.dumps({"subject": "c-0", "request_id": "R-0"}),
        "{not json",
        json.dumps({"request_id": "R-x"}),
        json.dumps({"subject": "c-2", "request_id": "R-2", "reason": "Art. 17"}),
        json.dumps({"subject": "never-seen"}),
    ]) + "\n")
    result = run("erase", "--from-file", str(requests), url=filled, cwd=tmp_path)
    assert result.returncode == 1
    assert "line 2: not valid JSON" in result.stdout
    assert "line 3: no subject" in result.stdout
    assert "line 5: never-seen: unknown subject" in result.stdout
    assert "2 erased, 1 failed, 2 invalid request(s)" in result.stdout
    with EventStore(filled) as store:
        assert store.subject_status("c-0").state == "erased"
        assert store.subject_status("c-2").state == "erased"
        assert store.subject_status("c-1").state == "active"
    rerun = run("erase", "--from-file", str(requests), url=filled, cwd=tmp_path)
    assert "2 already erased, 1 failed, 2 invalid request(s)" in rerun.stdout
    with EventStore(filled) as store:
        assert len(list(store.read_stream(LEDGER_STREAM))) == 2


def test_a_csv_batch_file(filled: str, tmp_path: Path) -> None:
    requests = tmp_path / "requests.csv"
    requests.write_text("subject,request_id,reason\nc-0,R-0,Art. 17\nc-1,R-1\n")
    result = run("erase", "--from-file", str(requests), url=filled, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 erased" in result.stdout
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("who,why\nc-2,x\n")
    result = run("erase", "--from-file", str(bad_header), url=filled, cwd=tmp_path)
    assert result.returncode == 2
    assert "line 1: the CSV header must name a 'subject' column" in result.stderr


def test_a_signed_receipt_verifies_and_an_edited_one_fails(filled: str, tmp_path: Path) -> None:
    key = tmp_path / "signing.pem"
    assert run("keys", "new-signing-key", "--out", str(key)).returncode == 0
    result = run("erase", "c-1", "--json", "--signing-key-file", str(key), url=filled,
                 cwd=tmp_path)
    path = tmp_path / json.loads(result.stdout)["receipt"]
    checked = run("receipt", "verify", str(path), "--public-key", str(key))
    assert checked.returncode == 0, checked.stderr
    assert "signature valid" in checked.stdout
    data = json.loads(path.read_text())
    data["held"]["events"] = 0
    path.write_text(json.dumps(data))
    edited = run("receipt", "verify", str(path), "--public-key", str(key))
    assert edited.returncode == 1
    assert "altered" in edited.stderr


def test_status_and_unknown_subjects(filled: str, tmp_path: Path) -> None:
    result = run("status", "c-1", url=filled)
    assert result.returncode == 0
    assert "c-1: active" in result.stdout
    unknown = run("status", "nobody", url=filled)
    assert unknown.returncode == 1
    assert "unknown subject" in unknown.stderr
    erased = run("erase", "nobody", url=filled, cwd=tmp_path)
    assert erased.returncode == 1
    allowed = run("erase", "nobody", "--allow-unknown", url=filled, cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--url", "nonsense://x", "status", "a"), "unsupported database"),
    (("--url", "not a url", "status", "a"), ""),
    (("--url", "postgresql+psycopg://nobody@127.0.0.1:1/none", "status", "a"), "cannot"),
])
def test_bad_urls_get_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_a_store_never_initialised_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = run("erase", "c-1", url=url, cwd=tmp_path)
    assert result.returncode == 2
    assert "run `shredstore init` first" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_wrong_master_key_is_refused(filled: str, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text(MasterKey.generate().to_base64())
    wrong.chmod(0o600)
    result = run("verify", url=filled, master=wrong)
    assert result.returncode == 2
    assert "master key" in result.stderr
    missing = run("verify", url=filled, master=tmp_path / "missing.key")
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1


def test_rotate_master_rewraps_every_key_and_the_old_key_stops_working(
    filled: str, tmp_path: Path, master_file: Path
) -> None:
    """`keys new-master` then `keys rotate-master`: the data opens with the new key only."""
    new_file = tmp_path / "new.key"
    created = run("keys", "new-master", "--out", str(new_file))
    assert created.returncode == 0, created.stderr
    assert new_file.stat().st_mode & 0o777 == 0o600
    assert run("keys", "new-master", "--out", str(new_file)).returncode == 2  # never overwrites

    result = run("keys", "rotate-master", "--new-key-file", str(new_file), url=filled,
                 master=master_file)
    assert result.returncode == 0, result.stderr
    assert "3 subject key(s) re-wrapped" in result.stdout
    assert "re-wrapping keys: 3/3" in result.stderr  # progress, as lines when not a terminal

    with EventStore(filled, master_key=MasterKey.from_file(new_file)) as store:
        assert [rec.event.name for rec in store.read_all()] == [NAME] * 3  # type: ignore[attr-defined]
    old = run("erase", "c-1", url=filled, master=master_file, cwd=tmp_path)
    assert old.returncode == 2
    assert "master key" in old.stderr
    again = run("keys", "rotate-master", "--new-key-file", str(new_file), url=filled,
                master=new_file)
    assert again.returncode == 2
    assert "the new master key is the one in use" in again.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("keys", "rotate-master", "--new-key-file", "missing.key"), "missing.key"),
    (("keys", "rotate-master"), "--new-key-file"),
])
def test_rotate_master_bad_input(filled: str, tmp_path: Path, master_file: Path,
                                 args: tuple[str, ...], message: str) -> None:
    result = run(*args, url=filled, master=master_file, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_rotate_master_needs_the_current_key(filled: str, tmp_path: Path) -> None:
    new_file = tmp_path / "new.key"
    assert run("keys", "new-master", "--out", str(new_file)).returncode == 0
    result = run("keys", "rotate-master", "--new-key-file", str(new_file), url=filled)
    assert result.returncode == 2
    assert "needs the master key" in result.stderr


def on_terminal(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the CLI with its stderr on a pseudo-terminal; the result and what was drawn there."""
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-c", "from shredstore.cli import main; main()", *args],
            stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120, check=False,
            cwd=cwd, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "xterm",
                          "COLUMNS": "100"})
        os.close(follower)
        drawn = b""
        while select.select([leader], [], [], 0.5)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    return result, drawn.decode(errors="replace")


def test_rotate_master_shows_a_progress_bar_on_a_terminal(tmp_path: Path, master_file: Path
                                                          ) -> None:
    """On an interactive stderr the rotation draws a rich progress bar, not log lines."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with EventStore(url, master_key=MasterKey.from_file(master_file)) as store, \
            store.vault.keyring() as ring:
        ring.prepare([f"c-{n}" for n in range(1200)])  # keys, no events needed
    new_file = tmp_path / "new.key"
    MasterKey.generate().to_file(new_file)
    result, screen = on_terminal("--url", url, "--master-key-file", str(master_file), "keys",
                                 "rotate-master", "--new-key-file", str(new_file), cwd=tmp_path)
    assert result.returncode == 0
    assert "1200 subject key(s) re-wrapped" in result.stdout
    assert "re-wrapping keys" in screen
    assert "\x1b[" in screen  # drawn with terminal control codes
    assert "re-wrapping keys: " not in screen


def test_a_batch_erasure_shows_a_progress_bar_on_a_terminal(filled: str, tmp_path: Path,
                                                             master_file: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(f'{{"subject": "c-{n}"}}\n' for n in range(3)))
    result, screen = on_terminal("--url", filled, "--master-key-file", str(master_file),
                                 "erase", "--from-file", str(requests), cwd=tmp_path)
    assert result.returncode == 0
    assert "3 erased" in result.stdout
    assert "erasing" in screen
    assert "\x1b[" in screen
