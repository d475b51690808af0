"""The `shredstore` command line.

Exit codes: 0 done; 1 the command ran and found a problem; 2 a usage or configuration error
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from shredstore.demo import run_demo
from shredstore.errors import ConfigurationError, ShredstoreError, StoreUnavailable
from shredstore.storage.chain import LogHead
from shredstore.store import DEFAULT_URL, EventStore

__all__ = ["main"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="SHREDSTORE_URL", default=DEFAULT_URL, show_default=True,
              help="Database URL of the event store (or SHREDSTORE_URL).")
@click.pass_context
def cli(ctx: click.Context, url: str) -> None:
    """An event store that honours the right to be forgotten."""
    ctx.obj = {"url": url}


@cli.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's database (default: a new temporary folder).")
def demo(folder: Path | None) -> None:
    """Append, replay, conflict and verify on a fresh SQLite store, narrated."""
    with _errors():
        ok = run_demo(folder, click.echo)
    if not ok:
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the tables and triggers if missing (idempotent); restore dropped triggers."""
    with _errors(), EventStore(ctx.obj["url"]) as store:
        restored = store.restore_protection()
    for name in restored:
        click.echo(f"restored the missing immutability trigger {name}")
    click.echo("event store ready")


@cli.command()
@click.option("--expect-head", metavar="POSITION:HASH",
              help="An anchored log head kept from earlier; the log must still hold it.")
@click.pass_context
def verify(ctx: click.Context, expect_head: str | None) -> None:
    """Check the hash chain and the immutability triggers; exit 1 on any finding."""
    with _errors():
        anchor = _parse_head(expect_head)
        with EventStore(ctx.obj["url"]) as store:
            report = store.verify(expected_head=anchor)
    for finding in report.findings:
        click.echo(str(finding))
    click.echo(f"{report.events_checked} events checked, head {report.head}: "
               + ("intact" if report.ok else f"{len(report.findings)} problem(s)"))
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shredstore")


def _parse_head(text: str | None) -> LogHead | None:
    if text is None:
        return None
    try:
        return LogHead.parse(text)
    except ValueError as error:
        raise ConfigurationError(f"--expect-head: {error}") from None


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (ConfigurationError, StoreUnavailable) as error:
        _fail(EXIT_USAGE, error)
    except ShredstoreError as error:
        _fail(EXIT_PROBLEM, error)


def _fail(code: int, error: Exception, echo: Callable[..., Any] = click.echo) -> NoReturn:
    echo(f"shredstore: {error}", err=True)
    sys.exit(code)
