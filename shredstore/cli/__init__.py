"""The `shredstore` command line: the group `cli`, its global options, and `main`.

A module per command group: `setup` (init, demo), `erasing` (erase, status, reconcile,
scrub), `receipts` (receipt verify, receipt from-ledger), `keys` (keys new-master,
new-signing-key, rotate-master), `audit` (verify, report, export), `sagas` (sagas list,
show, resume, cancel) and `relay` (relay --to a broker). What every command
shares: `globals` (the global options, also after a command's name), `settings` (the
configuration file, the settings they make, opening the store), `command` (the UTF-8 check,
one line and an exit code for whatever escapes), `output`, `paint` (colour for verdicts) and
`options`. docs/cli.md is the user's side of it.

Exit codes: 0 done; 1 the command ran and found a problem (verify found tampering, an erasure
failed or has no receipt, a request file had bad lines, a receipt does not verify); 2 a usage
or configuration error (one line on stderr, never a traceback; a bad subject id, a file that
is not a database, a bad configuration file); 130 or 143: `erase` stopped by
SIGINT or SIGTERM between two subjects, saying how to resume. Personal data is never printed:
the commands work on subject ids, counts, field names and fingerprints.
"""

from __future__ import annotations

from typing import Any

import click

from shredstore.cli import audit, erasing, keys, receipts, relay, sagas, setup
from shredstore.cli.command import RootGroup
from shredstore.cli.globals import group_options, settings_from

__all__ = ["cli", "main"]


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shredstore", prog_name="shredstore",
                      message="%(prog)s %(version)s")
@group_options
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """An event store that honours the right to be forgotten.

    The global options may also follow a command's name (`shredstore status --url URL S`).
    Each option falls back to its environment variable, then to the configuration file
    (shredstore.toml, or [tool.shredstore] in pyproject.toml: docs/cli.md), then to its
    default.
    """
    ctx.obj = settings_from(ctx, options)


for _command in (setup.init, setup.demo, erasing.erase, erasing.status, erasing.reconcile,
                 erasing.scrub, receipts.receipt, keys.keys, audit.verify, audit.report,
                 audit.export, sagas.sagas, relay.relay):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shredstore")
