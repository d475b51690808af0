"""Data keys and the envelope of a sealed value.

A sealed value is ``format (1 byte) | key version (4 bytes) | nonce (12) | ciphertext + tag``,
AES-256-GCM under the subject's data key, with associated data that binds it to the subject,
the key version and whatever the caller adds (an event id and field path, say). Moving a value
to another subject, field or event makes it fail authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyvault.errors import TamperedError

__all__ = ["FORMAT_VERSION", "DataKey", "key_version_of"]

FORMAT_VERSION = 1
_HEADER = struct.Struct(">BI")
_NONCE_SIZE = 12
_TAG_SIZE = 16
_MINIMUM = _HEADER.size + _NONCE_SIZE + _TAG_SIZE
KEY_SIZE = 32


def fingerprint(key: bytes) -> str:
    """A public fingerprint of a data key: names it in receipts without revealing it."""
    return hmac.new(key, b"keyvault data key fingerprint v1", hashlib.sha256).hexdigest()[:32]


def key_version_of(sealed: bytes) -> int:
    """The key version a sealed value names; raises `TamperedError` if it is malformed."""
    if len(sealed) < _MINIMUM or sealed[0] != FORMAT_VERSION:
        raise TamperedError("a sealed value is malformed")
    version: int = _HEADER.unpack_from(sealed)[1]
    return version


class DataKey:
    """One subject's data key, with its cipher object built once."""

    __slots__ = ("_aead", "_prefix", "fingerprint", "subject_id", "version")

    def __init__(self, subject_id: str, version: int, key: bytes) -> None:
        self.subject_id = subject_id
        self.version = version
        self.fingerprint = fingerprint(key)
        self._aead = AESGCM(key)
        encoded = subject_id.encode()
        self._prefix = (b"keyvault.v1\x00" + len(encoded).to_bytes(4, "big") + encoded
                        + version.to_bytes(4, "big"))

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt and authenticate `plaintext`, bound to this subject, key version and `aad`."""
        nonce = os.urandom(_NONCE_SIZE)
        header = _HEADER.pack(FORMAT_VERSION, self.version)
        return header + nonce + self._aead.encrypt(nonce, plaintext, self._prefix + aad)

    def open(self, sealed: bytes, aad: bytes = b"") -> bytes:
        """Decrypt a value sealed with this key and `aad`; raise `TamperedError` otherwise."""
        if key_version_of(sealed) != self.version:
            raise TamperedError("a sealed value names another key version than its subject's")
        nonce = sealed[_HEADER.size:_HEADER.size + _NONCE_SIZE]
        try:
            return self._aead.decrypt(nonce, sealed[_HEADER.size + _NONCE_SIZE:],
                                      self._prefix + aad)
        except InvalidTag:
            raise TamperedError("a sealed value failed authentication: it was altered, or "
                                "moved to another subject, event or field") from None

    def __repr__(self) -> str:
        return f"DataKey(version={self.version}, fingerprint={self.fingerprint!r})"
