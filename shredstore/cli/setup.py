"""Getting started: `shredstore init` creates (or repairs) a store, `shredstore demo` shows the
whole job on a throw-away one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from shredstore.cli.command import EXIT_PROBLEM, Command
from shredstore.cli.paint import verdict
from shredstore.cli.settings import Settings
from shredstore.demo import run_demo

__all__ = ["demo", "init"]


@click.command(cls=Command)
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="An empty folder for the demo's files (default: a new temporary folder).")
@click.option("--reveal", is_flag=True,
              help="Show the demo's (invented) personal values instead of masking them.")
@click.pass_obj
def demo(settings: Settings, folder: Path | None, reveal: bool) -> None:
    """Crypto-shredding in a minute: append, replay, erase a customer, replay, verify."""
    settings.refuse_json("demo")
    if not run_demo(folder, Console(highlight=False), reveal=reveal):
        sys.exit(EXIT_PROBLEM)


@click.command(cls=Command)
@click.pass_obj
def init(settings: Settings) -> None:
    """Create the tables and triggers if missing (idempotent); restore dropped triggers."""
    with settings.store(create=True) as store:
        restored = store.restore_protection()
    if settings.as_json:
        click.echo(json.dumps({"result": "ready", "restored_triggers": list(restored)}))
        return
    for name in restored:
        click.echo(f"restored the missing immutability trigger {name}")
    click.echo(f"event store {verdict('ready')}")
