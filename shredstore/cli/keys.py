"""`shredstore keys`: new master and signing keys, the verifying key of a signing key, and
rotation of the master key."""

from __future__ import annotations

import json
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from keyvault import EnvelopeKey, MasterKey, kms_from, master_key_from
from shredstore import erasure
from shredstore.cli.command import Group
from shredstore.cli.output import emit, output_file, progress_bar
from shredstore.cli.settings import Settings
from shredstore.errors import ConfigurationError
from shredstore.evidence import public_key_id, raw_public_key

__all__ = ["keys"]


@click.group(cls=Group)
def keys() -> None:
    """Master and signing keys."""


@keys.command("new-signing-key")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_obj
def new_signing_key(settings: Settings, out: Path) -> None:
    """Write a new Ed25519 key for signing erasure receipts (mode 600)."""
    key_id = erasure.generate_signing_key(out)
    emit(settings.as_json, {"key_id": key_id, "out": str(out)},
         f"wrote signing key {key_id} to {out}; give auditors its verifying key: "
         f"shredstore keys public-key --signing-key-file {out}")


@keys.command("public-key")
@click.option("--signing-key-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="SHREDSTORE_SIGNING_KEY_FILE", required=True,
              help="The Ed25519 signing key (PEM), or SHREDSTORE_SIGNING_KEY_FILE.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write the verifying key to (default: standard output).")
@click.pass_obj
def public_key(settings: Settings, signing_key_file: Path, out: Path | None) -> None:
    """Print the verifying (public) key of a receipt signing key, as PEM: what auditors pass
    to `shredstore receipt verify --public-key`. With --json: its key id and PEM."""
    key = erasure.load_signing_key(signing_key_file).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    key_id = public_key_id(raw_public_key(key))
    if settings.as_json:
        click.echo(json.dumps({"key_id": key_id, "public_key": pem,
                               "out": str(out) if out else None}))
        if out is None:
            return
    with output_file(out) as target:
        target.write(pem)
    if out is not None and not settings.as_json:
        click.echo(f"wrote the verifying key of {key_id} to {out}")


@keys.command("new-master")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--kms", metavar="KMS_KEY",
              help="Wrap the new key with this KMS key (aws-kms:<key ARN> or "
                   "vault-transit:<URL>/<mount>/<key>): OUT is then an envelope key file, "
                   "opened with one KMS call per process (docs/kms.md).")
@click.pass_obj
def new_master(settings: Settings, out: Path, kms: str | None) -> None:
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
    emit(settings.as_json, {"out": str(out), "kms": kms},
         f"wrote a new master key to {out}; keep it apart from the database" if kms is None
         else f"wrote a new master key to {out}, wrapped by the KMS key {kms}: only that KMS "
              "opens it")


@keys.command("rewrap-kms")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path, exists=True),
              required=True, help="The envelope key file (from `keys new-master --kms`).")
@click.option("--kms", metavar="KMS_KEY", required=True,
              help="The KMS key to wrap it with from now on.")
@click.pass_obj
def rewrap_kms(settings: Settings, key_file: Path, kms: str) -> None:
    """Rotate the KMS key of an envelope key file: the same master key, wrapped by another
    KMS key. Subjects' keys and events are untouched, and the vault notices nothing."""
    key = master_key_from(str(key_file))
    if not isinstance(key, EnvelopeKey):
        raise ConfigurationError(f"{key_file} is not an envelope key file: its key is in the "
                                 "clear; use `keys rotate-master` for such a key")
    key.rewrap(kms_from(kms)).to_file(key_file, replace=True)
    emit(settings.as_json, {"key_file": str(key_file), "kms": kms},
         f"{key_file} is now wrapped by the KMS key {kms}; the old KMS key can be disabled "
         "once every process has restarted")


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
        result = store.vault.rotate_master_key(new, progress=None if settings.quiet else tick)
    emit(settings.as_json, {"rewrapped": result.rewrapped, "old_key_id": result.old_key_id,
                            "new_key_id": result.new_key_id,
                            "new_key_file": str(new_key_file)},
         f"master key rotated: {result.rewrapped} subject key(s) re-wrapped from "
         f"{result.old_key_id} to {result.new_key_id}; use {new_key_file} from now on")
