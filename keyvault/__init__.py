"""keyvault: per-subject data keys, wrapped by a master key, erasable for good.

It knows nothing about events; shredstore builds crypto-shredding on top of it. See
docs/keyvault.md for the key hierarchy, the threat model and operations.
"""

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
from keyvault.scrub import ScrubResult, TableScrub
from keyvault.vault import (
    ErasureRecord,
    ErasureResult,
    KeyRing,
    KeyVault,
    RotationResult,
    SubjectStatus,
)

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
