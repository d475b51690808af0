"""Options that more than one command takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from keyvault import VaultConfigurationError
from keyvault.names import check_subject, is_utf8

__all__ = ["receipts_option", "signing_key_option", "subject_ids"]

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



def subject_ids(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A parameter callback: each subject id given must be one the vault accepts
    (`keyvault.names.check_subject`), else a usage error before anything is opened, whose
    message never repeats the id."""
    for subject in value if isinstance(value, tuple) else (value,):
        if subject is None or not is_utf8(subject):
            continue  # text that is not UTF-8 has its own message (`command`)
        try:
            check_subject(subject)
        except VaultConfigurationError as error:
            raise click.BadParameter(str(error), param=param) from None
    return value
