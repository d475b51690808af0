"""Crypto-shredding with real operating-system processes: an erasure reaches a running reader.

The child runs tests/shredding/_process_workers.py (``python -m tests.shredding._process_workers
URL``), an `EventStore` driven by JSON commands on stdin and answering on stdout; see that
module for the protocol. The parent hands it the master key as base64 on stdin.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from keyvault import MasterKey
from shredstore import EventStore
from tests.shredding._process_workers import SHOWN_REDACTED
from tests.shredding.events import ERASED_EMAIL, CustomerRegistered

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the child runs ``python -m tests.shredding._process_workers`` here."""

WORKER = "tests.shredding._process_workers"
TIMEOUT = 60.0
"""The longest the test waits for its child, in seconds."""


class Child:
    """A store process; its stdout lines and stderr are collected by background threads."""

    def __init__(self, url: str, master: MasterKey, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER, url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump_stdout, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(self.proc.stderr,), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()
        self.send(master.to_base64())

    def _pump_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self, stream: IO[str]) -> None:
        self._stderr.extend(stream)

    def describe(self) -> str:
        return (f"child {self.name} (pid {self.proc.pid}, exit {self.proc.poll()}), "
                f"stderr:\n{''.join(self._stderr)}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def message(self, deadline: float) -> dict[str, Any]:
        """The next line the child printed, waiting until `deadline` at most."""
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"timed out waiting for a line from {self.describe()}")
        if line is None:
            self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            for pump in self._pumps:
                pump.join(timeout=5)
            pytest.fail(f"unexpected end of output from {self.describe()}")
        parsed: dict[str, Any] = json.loads(line)
        # Every answer comes from the process started here: never a restarted one.
        assert parsed["pid"] == self.proc.pid, self.describe()
        return parsed

    def ask(self, command: dict[str, Any], deadline: float) -> dict[str, Any]:
        self.send(json.dumps(command))
        reply = self.message(deadline)
        assert reply.get("op") == command["op"], self.describe()
        return reply

    def finish(self, deadline: float) -> None:
        """Tell the child to exit, and check that it exits cleanly."""
        self.send(json.dumps({"op": "exit"}))
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"timed out waiting for {self.describe()} to exit")
        for pump in self._pumps:
            pump.join(timeout=max(1.0, deadline - time.monotonic()))
        assert self.proc.returncode == 0, self.describe()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.processes
def test_an_erasure_reaches_a_running_reader_at_once(any_url: str) -> None:
    """A reader process that read and cached a subject's key reads its fields redacted on
    its very next read after another process erased the subject; other subjects still read."""
    deadline = time.monotonic() + TIMEOUT
    master = MasterKey.generate()
    erased_subject, kept_subject = "subject-erased", "subject-kept"
    with EventStore(any_url, master_key=master) as store:
        store.append("customers", [
            CustomerRegistered(customer_id=erased_subject, name="Reader Test One",
                               email="one@example.org", credit_limit=10),
            CustomerRegistered(customer_id=kept_subject, name="Reader Test Two",
                               email="two@example.org", credit_limit=20),
        ])
        reader = Child(any_url, master, "reader")
        try:
            assert reader.message(deadline).get("ready") is True, reader.describe()
            pid = reader.proc.pid
            reading = {"op": "read", "stream": "customers"}
            plain = [
                {"type": "test.shredding.CustomerRegistered",
                 "fields": {"customer_id": erased_subject, "name": "Reader Test One",
                            "email": "one@example.org", "credit_limit": 10},
                 "redacted": []},
                {"type": "test.shredding.CustomerRegistered",
                 "fields": {"customer_id": kept_subject, "name": "Reader Test Two",
                            "email": "two@example.org", "credit_limit": 20},
                 "redacted": []},
            ]
            assert reader.ask(reading, deadline)["events"] == plain
            assert reader.ask({"op": "cached", "subject": erased_subject}, deadline)["cached"]

            erased = store.erase_subject(erased_subject, reason="process test")
            assert (erased.already_erased, erased.held_key) == (False, True)

            # The same process, alive throughout, with the key in its cache until now.
            assert reader.proc.poll() is None
            assert reader.proc.pid == pid
            assert reader.ask(reading, deadline)["events"] == [
                {"type": "test.shredding.CustomerRegistered",
                 "fields": {"customer_id": erased_subject, "name": SHOWN_REDACTED,
                            "email": ERASED_EMAIL, "credit_limit": 10},
                 "redacted": ["email", "name"]},
                plain[1],
            ]
            assert reader.ask({"op": "cached", "subject": erased_subject}, deadline)[
                "cached"] is False
            assert reader.ask({"op": "cached", "subject": kept_subject}, deadline)["cached"]
            reader.finish(deadline)
        finally:
            reader.kill()
