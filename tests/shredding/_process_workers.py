"""Child processes for tests/shredding/test_processes.py: an `EventStore` driven over stdin/stdout.

Run from the repository root as ``python -m tests.shredding._process_workers URL [--vault-url
VAULT_URL]`` (the vault in its own database with the second). The first
line on stdin is the master key in base64 (kept off the command line, which ``ps`` shows). The
child opens the store, prints ``{"ready": true, "pid": N}``, then reads one JSON command per line
and answers each with one JSON line, flushed at once. Every answer carries the child's pid, so
the parent can tell it is still talking to the same process.

Commands, by ``op``:

``read``    stream -> ``events``: per event its ``type``, its top-level ``fields`` (a field that
    reads as REDACTED is shown as ``"<REDACTED>"``) and ``redacted`` (sorted redacted_fields);
    or ``error``, the name of the exception's class
``cached``  subject -> ``cached``: whether this process holds the subject's key in its cache
``append``  stream, subject, name, email -> ``version``: a CustomerRegistered appended; or
    ``error``, the name of the exception's class
``erase``   subject -> ``ledger_position``, ``already_erased``: the subject erased (with its
    ledger entry and receipt); or ``error``, the name of the exception's class
``exit``    close the store and exit 0

A command with ``"barrier": true`` is answered first with ``{"armed": true}``; the child then
waits for a line ``go`` before it runs the command, so that the parent can release several
children at the same moment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from keyvault import MasterKey
from shredstore import REDACTED, EventStore
from tests.processes import serve
from tests.shredding import events as _events

SHOWN_REDACTED = "<REDACTED>"


def _read(store: EventStore, command: dict[str, Any]) -> dict[str, Any]:
    try:
        records = list(store.read_stream(command["stream"]))
    except Exception as error:  # noqa: BLE001 - reported to the parent by class name
        return {"error": type(error).__name__}
    return {"events": [{
        "type": record.event_type,
        "fields": {name: SHOWN_REDACTED if value is REDACTED else value
                   for name, value in record.event if name != "event_id"},
        "redacted": sorted(record.redacted_fields),
    } for record in records]}


def _cached(store: EventStore, command: dict[str, Any]) -> dict[str, Any]:
    # White-box on purpose: the test must know the key really was in this process's cache.
    return {"cached": store.vault._cache.get(command["subject"]) is not None}


def _append(store: EventStore, command: dict[str, Any]) -> dict[str, Any]:
    event = _events.CustomerRegistered(customer_id=command["subject"], name=command["name"],
                                       email=command["email"], credit_limit=1)
    try:
        return {"version": store.append(command["stream"], [event]).version}
    except Exception as error:  # noqa: BLE001 - reported to the parent by class name
        return {"error": type(error).__name__}


def _erase(store: EventStore, command: dict[str, Any]) -> dict[str, Any]:
    try:
        receipt = store.erase_subject(command["subject"])
    except Exception as error:  # noqa: BLE001 - reported to the parent by class name
        return {"error": type(error).__name__}
    return {"ledger_position": receipt.ledger_position, "already_erased": receipt.already_erased,
            "ok": receipt.ok}


COMMANDS = {"read": _read, "cached": _cached, "append": _append, "erase": _erase}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.shredding._process_workers")
    parser.add_argument("url")
    parser.add_argument("--vault-url")
    args = parser.parse_args(argv)
    master = MasterKey.from_base64(sys.stdin.readline())
    with EventStore(args.url, master_key=master, vault_url=args.vault_url) as store:
        return serve(store, COMMANDS)

if __name__ == "__main__":
    sys.exit(main())
