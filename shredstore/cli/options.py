"""Options that more than one command takes."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["receipts_option", "signing_key_option"]

receipts_option = click.option(
    "--receipts", "receipt_dir", envvar="SHREDSTORE_RECEIPTS_DIR",
    type=click.Path(file_okay=False, path_type=Path), default=Path("erasure-receipts"),
    show_default=True, help="Folder the receipts are written to.")
"""Where `erase` and `receipt from-ledger` write receipts."""

signing_key_option = click.option(
    "--signing-key-file", envvar="SHREDSTORE_SIGNING_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 private key (PEM) to sign receipts with.")
"""The key `erase` and `receipt from-ledger` sign receipts with."""
