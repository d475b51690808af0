"""The comparison's results: figures, ratio checks against the targets, the table and JSON."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .workload import Backend

__all__ = ["Check", "Figure", "Row", "format_notes", "format_table", "git_revision", "metadata",
           "write_json"]

_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Figure:
    """The runs of one contender in one case: median, min and max."""

    runs: tuple[float, ...]

    @classmethod
    def of(cls, runs: Sequence[float]) -> Figure:
        if not runs:
            raise ValueError("a figure needs at least one run")
        return cls(tuple(runs))

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": min(self.runs), "max": max(self.runs),
                "runs": list(self.runs)}


Figures = Mapping[str, Figure | None]


@dataclass(frozen=True, slots=True)
class Check:
    """A ratio of medians, and the target it must meet (None: shown for information)."""

    label: str
    ratio: float
    target: float | None
    at_least: bool = True

    @classmethod
    def ratio_of(cls, figures: Figures, top: str, bottom: str, *, target: float | None,
                 at_least: bool) -> Check:
        """`top`'s median over `bottom`'s (for rates: how many times as fast)."""
        a, b = figures[top], figures[bottom]
        if a is None or b is None:
            raise ValueError(f"no figures for {top} / {bottom}")
        return cls(f"{top} / {bottom}", a.median / b.median, target, at_least)

    @classmethod
    def growth(cls, low: Figures, high: Figures, name: str, *, target: float | None) -> Check:
        """How much `name`'s figure grows from the small case to the large one."""
        a, b = high[name], low[name]
        if a is None or b is None:
            raise ValueError(f"no figures for {name}")
        return cls(f"{name} large / small", a.median / b.median, target, at_least=False)

    @property
    def result(self) -> str:
        if self.target is None:
            return "info"
        met = self.ratio >= self.target if self.at_least else self.ratio <= self.target
        return "PASS" if met else "MISS"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'>=' if self.at_least else '<='} {self.target:g}"

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "ratio": self.ratio, "target": self.target_text,
                "result": self.result}


@dataclass(frozen=True, slots=True)
class Row:
    """One case on one backend: each contender's figure (None: not applicable), its checks."""

    backend: str
    case: str
    title: str
    unit: str
    figures: Figures
    higher_is_better: bool = True
    checks: list[Check] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "case": self.case, "title": self.title, "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "figures": {name: None if figure is None else figure.to_json()
                        for name, figure in self.figures.items()},
            "checks": [check.to_json() for check in self.checks], "note": self.note,
        }


def _number(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.2f}"
    if unit == "MiB":
        return f"{value:,.1f}"
    return f"{value:,.0f}"


def _cell(figure: Figure | None, unit: str) -> str:
    if figure is None:
        return "n/a"
    if len(figure.runs) == 1:
        return _number(figure.median, unit)
    return (f"{_number(figure.median, unit)} "
            f"[{_number(min(figure.runs), unit)}-{_number(max(figure.runs), unit)}]")


def format_table(rows: Sequence[Row], labels: Sequence[str]) -> str:
    """A plain-text table: one line per case and check; figures are median [min-max]."""
    header = ("backend", "case", "unit", *labels, "check", "ratio", "target", "result")
    lines: list[tuple[str, ...]] = []
    for row in rows:
        cells = [_cell(figure, row.unit) for figure in row.figures.values()]
        title = f"{row.title} ({row.note})" if row.note else row.title
        first = (row.backend, title, row.unit, *cells)
        blank = ("",) * len(first)
        checks: list[Check | None] = [*row.checks] or [None]
        for i, check in enumerate(checks):
            tail = ("", "", "", "") if check is None else (
                check.label, f"{check.ratio:.2f}x", check.target_text, check.result)
            lines.append((*(first if i == 0 else blank), *tail))
    widths = [max(len(line[i]) for line in (header, *lines)) for i in range(len(header))]
    numeric = set(range(3, 3 + len(labels))) | {len(header) - 3}

    def render(line: Sequence[str]) -> str:
        return "  ".join(cell.rjust(width) if i in numeric else cell.ljust(width)
                         for i, (cell, width) in enumerate(zip(line, widths, strict=True))
                         ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_revision() -> str | None:
    """The code measured: ``git describe --always --dirty`` of the repository."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"],  # noqa: S607
                              cwd=_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def metadata(backends: Sequence[Backend], *, quick: bool, repeat: int, sizes: Any,
             seconds: float, cases: Sequence[str], git: str | None) -> dict[str, Any]:
    """What the figures depend on besides the code, and how they were taken."""
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "repeat": repeat,
        "cases": list(cases),
        "sizes": dataclasses.asdict(sizes),
        "seconds": round(seconds, 1),
        "environment": {
            "git": git,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "sqlalchemy": sa.__version__,
            "eventsourcing": _version("eventsourcing"),
            "cryptography": _version("cryptography"),
            "pydantic": _version("pydantic"),
            "psycopg": _version("psycopg"),
            "databases": [backend.description for backend in backends],
        },
        "notes": [
            "Figures are median [min-max] of the runs; ratios are of medians of this run.",
            f"Streams: one per customer (data subject), {sizes.customers:,} of them; a batch "
            "of 100 goes to one stream; append-x1's single appends go round-robin over them, "
            "each of which already holds one event (appended untimed); append-x1-new's each "
            f"go to a new subject; the writers case's {sizes.writers} processes each append "
            f"{sizes.writer_events:,} events in batches of 50 to {sizes.writer_streams} "
            "streams of their own. The same layout for every contender.",
            "eventsourcing: the first event of each stream creates its aggregate "
            "(an Aggregate.Created subclass with the same six fields); it decrypts on read "
            "but does not validate field types (it restores the event's attributes).",
            "raw SQLAlchemy: rows with shredstore's columns and a payload as long as "
            "shredstore's payload + personal columns; no hash chain, no subject index, no "
            "encryption; its reads fetch rows without decoding them.",
            "Durability: SQLite files in WAL with synchronous=FULL for all three (checked "
            "through eventsourcing's own connection); one PostgreSQL server.",
            "Writers: separate processes, each with its own session, all opened (one after "
            "the other) and prepared before a common start signal; client CPU there is the "
            "writers' CPU summed, so it can exceed 100% of wall on several cores.",
            "Peak memory: VmHWM of a fresh child process (its own address space); a child's "
            "ru_maxrss on Linux starts at its parent's RSS at fork, so it is not used.",
        ],
    }


def format_notes(meta: Mapping[str, Any]) -> str:
    env = meta["environment"]
    lines = [
        f"{meta['repeat']} run(s) per case ({meta.get('size', 'full')} sizes); "
        f"total {meta['seconds']:.0f} s; git {env['git']}; Python {env['python']}, "
        f"eventsourcing {env['eventsourcing']}, SQLAlchemy {env['sqlalchemy']}, "
        f"{env['cpus']} CPUs.",
        *(f"- {db}" for db in env["databases"]),
        *(f"- {note}" for note in meta["notes"]),
    ]
    return "\n".join(lines)


def write_json(path: Path, rows: Sequence[Row], meta: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**meta, "results": [row.to_json() for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
