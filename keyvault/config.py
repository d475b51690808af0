"""Master keys named by a string: in settings, the environment, or a command line.

`master_key_from(spec)` gives the `KeyProvider` a spec names:

- a path (or ``file:PATH``) to a key file. That is either a `MasterKey` in base64 (mode 0600)
  or an envelope key file (`EnvelopeKey.to_file`), which names the KMS key that wraps it and
  is opened with one call to that KMS;
- ``kms:aws-kms:<key ARN>`` or ``kms:vault-transit:<URL>/<mount>/<key>``: the KMS key itself
  as the master key. Every subject's key is then one KMS call to open, so prefer an envelope
  file for anything that replays.

`kms_from(key_id)` builds the provider a KMS key id names (`AwsKms.key_id`,
`VaultTransit.key_id`): AWS credentials and region come from boto3's usual chain (the
region also from the ARN), and Vault's token from ``VAULT_TOKEN``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyvault.errors import VaultConfigurationError
from keyvault.kms import AwsKms, EnvelopeKey
from keyvault.master import KeyProvider, MasterKey
from keyvault.transit import VaultTransit

__all__ = ["kms_from", "master_key_from"]

_AWS = "aws-kms:"
_TRANSIT = "vault-transit:"


def kms_from(key_id: str) -> KeyProvider:
    """The KMS provider of a KMS key id: ``aws-kms:<key ARN>`` or
    ``vault-transit:<URL>/<mount>/<key>`` (see the module)."""
    if key_id.startswith(_AWS):
        key = key_id.removeprefix(_AWS)
        parts = key.split(":")
        region = parts[3] if key.startswith("arn:") and len(parts) > 3 and parts[3] else None
        return AwsKms(key, region=region)
    if key_id.startswith(_TRANSIT):
        rest = key_id.removeprefix(_TRANSIT)
        url, _, path = rest.rpartition("/")
        url, _, mount = url.rpartition("/")
        if not url or not mount or not path:
            raise VaultConfigurationError(
                "a Vault transit key is vault-transit:<URL>/<mount>/<key>, such as "
                "vault-transit:https://vault.example.net:8200/transit/shredstore")
        token = os.environ.get("VAULT_TOKEN")
        if not token:
            raise VaultConfigurationError("the Vault transit key needs a token: set VAULT_TOKEN")
        return VaultTransit(url, path, mount=mount, token=token)
    raise VaultConfigurationError(
        "a KMS key is aws-kms:<key ARN> or vault-transit:<URL>/<mount>/<key>")


def master_key_from(spec: str) -> KeyProvider:
    """The master key `spec` names (see the module)."""
    if not isinstance(spec, str) or not spec.strip():
        raise VaultConfigurationError("a master key spec is a key file's path or kms:<KMS key>")
    if spec.startswith("kms:"):
        return kms_from(spec.removeprefix("kms:"))
    path = Path(spec.removeprefix("file:"))
    try:
        head = path.read_bytes()[:1]
    except OSError as error:
        raise VaultConfigurationError(
            f"cannot read the master key file {path}: {error.strerror}") from None
    if head == b"{":  # JSON: an envelope key file, which names its KMS
        try:
            kms = json.loads(path.read_text())["kms"]
        except (ValueError, KeyError, TypeError):
            raise VaultConfigurationError(f"{path} is not an envelope key file") from None
        if not isinstance(kms, str):
            raise VaultConfigurationError(f"{path} is not an envelope key file")
        return EnvelopeKey.from_file(path, kms_from(kms))
    return MasterKey.from_file(path)
