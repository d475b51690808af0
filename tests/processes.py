"""Child processes for the tests that need real ones: started as ``python -m MODULE``.

Each child prints one JSON object per line; background threads collect its stdout and stderr,
so a test can wait for a line with a deadline and never blocks on a full pipe.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: children run ``python -m tests...`` from here."""


class Child:
    """A worker process whose stdout lines and stderr are collected by background threads."""

    check_pid = False
    """Whether every line must carry the child's pid (proof it was never restarted)."""

    def __init__(self, module: str, *args: str, name: str | None = None) -> None:
        self.name = name or (args[0] if args else module)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
        """The next complete line the child printed, waiting until `deadline` at most."""
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
        if self.check_pid:
            assert parsed["pid"] == self.proc.pid, self.describe()
        return parsed

    def wait_exit(self, deadline: float, *, expect_exit: int | None = 0) -> list[dict[str, Any]]:
        """Wait for the child to exit; every complete line it printed and was not read yet.

        A last line cut off by a kill (no newline) is not a message and is left out.
        """
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"timed out waiting for {self.describe()} to exit")
        for pump in self._pumps:
            pump.join(timeout=max(1.0, deadline - time.monotonic()))
        lines: list[str] = []
        while (line := self._lines.get_nowait()) is not None:
            lines.append(line)
        if expect_exit is not None:
            assert self.proc.returncode == expect_exit, self.describe()
        return [json.loads(line) for line in lines if line.endswith("\n")]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class CommandChild(Child):
    """A child that reads a secret line first, then answers JSON commands one by one."""

    check_pid = True

    def __init__(self, module: str, *args: str, secret: str, name: str) -> None:
        super().__init__(module, *args, name=name)
        self.send(secret)  # on stdin, so it never shows in a process listing

    def submit(self, command: dict[str, Any]) -> None:
        self.send(json.dumps(command))

    def answer(self, command: dict[str, Any], deadline: float) -> dict[str, Any]:
        """The child's answer to `command`, submitted before."""
        reply = self.message(deadline)
        assert reply.get("op") == command["op"], (reply, self.describe())
        return reply

    def ask(self, command: dict[str, Any], deadline: float) -> dict[str, Any]:
        self.submit(command)
        return self.answer(command, deadline)

    def finish(self, deadline: float) -> None:
        """Tell the child to exit, and check that it exits cleanly."""
        self.submit({"op": "exit"})
        self.wait_exit(deadline)


def release(
    orders: Sequence[tuple[CommandChild, dict[str, Any]]], deadline: float
) -> list[dict[str, Any]]:
    """Arm every child with its command, then let them all go at once; their answers in order."""
    for child, command in orders:
        child.submit({**command, "barrier": True})
    for child, _ in orders:
        assert child.message(deadline).get("armed") is True, child.describe()
    for child, _ in orders:
        child.send("go")
    return [child.answer(command, deadline) for child, command in orders]


# The child's side of a CommandChild

T = TypeVar("T")


def emit(message: Mapping[str, Any]) -> None:
    """One answer line, with the child's pid, flushed at once."""
    sys.stdout.write(json.dumps({**message, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()


def serve(target: T, commands: Mapping[str, Callable[[T, dict[str, Any]], dict[str, Any]]]
          ) -> int:
    """Say ready, then answer one JSON command per stdin line with ``commands[op]``.

    ``exit`` ends it (0). A command with ``"barrier": true`` is answered ``{"armed": true}``
    first and run after a line ``go``; a ``"delay"`` (seconds) is slept after the release.
    """
    emit({"ready": True})
    for line in sys.stdin:
        command: dict[str, Any] = json.loads(line)
        if command["op"] == "exit":
            return 0
        if command.get("barrier"):
            emit({"armed": True})
            if sys.stdin.readline().strip() != "go":
                print("expected 'go' after an armed command", file=sys.stderr)
                return 3
        if command.get("delay"):
            time.sleep(command["delay"])
        emit({"op": command["op"], **commands[command["op"]](target, command)})
    print("stdin closed before 'exit'", file=sys.stderr)
    return 4
