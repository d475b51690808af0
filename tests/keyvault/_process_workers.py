"""Child processes for tests/keyvault/test_processes.py: a `KeyVault` driven over stdin/stdout.

Run from the repository root as ``python -m tests.keyvault._process_workers URL``. The first
line on stdin is the master key in base64 (kept off the command line, which ``ps`` shows). The
child opens the vault, prints ``{"ready": true, "pid": N}``, then reads one JSON command per line
and answers each with one JSON line, flushed at once. Bytes travel as base64; every answer
carries the child's pid, so the parent can tell it is still talking to the same process.

A command with ``"barrier": true`` is answered first with ``{"armed": true}``; the child then
waits for a line ``go`` before it runs the command, so that the parent can release several
children at the same moment. A ``"delay"`` (seconds) is slept after the release.

Commands, by ``op`` (an error is the name of the `KeyVaultError` class raised):

``seal``    subject, value -> ``sealed`` or ``error``
``open``    subject, sealed (a list) -> ``results``: a list of ``{"value"}`` or ``{"error"}``
``seal_until_erased``  subject, value, seconds: seal again and again until a seal raises, or
    the time is up -> ``sealed``: a list of ``{"started", "sealed"}``, and ``error`` (null if
    the time ran out) with ``error_started``
``erase``   subject -> ``already_erased``, ``held_key``, ``fingerprint``, ``started``, ``returned``;
    or ``error``, with the exception's message (messages never hold key material)
``status``  subject -> ``state``, ``fingerprint``
``cached``  subject -> ``cached``: whether this process holds the subject's key in its cache
``exit``    close the vault and exit 0

Times are `time.monotonic()`: on Linux one clock (CLOCK_MONOTONIC) for every process.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Sequence
from typing import Any

from keyvault import KeyVault, KeyVaultError, MasterKey
from tests.processes import serve

AAD = b"keyvault-process-test"
"""The associated data of every value sealed or opened in these tests."""


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text: str) -> bytes:
    return base64.b64decode(text)


def _seal(vault: KeyVault, command: dict[str, Any]) -> dict[str, Any]:
    try:
        sealed = vault.seal(command["subject"], decode(command["value"]), aad=AAD)
    except KeyVaultError as error:
        return {"error": type(error).__name__}
    return {"sealed": encode(sealed)}


def _open(vault: KeyVault, command: dict[str, Any]) -> dict[str, Any]:
    results: list[dict[str, str]] = []
    for sealed in command["sealed"]:
        try:
            value = vault.open(command["subject"], decode(sealed), aad=AAD)
        except KeyVaultError as error:
            results.append({"error": type(error).__name__})
        else:
            results.append({"value": encode(value)})
    return {"results": results}


def _seal_until_erased(vault: KeyVault, command: dict[str, Any]) -> dict[str, Any]:
    value = decode(command["value"])
    until = time.monotonic() + command["seconds"]
    sealed: list[dict[str, Any]] = []
    while (started := time.monotonic()) < until:
        try:
            result = vault.seal(command["subject"], value, aad=AAD)
        except KeyVaultError as error:
            return {"sealed": sealed, "error": type(error).__name__, "error_started": started}
        sealed.append({"started": started, "sealed": encode(result)})
    return {"sealed": sealed, "error": None, "error_started": None}


def _erase(vault: KeyVault, command: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = vault.erase(command["subject"], reason="process test")
    except KeyVaultError as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {
        "already_erased": result.already_erased,
        "held_key": result.held_key,
        "fingerprint": result.key_fingerprint,
        "started": started,
        "returned": time.monotonic(),
    }


def _status(vault: KeyVault, command: dict[str, Any]) -> dict[str, Any]:
    status = vault.status(command["subject"])
    return {"state": status.state, "fingerprint": status.key_fingerprint}


def _cached(vault: KeyVault, command: dict[str, Any]) -> dict[str, Any]:
    # White-box on purpose: the cross-process test must know the key really was in the cache.
    return {"cached": vault._cache.get(command["subject"]) is not None}


COMMANDS = {
    "seal": _seal,
    "open": _open,
    "seal_until_erased": _seal_until_erased,
    "erase": _erase,
    "status": _status,
    "cached": _cached,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.keyvault._process_workers")
    parser.add_argument("url")
    args = parser.parse_args(argv)
    master = MasterKey.from_base64(sys.stdin.readline())
    with KeyVault(args.url, master_key=master) as vault:
        return serve(vault, COMMANDS)

if __name__ == "__main__":
    sys.exit(main())
