"""keyvault: per-subject data keys, wrapped by a master key, erasable for good.

It knows nothing about events; shredstore builds crypto-shredding on top of it. See
docs/keyvault.md for the key hierarchy, the threat model and operations.

Modules: `vault` (`KeyVault`, the facade, and `KeyRing`), `keys` (subjects' data keys: load,
cache, create), `erasure` (tombstones and statuses), `service_keys`, `rotation`, `scrub`,
`envelope` (the sealed format), `master` (master keys and KMS providers), `cache`, `names`
(what ids are accepted), `schema` (the tables), `statements` (the hot-path SQL), `engine`
(engine set-up and the translation of driver errors), `errors`.
"""

from keyvault.erasure import ErasureRecord, ErasureResult, SubjectStatus
from keyvault.errors import (
    KeyCreationConflict,
    KeyErasedError,
    KeyNotFoundError,
    KeyVaultError,
    RotationError,
    SubjectErasedError,
    TamperedError,
    VaultConfigurationError,
    VaultStorageError,
    VaultUnavailable,
    WrongMasterKeyError,
)
from keyvault.master import KeyProvider, MasterKey
from keyvault.rotation import RotationResult
from keyvault.scrub import ScrubResult, TableScrub
from keyvault.vault import KeyRing, KeyVault

__all__ = [
    "ErasureRecord",
    "ErasureResult",
    "KeyCreationConflict",
    "KeyErasedError",
    "KeyNotFoundError",
    "KeyProvider",
    "KeyRing",
    "KeyVault",
    "KeyVaultError",
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
    "VaultUnavailable",
    "WrongMasterKeyError",
]
