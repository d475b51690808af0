"""`shredstore sagas list|show|resume|cancel`, in process: states from the stored steps alone,
personal fields masked unless revealed (and the reveal recorded), operators' requests applied
once by a runner; on every backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.sagas import SagaRunner
from tests.cli.runner import shredstore
from tests.sagas.test_orchestration import (
    Charged,
    Fulfilment,
    Ordered,
    RefundRefused,
    ShipRefused,
    later,
    reply,
)
from tests.sagas.test_process import Checkout, OrderPlaced


@pytest.fixture
def master_file(tmp_path: Path) -> Path:
    path = tmp_path / "master.key"
    path.write_text(MasterKey.generate().to_base64())
    path.chmod(0o600)
    return path


@pytest.fixture
def store(any_url: str, master_file: Path) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.from_base64(master_file.read_text())) as opened:
        yield opened


def failed_fulfilment(store: EventStore, runner: SagaRunner) -> None:
    """Order 7's fulfilment, left failed: shipping refused, then the refund refused."""
    reply(store, runner, Ordered(order_id="7", amount=5), "orders")
    reply(store, runner, Charged(order_id="7"))
    for _ in range(3):
        reply(store, runner, ShipRefused(order_id="7"))
        runner.fire_due(now=later(3600))
    for _ in range(2):
        reply(store, runner, RefundRefused(order_id="7"))
        runner.fire_due(now=later(3600))


def test_list_and_show_without_the_applications_classes(
        store: EventStore, any_url: str, master_file: Path) -> None:
    runner = SagaRunner(store, [Fulfilment, Checkout])
    failed_fulfilment(store, runner)
    store.append("order-9", [OrderPlaced(order_id="9", customer_id="c-9",
                                         email="nine@example.org", amount=1)])
    runner.catch_up()
    listed = shredstore("sagas", "list", "--json", url=any_url)
    assert listed.returncode == 0, listed.stderr
    states = {entry["saga"]: entry["state"] for entry in map(json.loads,
                                                             listed.stdout.splitlines())}
    assert states == {"testfulfilment-7": "failed", "testcheckout-9": "running"}
    failed = shredstore("sagas", "list", "--state", "failed", url=any_url)
    assert failed.stdout.startswith("testfulfilment-7")
    assert "testcheckout" not in failed.stdout
    masked = shredstore("sagas", "show", "testcheckout-9", url=any_url)
    assert masked.returncode == 0, masked.stderr
    assert "nine@example.org" not in masked.stdout
    assert "state.email = \u2022\u2022\u2022\u2022" in masked.stdout
    revealed = shredstore("sagas", "show", "testcheckout-9", "--reveal", "--json",
                          "--purpose", "support ticket 12", url=any_url, master=master_file)
    assert revealed.returncode == 0, revealed.stderr
    shown = json.loads(revealed.stdout)
    assert shown["personal"]["state.email"] == {"state": "held", "value": "nine@example.org"}
    assert shown["state"] == "running"
    access = list(store.read_stream("$access"))
    assert access[-1].event.kind == "saga"
    assert access[-1].event.purpose == "support ticket 12"
    store.erase_subject("c-9")
    erased = json.loads(shredstore("sagas", "show", "testcheckout-9", "--json",
                                   url=any_url).stdout)
    assert erased["personal"]["state.email"]["state"] == "erased"


def test_resume_and_cancel_are_requests_a_runner_applies_once(
        store: EventStore, any_url: str) -> None:
    runner = SagaRunner(store, [Fulfilment])
    failed_fulfilment(store, runner)
    refused = shredstore("sagas", "cancel", "testfulfilment-8", url=any_url)
    assert (refused.returncode, refused.stderr.strip()) == (
        1, "shredstore: no saga 'testfulfilment-8'")
    asked = shredstore("sagas", "resume", "testfulfilment-7", "--json", url=any_url)
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["requested"] == "resume"
    assert runner.catch_up() == 1
    assert runner.catch_up() == 0  # applied once
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert view.status == "running"
    again = shredstore("sagas", "resume", "testfulfilment-7", url=any_url)
    assert again.returncode == 1
    assert "only a failed saga can be resumed" in again.stderr
    cancelled = shredstore("sagas", "cancel", "testfulfilment-7", url=any_url)
    assert cancelled.returncode == 0, cancelled.stderr
    runner.catch_up()
    view = runner.load(Fulfilment, "7")
    assert view is not None
    assert view.status == "cancelled"


@pytest.mark.parametrize("args", [("sagas", "show", "nodash"),
                                  ("sagas", "show", "x-1", "--purpose", "why")],
                         ids=["not NAME-ID", "purpose without reveal"])
def test_usage_errors_exit_2(any_url: str, args: tuple[str, ...]) -> None:
    EventStore(any_url).close()
    ran = shredstore(*args, url=any_url)
    assert ran.returncode == 2
    assert ran.stderr.startswith("shredstore: ")


def test_the_audit_report_counts_sagas_by_state(store: EventStore, any_url: str,
                                                 tmp_path: Path) -> None:
    runner = SagaRunner(store, [Fulfilment, Checkout])
    failed_fulfilment(store, runner)
    store.append("order-9", [OrderPlaced(order_id="9", customer_id="c-9",
                                         email="nine@example.org", amount=1)])
    runner.catch_up()
    out = tmp_path / "report.json"
    ran = shredstore("report", "--format", "json", "--out", str(out), url=any_url)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(out.read_text())
    assert report["summary"]["sagas"] == {"failed": 1, "running": 1}
    steps = [e for e in report["events"] if e["stream"] == "saga-testcheckout-9"]
    assert steps
    assert "nine@example.org" not in out.read_text()
