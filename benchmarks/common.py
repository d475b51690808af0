"""What the benchmark scripts share: the command line, backend selection, progress, tables."""

from __future__ import annotations

import argparse
import os
import resource
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "POSTGRES_URL_ENV",
    "add_common_arguments",
    "check_repeat",
    "peak_kib",
    "progress",
    "render_table",
    "select_backends",
]

POSTGRES_URL_ENV = "SHREDSTORE_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

B = TypeVar("B")


def add_common_arguments(parser: argparse.ArgumentParser, *, quick_help: str,
                         json_help: str = "also write results as JSON",
                         repeat: bool = True) -> None:
    """--backend, --quick, --repeat (unless not `repeat`), --json and --postgres-url."""
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    if repeat:
        parser.add_argument("--repeat", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--json", type=Path, metavar="PATH", help=json_help)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL),
        help=f"PostgreSQL URL (default: ${POSTGRES_URL_ENV} or {DEFAULT_POSTGRES_URL})",
    )


def check_repeat(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")


def select_backends(choice: str, postgres_url: str, *, sqlite: Callable[[], B],
                    postgres: Callable[[str], B]) -> list[B]:
    """The backends to run; with ``all``, PostgreSQL is skipped if it is unreachable."""
    backends = [sqlite()] if choice in ("sqlite", "all") else []
    if choice in ("postgres", "all"):
        try:
            backends.append(postgres(postgres_url))
        except sa.exc.OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0]
            if choice == "postgres":
                raise SystemExit(f"PostgreSQL is unreachable: {reason}") from None
            progress(f"SKIPPING PostgreSQL, unreachable: {reason}")
    return backends


def progress(message: str) -> None:
    """A progress line on stderr, so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 2) -> str:
    """A plain-text table: the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def peak_kib() -> tuple[int, int]:
    """This process's (VmHWM, ru_maxrss) in KiB; VmHWM falls back to ru_maxrss without /proc.

    See `benchmarks.memory` for why VmHWM, not ru_maxrss, is the figure."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), maxrss
    except OSError:
        pass
    return maxrss, maxrss
