"""The exceptions keyvault raises.

Every one derives from `KeyVaultError`; where a builtin fits, a class inherits it too::

    KeyVaultError
    ├── VaultConfigurationError (ValueError)   a URL, key file or option that cannot work
    ├── WrongMasterKeyError                    the master key is not the one this vault uses
    ├── SubjectErasedError (LookupError)       the subject was erased: no key, never again
    │   └── KeyErasedError                     opening data whose key was erased ("redacted")
    ├── KeyNotFoundError (LookupError)         no key and no erasure record: the vault is not
    │                                          the one the data was sealed with
    ├── TamperedError (ValueError)             authentication failed: a sealed value or a
    │                                          wrapped key was altered
    ├── RotationError                          a master-key rotation cannot proceed
    ├── KeyCreationConflict                    a key created in a transaction lost a race:
    │                                          seal again (`KeyRing` with deferred creation)
    ├── KmsError                               the KMS holding the master key refused or failed
    │   ├── KmsAccessDenied                    denied: the key is disabled, gone, or not ours
    │   ├── KmsThrottled                       throttled: retry later
    │   └── KmsUnavailable                     unreachable or failing: retry later
    └── VaultStorageError                      the database failed or refused
        └── VaultUnavailable                   cannot connect

Redacted means exactly `KeyErasedError`. A failed authentication is `TamperedError` and a wrong
master key `WrongMasterKeyError`; neither is ever an erasure. A KMS that fails is a `KmsError`,
never either of them. Messages never contain key material or sealed plaintext.
"""

from __future__ import annotations

__all__ = [
    "KeyCreationConflict",
    "KeyErasedError",
    "KeyNotFoundError",
    "KeyVaultError",
    "KmsAccessDenied",
    "KmsError",
    "KmsThrottled",
    "KmsUnavailable",
    "RotationError",
    "SubjectErasedError",
    "TamperedError",
    "VaultConfigurationError",
    "VaultStorageError",
    "VaultUnavailable",
    "WrongMasterKeyError",
]


class KeyVaultError(Exception):
    """The root of every error raised by keyvault."""


class VaultConfigurationError(KeyVaultError, ValueError):
    """A URL, key file or option that cannot work; fix the configuration and retry."""


class WrongMasterKeyError(KeyVaultError):
    """The master key given is not the one that wraps this vault's keys."""


class SubjectErasedError(KeyVaultError, LookupError):
    """The subject was erased; its key is gone and is never created again."""

    def __init__(self, message: str, *, subject_id: str) -> None:
        super().__init__(message)
        self.subject_id = subject_id


class KeyErasedError(SubjectErasedError):
    """The data cannot be opened because its subject's key was erased: read it as redacted."""


class KeyNotFoundError(KeyVaultError, LookupError):
    """The vault holds neither a key nor an erasure record for the subject."""


class TamperedError(KeyVaultError, ValueError):
    """Authentication failed: a sealed value or a wrapped key is not as it was written."""


class KeyCreationConflict(KeyVaultError):
    """Another process created (or erased) a subject's key first, in the same moment.

    Raised by `KeyVault.check_active` when it stores the keys a deferred-creation `KeyRing`
    made: what was sealed with them must be sealed again with the stored key. The transaction
    must be rolled back; a retry loads the winner's key (or finds the subject erased).
    """

    def __init__(self, subject_ids: list[str]) -> None:
        super().__init__(f"{len(subject_ids)} key(s) were created by another process first; "
                         "seal again")
        self.subject_ids = subject_ids


class RotationError(KeyVaultError):
    """A master-key rotation cannot start or go on."""


class VaultStorageError(KeyVaultError):
    """The database failed or refused a statement."""


class VaultUnavailable(VaultStorageError):
    """The database cannot be reached; check the URL, the server and the credentials."""


class KmsError(KeyVaultError):
    """The KMS that wraps the master key (AWS KMS, Vault's transit engine, ...) failed or refused.

    Never an erasure, never read as redacted: nothing was opened. Messages name the KMS key and
    the operation, never key material.
    """


class KmsAccessDenied(KmsError):
    """The KMS refused the key: denied by its policy or the credentials, disabled, pending
    deletion, not found, or not usable for encryption. Fix the key or the permissions."""


class KmsThrottled(KmsError):
    """The KMS refused the request for its rate limit; retry later, or make fewer calls (an
    `EnvelopeKey` makes one per process start)."""


class KmsUnavailable(KmsError):
    """The KMS cannot be reached or did not answer in time (connection refused, timeout, a
    server error or a sealed Vault); retry when it is back."""
