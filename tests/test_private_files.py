"""Files that may hold personal data are private, and a receipt is never seen half written.

Exports, revealing reports and erasure receipts are created mode 0600 whatever the umask, and
only appear under their final name once complete.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyvault import MasterKey
from shredstore import ConfigurationError, EventStore, erasure
from shredstore.cli import cli
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
