"""The erasure commands in-process, on both backends, and their bad inputs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import sqlite3
import threading
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.cli import cli
from shredstore.erasure import LEDGER_STREAM
from tests.cli.runner import Ran, shredstore
from tests.shredding.events import CustomerRegistered

NAME, EMAIL = "Tobias-Okapi-5150", "tobias.okapi5150@example.org"


def run(*args: str, url: str | None = None, cwd: Path | None = None,
        master: Path | None = None) -> Ran:
    """The command line in this process; no personal data on screen, and no traceback."""
    result = shredstore(*args, url=url, master=master, cwd=cwd)
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


def test_a_dry_run_of_an_erased_subject_says_when_it_was_erased_and_that_nothing_is_left(
        filled: str, tmp_path: Path) -> None:
    """Not "would make N event(s) read as redacted", as if its erasure were pending."""
    assert run("erase", "c-2", "--request-id", "REQ-2", url=filled, cwd=tmp_path).returncode == 0
    with EventStore(filled) as store:
        erased_at = store.subject_status("c-2").erased_at
    assert erased_at is not None
    dry = run("erase", "c-2", "c-1", "--dry-run", url=filled, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == (f"c-2: already erased at {erased_at.isoformat()} (request REQ-2); "
                        "nothing to do")
    assert lines[1].startswith("c-1: active; would make 1 event(s) in 1 stream(s)")
    assert lines[-1] == "1 already erased, 1 would erase"
    answers = [json.loads(line) for line in run(
        "erase", "c-2", "c-1", "--dry-run", "--json", url=filled, cwd=tmp_path).stdout.splitlines()]
    assert [(a["subject"], a["result"], a["state"], a["erased_at"], a["erasure_request_id"])
            for a in answers] == [("c-2", "dry run", "erased", erased_at.isoformat(), "REQ-2"),
                                  ("c-1", "dry run", "active", None, None)]


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


@pytest.mark.parametrize(("name", "text", "first"), [
    ("requests.csv", "subject,request_id\r\nc-1,R-1\r\nc-2,R-2\r\n", 2),  # as Excel saves
    ("requests.jsonl", '{"subject": "c-1"}\n{"subject": "c-2"}\n', 1),
    ("requests.txt", '{"subject": "c-1"}\n{"subject": "c-2"}\n', 1),  # JSON lines by content
])
def test_a_batch_file_with_a_byte_order_mark_reads_as_without_one(
        filled: str, tmp_path: Path, name: str, text: str, first: int) -> None:
    """A UTF-8 byte-order mark, as spreadsheet programs write, is no part of the header or of
    the first request."""
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = run("erase", "--from-file", name, "--dry-run", url=filled, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(";")[0] for line in result.stdout.splitlines()
            if line.startswith("line ")] == [
        f"line {first}: c-1: active", f"line {first + 1}: c-2: active"]


@pytest.mark.parametrize(("name", "content", "why"), [
    ("requests.csv", b"", "the file is empty"),
    ("requests.csv", b"\xef\xbb\xbf", "the file is empty"),
    ("requests.csv", b"\n\n  \n", "the file is blank lines only"),
    ("requests.csv", b"subject,request_id,reason\n", "a header and no row under it"),
    ("requests.csv", b"\xef\xbb\xbfsubject\r\n\r\n,\r\n", "a header and no row under it"),
    ("requests.csv", b",,\n,\n", "no header, no row"),
    ("requests.jsonl", b"\n\n", "the file is blank lines only"),
])
def test_a_batch_file_without_requests_is_a_usage_error(
        filled: str, tmp_path: Path, name: str, content: bytes, why: str) -> None:
    """Exit 2 and one line saying the file holds no requests, rather than an empty batch that
    does nothing, or a complaint about the command line."""
    (tmp_path / name).write_bytes(content)
    result = run("erase", "--from-file", name, url=filled, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"shredstore: {name} holds no requests: {why}\n"


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


def on_terminal(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Ran, str]:
    """The command line in this process with its stderr on a pseudo-terminal (stdout
    captured); the result and what was drawn on the terminal."""
    for name in [name for name in os.environ if name.startswith("SHREDSTORE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "100")
    leader, follower = pty.openpty()
    drawn = bytearray()

    def pump() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    out = io.StringIO()
    try:
        with open(follower, "w", encoding="utf-8") as terminal, contextlib.chdir(cwd), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(terminal):
            assert terminal.isatty()
            try:
                cli.main(list(args), prog_name="shredstore")
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
            else:
                code = 0
        reader.join(timeout=10)
    finally:
        os.close(leader)
    return Ran(code, out.getvalue(), ""), drawn.decode(errors="replace")


def test_rotate_master_shows_a_progress_bar_on_a_terminal(
    tmp_path: Path, master_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an interactive stderr the rotation draws a rich progress bar, not log lines."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with EventStore(url, master_key=MasterKey.from_file(master_file)) as store, \
            store.vault.keyring() as ring:
        ring.prepare([f"c-{n}" for n in range(1200)])  # keys, no events needed
    new_file = tmp_path / "new.key"
    MasterKey.generate().to_file(new_file)
    result, screen = on_terminal("--url", url, "--master-key-file", str(master_file), "keys",
                                 "rotate-master", "--new-key-file", str(new_file), cwd=tmp_path,
                                 monkeypatch=monkeypatch)
    assert result.returncode == 0
    assert "1200 subject key(s) re-wrapped" in result.stdout
    assert "re-wrapping keys" in screen
    assert "\x1b[" in screen  # drawn with terminal control codes
    assert "re-wrapping keys: " not in screen


def test_a_batch_erasure_shows_a_progress_bar_on_a_terminal(
    filled: str, tmp_path: Path, master_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(f'{{"subject": "c-{n}"}}\n' for n in range(3)))
    result, screen = on_terminal("--url", filled, "--master-key-file", str(master_file),
                                 "erase", "--from-file", str(requests), cwd=tmp_path,
                                 monkeypatch=monkeypatch)
    assert result.returncode == 0
    assert "3 erased" in result.stdout
    assert "erasing" in screen
    assert "\x1b[" in screen


def test_erase_says_whether_the_key_bytes_were_scrubbed(filled: str, tmp_path: Path) -> None:
    """The line and the JSON say what the receipt says under key.scrubbed: a warning naming
    `shredstore scrub` when the destroyed key's bytes may still be in the database files."""
    result = run("erase", "c-0", "--json", url=filled, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    receipt = json.loads((tmp_path / answer["receipt"]).read_text())
    assert answer["scrubbed"] is receipt["key"]["scrubbed"]
    assert answer["scrubbed"] in (True, False)
    if filled.startswith("sqlite"):  # no other connection: the checkpoint completes
        assert answer["scrubbed"] is True
    line = run("erase", "c-1", url=filled, cwd=tmp_path).stdout
    warning = ("key bytes NOT yet scrubbed from the database files: run `shredstore scrub`")
    assert ("key bytes scrubbed;" in line) is not (warning in line)
    again = run("erase", "c-1", "--json", url=filled, cwd=tmp_path)
    assert json.loads(again.stdout)["scrubbed"] is None  # an earlier erasure: not known
    assert "scrubbed" not in run("erase", "c-1", url=filled, cwd=tmp_path).stdout


def test_erase_warns_when_a_reader_keeps_the_key_bytes_in_the_files(tmp_path: Path,
                                                                    master_file: Path) -> None:
    """SQLite: a connection holding an old snapshot keeps the WAL (with the destroyed key's
    bytes) from being checkpointed; the erasure is done, and its line says what to run.

    The erasure waits for the reader a bounded while (2 s), then says so; `shredstore scrub`
    completes once the reader is gone."""
    url, vault = f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "vault.db"
    with EventStore(url, vault_url=f"sqlite:///{vault}",
                    master_key=MasterKey.from_file(master_file)) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id="c-1", name=NAME, email=EMAIL, credit_limit=1)])
    reader = sqlite3.connect(vault, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_master").fetchall()  # holds a snapshot
        result = run("--vault-url", f"sqlite:///{vault}", "erase", "c-1", url=url,
                     cwd=tmp_path)
    finally:
        reader.close()
    assert result.returncode == 0, result.stderr
    line = result.stdout.splitlines()[0]
    assert line.startswith("c-1: erased;")
    assert "; key bytes NOT yet scrubbed from the database files: run `shredstore scrub`; " \
        "receipt " in line
    receipt = json.loads((tmp_path / line.rsplit("receipt ", 1)[1]).read_text())
    assert receipt["key"]["scrubbed"] is False
    scrubbed = run("--vault-url", f"sqlite:///{vault}", "scrub", url=url, cwd=tmp_path)
    assert scrubbed.returncode == 0, scrubbed.stdout + scrubbed.stderr
    assert scrubbed.stdout.splitlines()[-1].startswith("scrub complete")
    assert any(line.startswith("vault (sqlite): keyvault_subjects")
               for line in scrubbed.stdout.splitlines())


def test_scrub_says_when_it_cannot_complete_and_exits_1(tmp_path: Path,
                                                        master_file: Path) -> None:
    """A reader holding a snapshot keeps the WAL from being checkpointed: scrub says so, in
    text and JSON, and exits 1."""
    url, folder = f"sqlite:///{tmp_path / 'events.db'}", tmp_path
    reader = sqlite3.connect(folder / "events.db", isolation_level=None)
    try:
        with EventStore(url, master_key=MasterKey.from_file(master_file)) as store:
            store.append("customer-1", [CustomerRegistered(
                customer_id="c-1", name=NAME, email=EMAIL, credit_limit=1)])
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchall()  # a snapshot
            store.erase_subject("c-1")  # its key's old page stays in the WAL
        text = run("scrub", "--wait", "0.2", url=url, cwd=tmp_path)
        as_json = run("scrub", "--wait", "0.2", "--json", url=url, cwd=tmp_path)
    finally:
        reader.close()
    assert text.returncode == 1, text.stderr
    assert "scrub NOT complete" in text.stdout.splitlines()[-1]
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["complete"] is False


def test_status_says_when_the_vault_disagrees_with_the_ledger(tmp_path: Path,
                                                             master_file: Path) -> None:
    """After a vault restored from a backup: the ledger says erased, the vault holds the key
    again (or has no tombstone); status says so, names `shredstore reconcile`, and exits 1."""
    url, vault = f"sqlite:///{tmp_path / 'events.db'}", tmp_path / "vault.db"
    master = MasterKey.from_file(master_file)
    with EventStore(url, vault_url=f"sqlite:///{vault}", master_key=master) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id="c-1", name=NAME, email=EMAIL, credit_limit=1)])
    assert not Path(f"{vault}-wal").exists()  # closed: the file holds the whole vault
    backup = vault.read_bytes()
    with EventStore(url, vault_url=f"sqlite:///{vault}", master_key=master) as store:
        store.append("customer-2", [CustomerRegistered(
            customer_id="c-2", name=NAME, email=EMAIL, credit_limit=2)])
    for subject in ("c-1", "c-2"):
        assert run("--vault-url", f"sqlite:///{vault}", "erase", subject, url=url,
                   cwd=tmp_path).returncode == 0
    vault.write_bytes(backup)  # the restore

    for subject, vault_says in (("c-1", "holds its key again"), ("c-2", "has no tombstone")):
        result = run("--vault-url", f"sqlite:///{vault}", "status", subject, url=url)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stdout.startswith(f"{subject}: erased\n")
        (line,) = result.stderr.splitlines()
        assert f"the vault {vault_says}" in line
        assert line.endswith("run `shredstore reconcile`")
    assert run("--vault-url", f"sqlite:///{vault}", "reconcile", url=url).returncode == 0
    for subject in ("c-1", "c-2"):
        result = run("--vault-url", f"sqlite:///{vault}", "status", subject, url=url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{subject}: erased\n")


def test_start_line_skips_the_requests_before_it(filled: str, tmp_path: Path) -> None:
    """How a stopped batch is resumed: the file's requests before the line are not done."""
    requests = tmp_path / "requests.csv"
    requests.write_text("subject\nc-0\nc-1\nc-2\n")
    result = run("erase", "--from-file", str(requests), "--start-line", "3", url=filled,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line.split(";")[0] for line in result.stdout.splitlines()] == [
        "line 3: c-1: erased", "line 4: c-2: erased", "2 erased"]
    with EventStore(filled) as store:
        assert store.subject_status("c-0").state == "active"
    alone = run("erase", "c-0", "--start-line", "3", url=filled, cwd=tmp_path)
    assert alone.returncode == 2
    assert "--start-line needs --from-file" in alone.stderr
    past = run("erase", "--from-file", str(requests), "--start-line", "9", url=filled,
               cwd=tmp_path)
    assert past.returncode == 2
    assert "holds no request from line 9 on (its last is line 4)" in past.stderr
