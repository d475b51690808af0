"""KeyProvider implementations for tests: a stand-in KMS, and one that fails on demand."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyvault import KeyProvider, TamperedError


class FakeKms:
    """Wraps with a key the 'KMS' keeps; the shape a real KMS provider has."""

    def __init__(self, name: str = "fake-kms-key-1") -> None:
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self.key_id = f"kms:{name}"
        self.calls = 0

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        self.calls += 1
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        self.calls += 1
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], context)
        except InvalidTag:
            raise TamperedError("the KMS refused to unwrap") from None


class FailingAfter:
    """Delegates to `inner`, but its wrap fails after `n` successful calls (a crash)."""

    def __init__(self, inner: KeyProvider, n: int) -> None:
        self.inner = inner
        self.key_id = inner.key_id
        self.left = n

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        if self.left == 0:
            raise RuntimeError("simulated crash during rotation")
        self.left -= 1
        return self.inner.wrap(key, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return self.inner.unwrap(wrapped, context=context)
