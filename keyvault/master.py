"""The master key that wraps every data key, and the interface for wrapping with a KMS instead.

A `KeyProvider` wraps and unwraps data keys; `MasterKey` is the built-in one, a 256-bit key held
in memory and never written to a database. A deployment that keeps its master key in a KMS or
HSM implements `KeyProvider` around the KMS's encrypt/decrypt calls (see docs/keyvault.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyvault.errors import TamperedError, VaultConfigurationError

__all__ = ["KeyProvider", "MasterKey"]

_WRAP_FORMAT = 1
_NONCE_SIZE = 12


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys for a vault.

    `key_id` names the wrapping key; it is stored beside each wrapped key, so a vault can tell a
    wrong master key from a tampered wrapped key. `context` is associated data that binds a
    wrapped key to its subject: unwrap must fail (raise `TamperedError`) if it differs.
    """

    @property
    def key_id(self) -> str: ...

    def wrap(self, key: bytes, *, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes: ...


class MasterKey:
    """A 256-bit master key held in memory; wraps data keys with AES-256-GCM.

    Its `repr` and `str` show only `key_id`, a fingerprint that reveals nothing of the key.
    """

    __slots__ = ("_aead", "_key", "key_id")
    SIZE = 32

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != self.SIZE:
            raise VaultConfigurationError(f"a master key is exactly {self.SIZE} bytes")
        self._key = key
        self._aead = AESGCM(key)
        self.key_id = hmac.new(key, b"keyvault master key id v1", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        """A new random master key from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(cls.SIZE))

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        """Read a key written by `to_base64`."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise VaultConfigurationError("the master key is not valid base64") from None
        if len(key) != cls.SIZE:
            raise VaultConfigurationError(
                f"the master key decodes to {len(key)} bytes; it must be {cls.SIZE}"
            )
        return cls(key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, allow_shared: bool = False) -> MasterKey:
        """Read a base64 key from a file that only its owner may read.

        A file readable or writable by group or others is refused (``chmod 600`` it), or, with
        ``allow_shared=True``, accepted with a warning.
        """
        file = Path(path)
        try:
            mode = file.stat().st_mode
            text = file.read_text(encoding="ascii")
        except FileNotFoundError:
            raise VaultConfigurationError(f"no master key file at {file}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise VaultConfigurationError(
                f"cannot read the master key file {file}: {type(error).__name__}"
            ) from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            message = (f"the master key file {file} is accessible to group or others "
                       f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {file}")
            if not allow_shared:
                raise VaultConfigurationError(message)
            warnings.warn(message, stacklevel=2)
        return cls.from_base64(text)

    def to_base64(self) -> str:
        """The key as base64 text: keep it secret, and never in the vault's database."""
        return base64.b64encode(self._key).decode("ascii")

    def to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the key as base64 to a new file readable by its owner only."""
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(self.to_base64() + "\n")

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        """Encrypt and authenticate `key`, bound to `context`."""
        nonce = os.urandom(_NONCE_SIZE)
        return bytes([_WRAP_FORMAT]) + nonce + self._aead.encrypt(nonce, key, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Decrypt a wrapped key; raise `TamperedError` if it or its context was altered."""
        if len(wrapped) < 1 + _NONCE_SIZE + 16 or wrapped[0] != _WRAP_FORMAT:
            raise TamperedError("a wrapped key is malformed")
        nonce = wrapped[1:1 + _NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, wrapped[1 + _NONCE_SIZE:], context)
        except InvalidTag:
            raise TamperedError("a wrapped key failed authentication: it was altered, or "
                                "moved to another subject") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MasterKey) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> None:  # type: ignore[override]
        raise TypeError("a MasterKey is not picklable: pass it by base64 or file, on purpose")
