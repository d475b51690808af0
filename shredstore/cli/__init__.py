"""The `shredstore` command line: the group `cli`, its global options, and `main`.

A module per command group: `setup` (init, demo), `erasing` (erase, status, reconcile,
scrub), `receipts` (receipt verify, receipt from-ledger), `keys` (keys new-master,
new-signing-key, rotate-master), `audit` (verify, report, export), `sagas` (sagas list,
show, resume, cancel) and `relay` (relay --to a broker). What every command
shares is in `command` (the UTF-8 check, one line and an exit code for whatever escapes),
`settings` (opening the store), `output` and `options`.

Exit codes: 0 done; 1 the command ran and found a problem (verify found tampering, an erasure
failed or has no receipt, a request file had bad lines, a receipt does not verify); 2 a usage
or configuration error (one line on stderr, never a traceback); 130 or 143: `erase` stopped by
SIGINT or SIGTERM between two subjects, saying how to resume. Personal data is never printed:
the commands work on subject ids, counts, field names and fingerprints.
"""

from __future__ import annotations

from pathlib import Path

import click

from shredstore.cli import audit, erasing, keys, receipts, relay, sagas, setup
from shredstore.cli.command import Group
from shredstore.cli.settings import Settings
from shredstore.store import DEFAULT_URL

__all__ = ["cli", "main"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shredstore", prog_name="shredstore",
                      message="%(prog)s %(version)s")
@click.option("--url", envvar="SHREDSTORE_URL", default=DEFAULT_URL, show_default=True,
              help="Database URL of the event store (or SHREDSTORE_URL).")
@click.option("--vault-url", envvar="SHREDSTORE_VAULT_URL",
              help="Database URL of the key vault, if not the event store's (or "
                   "SHREDSTORE_VAULT_URL).")
@click.option("--master-key-file", envvar="SHREDSTORE_MASTER_KEY_FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the base64 master key, mode 600, or an envelope key file of a "
                   "KMS (or SHREDSTORE_MASTER_KEY_FILE; or the key itself, or kms:<KMS key>, in "
                   "SHREDSTORE_MASTER_KEY).")
@click.option("--master-key", "master_key", metavar="SPEC",
              help="The master key in a KMS: kms:aws-kms:<key ARN> or "
                   "kms:vault-transit:<URL>/<mount>/<key> (docs/kms.md); or file:PATH.")
@click.pass_context
def cli(ctx: click.Context, url: str, vault_url: str | None, master_key_file: Path | None,
        master_key: str | None) -> None:
    """An event store that honours the right to be forgotten."""
    if master_key is not None and not master_key.startswith(("kms:", "file:")):
        raise click.UsageError("--master-key takes kms:<KMS key> or file:PATH; never put a key "
                               "itself on a command line (use a file, or SHREDSTORE_MASTER_KEY)")
    ctx.obj = Settings(url, vault_url, master_key_file, master_key)


for _command in (setup.init, setup.demo, erasing.erase, erasing.status, erasing.reconcile,
                 erasing.scrub, receipts.receipt, keys.keys, audit.verify, audit.report,
                 audit.export, sagas.sagas, relay.relay):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shredstore")
