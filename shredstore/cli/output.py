"""How commands write: one JSON object or one line per result, private output files, and
progress (a bar on a terminal, kept below the results; else a line on stderr at each tenth,
for logs)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, TaskID
from rich.text import Text

from shredstore.errors import ConfigurationError
from shredstore.files import private_file

__all__ = ["Echo", "emit", "interject", "note", "output_file", "progress", "progress_bar"]

T = TypeVar("T")


Echo = Callable[[str], None]
"""Prints one result line on standard output (the `echo` a command gets from `progress`)."""

_bars_shown: list[Progress] = []
"""The progress bars on the terminal now (one at most): see `interject`."""


def emit(as_json: bool, data: dict[str, Any], text: str, *, echo: Echo = click.echo) -> None:
    """One result on standard output: `data` as a JSON object, or `text`; through `echo`
    (the one `progress` gives) while a progress bar is on the terminal."""
    echo(json.dumps(data, ensure_ascii=False) if as_json else text)


@contextmanager
def progress(items: Sequence[T], label: str, *, quiet: bool = False
             ) -> Iterator[tuple[Iterator[T], Echo]]:
    """`items` to go through and the `echo` to print their results with, showing progress
    for batches of two or more (unless `quiet`).

    On an interactive terminal a bar stays below the results (`echo` prints them through the
    bar's console when the bar shares their terminal) and goes when the block ends; off a
    terminal a plain line on stderr at the start and at each tenth of the way (``erasing:
    0/50``, ``erasing: 5/50``, ...), for logs.
    """
    total = len(items)
    if quiet or total < 2:
        yield iter(items), click.echo
        return
    console = _bar_console()
    if console is None:
        report = _tenths(label, minimum=0)

        def reported() -> Iterator[T]:
            report(0, total)
            for done, item in enumerate(items, start=1):
                yield item
                report(done, total)

        yield reported(), click.echo
        return
    echo = _echo_through(console) if console.file is sys.stdout else click.echo
    with _bar(console, label, total) as (bar, task):

        def advanced() -> Iterator[T]:
            for item in items:
                yield item
                bar.advance(task)

        yield advanced(), echo


@contextmanager
def progress_bar(label: str, *, minimum: int = 0) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback: a bar on an interactive terminal, else a line on
    stderr at each tenth of the way (for logs); nothing for totals under `minimum`."""
    console = _bar_console()
    if console is None:
        yield _tenths(label, minimum=minimum)
        return
    with _bar(console, label, None) as (bar, task):
        yield lambda done, total: bar.update(task, completed=done, total=total)


def interject(text: str) -> None:
    """Write `text` as a line on stderr at once, as a signal handler may (os.write, not
    click.echo: the handler may run in the middle of a write to stderr). While a progress
    bar is on that terminal, the line takes the bar's place and the bar is drawn again below
    it, instead of the line being glued to the bar and the bar left behind."""
    start = "\r\x1b[2K" if _bars_shown else ""
    os.write(2, f"{start}{text}\n".encode(errors="backslashreplace"))


def note(text: str) -> None:
    """A line on stderr (a note, a log record) that never sticks to a progress bar: while one
    is shown, it takes the bar's place (`interject`)."""
    if _bars_shown:
        interject(text)
    else:
        click.echo(text, err=True)


def _bar_console() -> Console | None:
    """Where a progress bar goes: None off an interactive terminal (stderr not one, or
    TERM=dumb); standard output when it is the very terminal stderr is, so that the results
    printed through the bar's console stay on standard output; else stderr (standard output
    is then piped, or a terminal of its own, and the results never cross the bar)."""
    errors = Console(stderr=True)
    if not errors.is_interactive:
        return None
    return Console(file=sys.stdout) if _same_terminal(sys.stdout, sys.stderr) else errors


def _same_terminal(one: TextIO, other: TextIO) -> bool:
    try:
        return one.isatty() and os.path.samestat(os.fstat(one.fileno()),
                                                 os.fstat(other.fileno()))
    except (OSError, ValueError):  # no file descriptor (captured, or closed)
        return False


@contextmanager
def _bar(console: Console, label: str, total: int | None) -> Iterator[tuple[Progress, TaskID]]:
    """A transient bar on `console`. Drawn on stderr, whatever else goes to sys.stderr
    meanwhile is printed above it; sys.stdout is never redirected (a document written there
    must reach it unchanged, not re-rendered by rich), nor moved to the other stream."""
    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console,
                  transient=True, redirect_stdout=False,
                  redirect_stderr=console.file is not sys.stdout) as bar:
        _bars_shown.append(bar)
        try:
            yield bar, bar.add_task(label, total=total)
        finally:
            _bars_shown.remove(bar)


def _echo_through(console: Console) -> Echo:
    """Print lines through the console of a live bar, which clears the bar, writes the line
    and draws the bar again below it. The text is taken as it is (no markup, no emoji codes,
    no highlighting, the terminal wraps it), but for its colours (`click.style`)."""

    def echo(text: str) -> None:
        console.print(Text.from_ansi(text), soft_wrap=True)

    return echo


def _tenths(label: str, *, minimum: int) -> Callable[[int, int], None]:
    """A `progress(done, total)` callback printing ``label: done/total`` on stderr at each
    tenth of the way; nothing for totals under `minimum`."""
    last = -1

    def report(done: int, total: int) -> None:
        nonlocal last
        if total < minimum:
            return
        tenth = done * 10 // total if total else 10
        if tenth != last:
            last = tenth
            click.echo(f"{label}: {done}/{total}", err=True)

    return report


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
