"""Files that may hold personal data are private, and a receipt is never seen half written.

Exports, revealing reports, erasure receipts and signing keys are written by one writer
(`shredstore.files`): created mode 0600 whatever the umask, and only under their final name
once complete; a failure on the way leaves no temporary file and the old file as it was.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyvault import MasterKey
from shredstore import ConfigurationError, EventStore, erasure, files
from shredstore.cli import cli
from shredstore.files import private_file, write_private
from tests.shredding.events import CustomerRegistered


@pytest.fixture(params=[0o000, 0o022, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process's umask for the test (restored afterwards)."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_exports_reports_and_receipts_are_private_whatever_the_umask(
    any_url: str, master_file: Path, tmp_path: Path, umask: int,
) -> None:
    """`export --out`, `report --reveal --out` and receipts are 0600 under any umask, and no
    temporary file is left beside them."""
    with EventStore(any_url, master_key=MasterKey.from_file(master_file)) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id="c-1", name="Opal Private", email="opal@example.org", credit_limit=1)])
        store.append("customer-2", [CustomerRegistered(
            customer_id="c-2", name="Ivo Private", email="ivo@example.org", credit_limit=2)])
    common = ["--url", any_url, "--master-key-file", str(master_file)]
    runner = CliRunner()
    out = tmp_path / "out"
    out.mkdir()
    export = runner.invoke(cli, [*common, "export", "c-1", "--out", str(out / "c-1.json")])
    assert export.exit_code == 0, export.output
    report = runner.invoke(cli, [*common, "report", "--reveal", "--purpose", "audit",
                                 "--format", "json", "--out", str(out / "report.json")])
    assert report.exit_code == 0, report.output
    receipts = tmp_path / "receipts"
    erased = runner.invoke(cli, [*common, "erase", "c-2", "--receipts", str(receipts)])
    assert erased.exit_code == 0, erased.output
    (receipt,) = receipts.iterdir()
    assert {path.name: mode(path) for path in (*out.iterdir(), receipt)} == {
        "c-1.json": 0o600, "report.json": 0o600, receipt.name: 0o600}


def test_an_output_file_replaced_keeps_no_wider_mode(any_url: str, master_file: Path,
                                                     tmp_path: Path) -> None:
    """An export written over an existing, world-readable file leaves a 0600 file."""
    with EventStore(any_url, master_key=MasterKey.from_file(master_file)) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id="c-1", name="Opal Private", email="opal@example.org", credit_limit=1)])
    target = tmp_path / "c-1.json"
    target.write_text("old")
    target.chmod(0o644)
    result = CliRunner().invoke(cli, ["--url", any_url, "--master-key-file", str(master_file),
                                      "export", "c-1", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert mode(target) == 0o600
    assert "Opal Private" in target.read_text()


def test_a_receipt_that_cannot_be_linked_into_place_leaves_nothing(
    any_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receipt is written whole under a temporary name, then linked to its final name: if
    that fails (a full disk, say), neither a partial receipt nor the temporary file stays."""
    with EventStore(any_url, master_key=MasterKey.generate()) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id="c-1", name="Opal Private", email="opal@example.org", credit_limit=1)])
        receipt = store.erase_subject("c-1", request_id="REQ-1")

    def full(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", full)
    folder = tmp_path / "receipts"
    with pytest.raises(ConfigurationError, match="No space left"):
        erasure.write_receipt(folder, receipt)
    assert list(folder.iterdir()) == []


# The writer itself


def test_the_writer_creates_0600_files_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    """New files, text or bytes, and a file written over a world-readable one are 0600."""
    write_private(tmp_path / "new.bin", b"secret")
    with private_file(tmp_path / "new.txt") as out:
        out.write("secret")
    old = tmp_path / "old.txt"
    old.write_text("old")
    old.chmod(0o644)
    write_private(old, b"new")
    assert {path.name: mode(path) for path in tmp_path.iterdir()} == {
        "new.bin": 0o600, "new.txt": 0o600, "old.txt": 0o600}
    assert (old.read_text(), (tmp_path / "new.txt").read_text()) == ("new", "secret")


def test_while_written_the_data_is_in_a_private_temporary_not_under_the_name(
    tmp_path: Path,
) -> None:
    """Even with umask 0, the temporary file holding the data is 0600 from its first byte, and
    the target name does not exist until the write is complete."""
    target = tmp_path / "export.json"
    previous = os.umask(0)
    try:
        with private_file(target) as out:
            out.write("half")
            out.flush()
            (partial,) = tmp_path.iterdir()
            assert partial.name.startswith(".export.json.")
            assert mode(partial) == 0o600
            assert not target.exists()
    finally:
        os.umask(previous)
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_text() == "half"


def test_a_failure_in_the_middle_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    """An error while writing (here, in the caller's block) leaves the old file untouched and
    removes the temporary."""
    target = tmp_path / "report.html"
    target.write_text("old")

    def stopped_half_way() -> None:
        with private_file(target) as out:
            out.write("half a report")
            raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        stopped_half_way()
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_text() == "old"


def test_a_full_disk_or_a_failed_sync_leaves_nothing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that stops half way (a full disk) or a sync that fails raises OSError and leaves
    neither the file nor the temporary."""
    written: list[int] = []
    write = os.write

    def half_then_full(descriptor: int, data: memoryview) -> int:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(write(descriptor, data[:3]))
        return written[0]

    target = tmp_path / "receipt.json"
    with monkeypatch.context() as patched:
        patched.setattr(files.os, "write", half_then_full)
        with pytest.raises(OSError, match="No space left"):
            write_private(target, b"a whole receipt")
    assert written == [3]
    assert list(tmp_path.iterdir()) == []

    def failed_sync(descriptor: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", failed_sync)
    with pytest.raises(OSError, match="Input/output"):
        write_private(target, b"a whole receipt")
    assert list(tmp_path.iterdir()) == []


def test_without_replace_an_existing_file_is_never_touched(tmp_path: Path) -> None:
    """replace=False raises FileExistsError for a taken name; the file there keeps its content
    and mode, and no temporary is left."""
    taken = tmp_path / "key.pem"
    taken.write_bytes(b"the old key")
    taken.chmod(0o640)
    with pytest.raises(FileExistsError):
        write_private(taken, b"a new key", replace=False)
    assert list(tmp_path.iterdir()) == [taken]
    assert (taken.read_bytes(), mode(taken)) == (b"the old key", 0o640)
    write_private(tmp_path / "free.pem", b"a new key", replace=False)
    assert mode(tmp_path / "free.pem") == 0o600
