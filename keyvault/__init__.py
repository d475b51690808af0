"""keyvault: per-subject data keys, wrapped by a master key, erasable for good.

It knows nothing about events; shredstore builds crypto-shredding on top of it. See
docs/keyvault.md for the key hierarchy, the threat model and operations.

Modules: `vault` (`KeyVault`, the facade, and `KeyRing`), `keys` (subjects' data keys: load,
cache, create), `erasure` (tombstones and statuses), `service_keys`, `rotation`, `scrub`,
`envelope` (the sealed format), `master` (master keys and the `KeyProvider` interface), `kms`
(AWS KMS, and `EnvelopeKey`: one KMS call per process), `transit` (HashiCorp Vault's transit
engine), `config` (master keys named by a string), `cache`, `names`
(what ids are accepted), `schema` (the tables), `statements` (the hot-path SQL), `engine`
(engine set-up and the translation of driver errors), `errors`.
"""

from importlib import metadata as _metadata

from keyvault.config import kms_from, master_key_from
from keyvault.erasure import ErasureRecord, ErasureResult, SubjectStatus
from keyvault.errors import (
    KeyCreationConflict,
    KeyErasedError,
    KeyNotFoundError,
    KeyVaultError,
    KmsAccessDenied,
    KmsError,
    KmsThrottled,
    KmsUnavailable,
    RotationError,
    SubjectErasedError,
    TamperedError,
    VaultConfigurationError,
    VaultStorageError,
    VaultUnavailable,
    WrongMasterKeyError,
)
from keyvault.kms import AwsKms, EnvelopeKey
from keyvault.master import KeyProvider, MasterKey
from keyvault.rotation import RotationResult
from keyvault.scrub import ScrubResult, TableScrub
from keyvault.transit import VaultTransit
from keyvault.vault import KeyRing, KeyVault

try:
    __version__ = _metadata.version("shredstore")
    """The installed distribution's version (``shredstore --version`` prints it)."""
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AwsKms",
    "EnvelopeKey",
    "ErasureRecord",
    "ErasureResult",
    "KeyCreationConflict",
    "KeyErasedError",
    "KeyNotFoundError",
    "KeyProvider",
    "KeyRing",
    "KeyVault",
    "KeyVaultError",
    "KmsAccessDenied",
    "KmsError",
    "KmsThrottled",
    "KmsUnavailable",
    "MasterKey",
    "RotationError",
    "RotationResult",
    "ScrubResult",
    "SubjectErasedError",
    "SubjectStatus",
    "TableScrub",
    "TamperedError",
    "VaultConfigurationError",
    "VaultStorageError",
    "VaultTransit",
    "VaultUnavailable",
    "WrongMasterKeyError",
    "__version__",
    "kms_from",
    "master_key_from",
]
