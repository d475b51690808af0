"""Projections and subscriptions against real processes: killed runners, concurrent writers."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from shredstore import EventStore
from shredstore.projections.runner import CHECKPOINTS
from tests.processes import Child
from tests.projections._workers import Ledger, applied
from tests.shredding.events import Noted

WORKER = "tests.projections._workers"
WRITERS = "tests.store._process_workers"
TIMEOUT = 120.0

pytestmark = pytest.mark.processes


def ledger_state(url: str) -> tuple[int, list[int]]:
    """The projection's checkpoint and the positions it applied, as committed."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            checkpoint = conn.execute(sa.select(CHECKPOINTS.c.position)
                                      .where(CHECKPOINTS.c.name == Ledger.name)).scalar()
            positions = [p for (p,) in conn.execute(sa.select(applied.c.position))]
        return int(checkpoint or 0), positions
    finally:
        engine.dispose()


def test_a_projection_killed_mid_batch_resumes_without_double_applying(any_url: str) -> None:
    with EventStore(any_url) as store:
        for start in range(0, 200, 20):
            store.append("notes", [Noted(text=f"n{n}") for n in range(start, start + 20)])
    deadline = time.monotonic() + TIMEOUT
    child = Child(WORKER, "project", any_url, "--slow", "0.01", "--batch-size", "20")
    try:
        assert child.message(deadline) == {"ready": True}
        started = 0
        while started < 50:  # two batches committed, the third one under way
            started = child.message(deadline)["applying"]
        os.kill(child.proc.pid, signal.SIGKILL)
        lines = child.wait_exit(deadline, expect_exit=-signal.SIGKILL)
    finally:
        child.kill()
    started = max([started, *(line["applying"] for line in lines if "applying" in line)])
    checkpoint, positions = ledger_state(any_url)
    assert 40 <= checkpoint < started, "the kill did not land inside a batch"
    assert sorted(positions) == list(range(1, checkpoint + 1))  # whole batches, nothing more

    again = Child(WORKER, "project", any_url, "--catch-up")
    try:
        assert again.message(deadline) == {"ready": True}
        assert again.wait_exit(deadline)[-1] == {"stopped": 200}
    finally:
        again.kill()
    checkpoint, positions = ledger_state(any_url)
    assert checkpoint == 200
    assert sorted(positions) == list(range(1, 201))  # each event once


def test_a_runner_stops_cleanly_on_sigterm(any_url: str) -> None:
    with EventStore(any_url) as store:
        store.append("notes", [Noted(text="one")])
    deadline = time.monotonic() + TIMEOUT
    child = Child(WORKER, "project", any_url)
    try:
        assert child.message(deadline) == {"ready": True}
        assert child.message(deadline) == {"applying": 1}
        time.sleep(0.3)  # caught up: waiting for new events
        os.kill(child.proc.pid, signal.SIGTERM)
        assert child.wait_exit(deadline)[-1] == {"stopped": 1}
    finally:
        child.kill()


def test_a_subscriber_tailing_while_writer_processes_append_sees_every_event_once_in_order(
        any_url: str) -> None:
    writers, batches, size = 3, 25, 4
    total = writers * batches * size
    EventStore(any_url).close()  # the tables exist before the tail and the writers start
    deadline = time.monotonic() + TIMEOUT
    tail = Child(WORKER, "tail", any_url, "--until", str(total), "--batch-size", "7")
    started: list[Child] = [tail]
    try:
        assert tail.message(deadline) == {"ready": True}
        started += [Child(WRITERS, "batches", any_url, "--name", f"w{n}", "--batch-size",
                          str(size), "--max-batches", str(batches)) for n in range(writers)]
        for writer in started[1:]:
            writer.wait_exit(deadline)
        seen: list[list[Any]] = []
        for line in tail.wait_exit(deadline):
            seen.extend(line["got"])
    finally:
        for child in started:
            child.kill()
    assert [position for position, _, _ in seen] == list(range(1, total + 1))
    versions: dict[str, list[int]] = defaultdict(list)
    for _, stream, version in seen:
        versions[stream].append(version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
