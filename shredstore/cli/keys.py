"""`shredstore keys`: new master and signing keys, and rotation of the master key."""

from __future__ import annotations

from pathlib import Path

import click

from keyvault import EnvelopeKey, MasterKey, kms_from, master_key_from
from shredstore import erasure
from shredstore.cli.command import Group
from shredstore.cli.output import progress_bar
from shredstore.cli.settings import Settings
from shredstore.errors import ConfigurationError

__all__ = ["keys"]


@click.group(cls=Group)
def keys() -> None:
    """Master and signing keys."""


@keys.command("new-signing-key")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def new_signing_key(out: Path) -> None:
    """Write a new Ed25519 key for signing erasure receipts (mode 600)."""
    key_id = erasure.generate_signing_key(out)
    click.echo(f"wrote signing key {key_id} to {out}")


@keys.command("new-master")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--kms", metavar="KMS_KEY",
              help="Wrap the new key with this KMS key (aws-kms:<key ARN> or "
                   "vault-transit:<URL>/<mount>/<key>): OUT is then an envelope key file, "
                   "opened with one KMS call per process (docs/kms.md).")
def new_master(out: Path, kms: str | None) -> None:
    """Write a new random master key to OUT (base64, mode 600; never overwrites)."""
    if out.exists():
        raise ConfigurationError(f"{out} exists: not overwriting a key")
    try:
        if kms is None:
            MasterKey.generate().to_file(out)
        else:
            EnvelopeKey.generate(kms_from(kms)).to_file(out)
    except OSError as error:
        raise ConfigurationError(f"cannot write {out}: {error.strerror}") from None
    if kms is None:
        click.echo(f"wrote a new master key to {out}; keep it apart from the database")
    else:
        click.echo(f"wrote a new master key to {out}, wrapped by the KMS key {kms}: only that "
                   "KMS opens it")


@keys.command("rewrap-kms")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path, exists=True),
              required=True, help="The envelope key file (from `keys new-master --kms`).")
@click.option("--kms", metavar="KMS_KEY", required=True,
              help="The KMS key to wrap it with from now on.")
def rewrap_kms(key_file: Path, kms: str) -> None:
    """Rotate the KMS key of an envelope key file: the same master key, wrapped by another
    KMS key. Subjects' keys and events are untouched, and the vault notices nothing."""
    key = master_key_from(str(key_file))
    if not isinstance(key, EnvelopeKey):
        raise ConfigurationError(f"{key_file} is not an envelope key file: its key is in the "
                                 "clear; use `keys rotate-master` for such a key")
    key.rewrap(kms_from(kms)).to_file(key_file, replace=True)
    click.echo(f"{key_file} is now wrapped by the KMS key {kms}; the old KMS key can be "
               "disabled once every process has restarted")


@keys.command("rotate-master")
@click.option("--new-key-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The new master key (from `shredstore keys new-master`).")
@click.pass_obj
def rotate_master(settings: Settings, new_key_file: Path) -> None:
    """Re-wrap every subject's key under a new master key; events are untouched.

    Resumable: if interrupted, run it again with the same two keys. Afterwards the old key
    opens nothing: restart every process with the new one.
    """
    new = MasterKey.from_file(new_key_file)
    with settings.store(needs_key=True) as store, progress_bar("re-wrapping keys") as tick:
        result = store.vault.rotate_master_key(new, progress=tick)
    click.echo(f"master key rotated: {result.rewrapped} subject key(s) re-wrapped from "
               f"{result.old_key_id} to {result.new_key_id}; use {new_key_file} from now on")
