"""The cost of padding sealed values: bytes and time, padded (format 2) against unpadded (1).

Padding hides which short value an erased subject had (see `keyvault.envelope`); this measures
what it costs. For each representative plaintext (as shredstore seals it: the JSON list of one
subject's personal values in one event) and each format:

``plaintext B``, ``sealed B``, ``base64 B``
    The plaintext's length, the sealed value's length, and the length of its base64 text as
    stored in the personal column of an event row.
``+ vs 1``
    The sealed bytes the padded format adds to the unpadded one, in percent.
``seal us``, ``open us``
    Microseconds per `DataKey.seal` and per `DataKey.open` (AES-256-GCM with the data key's
    cipher object built once, as the vault caches it): the fastest of the repetitions, each a
    loop of many calls, as `timeit` advises (slower loops measure other processes, not the
    code; the differences are a microsecond or so, well inside a busy machine's noise). No
    database is involved: this is the envelope's cost alone, which an append or a read pays
    once per personal group of an event, next to its database round trips (see
    docs/performance.md for those).

Run from the repository root::

    python -m benchmarks.padding               # full loops
    python -m benchmarks.padding --quick       # 10x fewer calls: a smoke run
    python -m benchmarks.padding --json results.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cryptography

from benchmarks.common import check_repeat, progress, render_table
from keyvault.envelope import FORMAT_PADDED, FORMAT_UNPADDED, DataKey

AAD = b"0f6c2a9e-4b1d-4c8e-9a57-3d2e1f0b6a47\x00gender"
"""Associated data of the size shredstore passes: an event id and a field path."""


def plaintexts() -> list[tuple[str, bytes]]:
    """The representative plaintexts, named, as compact JSON; the values are made up."""
    def sealed_as(values: list[str]) -> bytes:
        return json.dumps(values, separators=(",", ":")).encode()

    return [
        ("1 short value", sealed_as(["female"])),
        ("name+email+address", sealed_as(["Alice Example", "alice@example.com", "1 Long Road"])),
        ("128 B (worst case)", sealed_as(["x" * 124])),
        ("1 KB value", sealed_as(["x" * 996])),
        ("10 KB value", sealed_as(["x" * 9_996])),
    ]


@dataclass(frozen=True)
class Result:
    case: str
    format: int
    plaintext_bytes: int
    sealed_bytes: int
    base64_bytes: int
    added_percent: float
    seal_us: float
    open_us: float


def per_call_us(call: Callable[[], object], calls: int, repeat: int) -> float:
    """The fastest of `repeat` loops of `calls` calls, in microseconds per call."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        runs.append((time.perf_counter() - started) / calls * 1e6)
    return min(runs)


def measure(name: str, plaintext: bytes, *, calls: int, repeat: int) -> list[Result]:
    """Both formats for one plaintext, unpadded first: the padded row's ``+ vs 1`` needs it."""
    key = DataKey("customer-42", 1, os.urandom(32))
    unpadded = measure_format(key, name, plaintext, FORMAT_UNPADDED, calls=calls,
                              repeat=repeat, baseline=0)
    padded = measure_format(key, name, plaintext, FORMAT_PADDED, calls=calls, repeat=repeat,
                            baseline=unpadded.sealed_bytes)
    return [unpadded, padded]


def measure_format(key: DataKey, name: str, plaintext: bytes, fmt: int, *, calls: int,
                   repeat: int, baseline: int) -> Result:
    padded = fmt == FORMAT_PADDED
    sealed = key.seal(plaintext, AAD, padded=padded)
    assert sealed[0] == fmt
    assert key.open(sealed, AAD) == plaintext
    return Result(
        case=name, format=fmt, plaintext_bytes=len(plaintext), sealed_bytes=len(sealed),
        base64_bytes=len(base64.b64encode(sealed)),
        added_percent=round((len(sealed) / (baseline or len(sealed)) - 1) * 100, 1),
        seal_us=per_call_us(lambda: key.seal(plaintext, AAD, padded=padded), calls, repeat),
        open_us=per_call_us(lambda: key.open(sealed, AAD), calls, repeat),
    )


def calls_for(plaintext: bytes, *, quick: bool) -> int:
    """Enough calls for a loop of some tens of milliseconds at least."""
    calls = 20_000 if len(plaintext) < 2_000 else 5_000
    return calls // 10 if quick else calls


def format_table(results: Sequence[Result]) -> str:
    header = ["plaintext", "format", "plaintext B", "sealed B", "base64 B", "+ vs 1",
              "seal us", "open us"]
    rows = [[r.case, f"{r.format} ({'padded' if r.format == FORMAT_PADDED else 'unpadded'})",
             f"{r.plaintext_bytes:,}", f"{r.sealed_bytes:,}", f"{r.base64_bytes:,}",
             f"{r.added_percent:+.1f}%", f"{r.seal_us:.2f}", f"{r.open_us:.2f}"]
            for r in results]
    return render_table(header, rows)


def environment() -> dict[str, Any]:
    """What the figures depend on besides the code: machine, interpreter, library."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cryptography": cryptography.__version__,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.padding",
        description="Bytes and time of sealing with and without padding.",
    )
    parser.add_argument("--quick", action="store_true", help="10x fewer calls: a smoke run")
    parser.add_argument("--repeat", type=int, default=5, help="loops per case (default 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    for name, plaintext in plaintexts():
        progress(f"{name} ...")
        calls = calls_for(plaintext, quick=args.quick)
        results += measure(name, plaintext, calls=calls, repeat=args.repeat)
    print(format_table(results))
    print(f"\nfastest of {args.repeat} loops per figure; Python {platform.python_version()}, "
          f"cryptography {cryptography.__version__}, {os.cpu_count()} CPUs")
    if args.json is not None:
        document = {"quick": args.quick, "repeat": args.repeat, "environment": environment(),
                    "results": [asdict(result) for result in results]}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
