"""`shredstore receipt`: check an erasure receipt's signature, or write a lost one again from
the erasure ledger."""

from __future__ import annotations

import json
from pathlib import Path

import click

from shredstore import erasure
from shredstore.cli.command import EXIT_PROBLEM, Group, fail
from shredstore.cli.options import receipts_option, signing_key_option, subject_ids
from shredstore.cli.output import emit
from shredstore.cli.paint import verdict
from shredstore.cli.settings import Settings
from shredstore.errors import ConfigurationError

__all__ = ["receipt"]


@click.group(cls=Group)
def receipt() -> None:
    """Erasure receipts."""


@receipt.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The signer's Ed25519 key (PEM); without it, the key the receipt names.")
@click.pass_obj
def receipt_verify(settings: Settings, file: Path, public_key: Path | None) -> None:
    """Check the signature of an erasure receipt; exit 1 if it does not hold (an edited,
    unsigned, duplicated-key or older-format receipt), 2 if FILE or the key cannot be read."""
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"cannot read {file}: {error.strerror}") from None
    key = erasure.load_public_key(public_key) if public_key is not None else None
    check = erasure.verify_receipt(data, public_key=key)
    if settings.as_json:
        click.echo(json.dumps({"file": str(file), "ok": check.ok, "message": check.message,
                               "key_id": check.key_id, "signer_checked": public_key is not None},
                              ensure_ascii=False))
    if not check.ok:
        fail(EXIT_PROBLEM, f"{file}: {check.message}")
    if not settings.as_json:
        click.echo(f"{file}: {check.message.replace('valid', verdict('valid'), 1)}"
                   + ("" if public_key else "; pass --public-key to check whose key it is"))


@receipt.command("from-ledger")
@click.argument("subject", callback=subject_ids)
@receipts_option
@signing_key_option
@click.pass_obj
def receipt_from_ledger(settings: Settings, subject: str, receipt_dir: Path,
                        signing_key_file: Path | None) -> None:
    """Write the receipt of SUBJECT's erasure from the erasure ledger: for an erasure whose
    receipt could not be written (a full or read-only folder) or was lost. Its time, request
    and key fingerprint are the ledger's; what is held and the check are made now. Exit 1 if
    the subject's data still opens, 2 if the ledger does not record the subject."""
    signing_key = (erasure.load_signing_key(signing_key_file)
                   if signing_key_file is not None else None)
    with settings.store() as store:
        made = erasure.receipt_from_ledger(store, subject, signing_key=signing_key)
    path = erasure.write_receipt(receipt_dir, made)
    check = made.check.to_dict()["result"]
    emit(settings.as_json, {"subject": subject, "request_id": made.request_id,
                   "result": "receipt written", "receipt": str(path),
                   "erased_at": made.erased_at.isoformat(),
                   "ledger_position": made.ledger_position, "check": check,
                   "signed": made.signature is not None},
         f"{subject}: erased at {made.erased_at.isoformat()} (ledger position "
         f"{made.ledger_position}); {check}; receipt {path}")
    if not made.check.ok:
        fail(EXIT_PROBLEM, "the subject's data can still be opened (the vault holds its key "
             "again?): run `shredstore reconcile`")
