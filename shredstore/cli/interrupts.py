"""SIGINT and SIGTERM stop a batch of erasures between two subjects, never inside one.

While `signals_deferred` holds them back, either signal only sets a flag that the batch checks
before each subject, so no erasure stops between destroying a key and recording it; `stopped`
then says how far the batch got and how to resume, and exits 128 + the signal's number.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

from shredstore.cli.batch import Batch
from shredstore.cli.output import emit, interject
from shredstore.erasure.requests import ErasureRequest

__all__ = ["Stop", "signals_deferred", "stopped"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop:
    """The first SIGINT or SIGTERM that `signals_deferred` held back, if any."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def note(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.signal is None:
            self.signal = number
            text = f"{name}: finishing the subject in hand, then stopping"
        else:
            text = (f"{name} again: still finishing the subject in hand, then stopping (kill "
                    "-9 would stop at once, but could leave its key destroyed and not yet "
                    "recorded in the ledger until `shredstore reconcile`)")
        interject(f"shredstore: {text}")  # in the bar's place, if one is drawn


@contextmanager
def signals_deferred() -> Iterator[Stop]:
    """Hold SIGINT and SIGTERM back while the block runs: each only sets the flag that the
    block checks between two subjects, so that no erasure stops between destroying a key and
    recording it. The previous handlers are restored after. (Outside the main thread, where
    no handler can be installed, nothing changes.)"""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {number: signal.signal(number, stop.note) for number in _STOP_SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def stopped(number: int, batch: Batch, requests: Sequence[ErasureRequest], *, as_json: bool
            ) -> NoReturn:
    """Say how far a stopped batch got and how to resume it; exit 128 + the signal number."""
    name = signal.Signals(number).name
    left, last = requests[batch.done:], batch.last
    shown = "" if last is None else \
        f"; the last: {last.subject}" + (f" (line {last.line})" if last.line else "")
    resume = (f"the same command with --start-line {left[0].line}, or " if left[0].line
              else "") + "the same command again (erased subjects answer \"already erased\")"
    if len(left) <= 10 and not left[0].line:
        resume += f"; not started: {' '.join(shlex.quote(r.subject) for r in left)}"
    emit(as_json, {"result": "stopped", "signal": name, "done": batch.done,
                   "requests": len(requests),
                   "last_done": None if last is None else {"subject": last.subject,
                                                           "line": last.line or None},
                   "resume_at_line": left[0].line or None, "not_started": len(left)},
         f"stopped by {name} after {batch.done} of {len(requests)} request(s), each done in "
         f"full{shown}; {len(left)} not started\nto resume: {resume}")
    sys.exit(128 + number)
