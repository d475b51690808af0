"""How commands write: one JSON object or one line per result, private output files, and
progress on stderr (a bar on a terminal, else a line at each tenth for logs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, track

from shredstore.errors import ConfigurationError
from shredstore.files import private_file

__all__ = ["emit", "output_file", "progress", "progress_bar"]

T = TypeVar("T")


def emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    """One result on standard output: `data` as a JSON object, or `text`."""
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else text)


def progress(items: Sequence[T], label: str) -> Iterator[T]:
    """`items`, with a progress bar on an interactive terminal (stderr) for batches."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield from items
        return
    yield from track(items, description=label, transient=True, console=Console(stderr=True))


@contextmanager
def progress_bar(label: str, *, minimum: int = 0) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback: a bar on an interactive stderr, else a line on
    stderr at each tenth of the way (for logs); nothing for totals under `minimum`."""
    if sys.stderr.isatty():
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    last = -1

    def report(done: int, total: int) -> None:
        nonlocal last
        if total < minimum:
            return
        tenth = done * 10 // total if total else 10
        if tenth != last:
            last = tenth
            click.echo(f"{label}: {done}/{total}", err=True)

    yield report


@contextmanager
def output_file(path: Path | None) -> Iterator[TextIO]:
    """The file to write, or standard output.

    A file is written through `shredstore.files.private_file`: mode 0600 whatever the umask
    (reports and exports may hold personal data), and in place under `path` only once
    complete.
    """
    if path is None:
        yield sys.stdout
        return
    try:
        with private_file(path) as target:
            yield target
    except OSError as error:
        raise ConfigurationError(f"cannot write {path}: {error.strerror}") from None
