"""`KeyProviderContract`: the behaviour a vault relies on from its key provider."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keyvault import KeyErasedError, KeyProvider, KeyVault, TamperedError

__all__ = ["KeyProviderContract"]

_KEY = os.urandom(32)
_CONTEXT = b"keyvault.wrap.v1\x00subject-1"


class KeyProviderContract:
    """Subclasses provide a ``provider`` fixture: a fresh `KeyProvider` to check."""

    @pytest.fixture
    def provider(self) -> KeyProvider:
        raise NotImplementedError("subclasses provide the provider to check")

    def test_it_is_a_key_provider_with_a_stable_id(self, provider: KeyProvider) -> None:
        assert isinstance(provider, KeyProvider)
        assert isinstance(provider.key_id, str)
        assert provider.key_id
        assert provider.key_id == provider.key_id

    def test_a_wrapped_key_unwraps_with_its_context(self, provider: KeyProvider) -> None:
        wrapped = provider.wrap(_KEY, context=_CONTEXT)
        assert provider.unwrap(wrapped, context=_CONTEXT) == _KEY

    def test_the_wrapped_form_hides_the_key_and_is_fresh_each_time(
            self, provider: KeyProvider) -> None:
        first = provider.wrap(_KEY, context=_CONTEXT)
        assert _KEY not in first
        assert first != provider.wrap(_KEY, context=_CONTEXT)  # a fresh nonce each time

    def test_another_context_is_tampering(self, provider: KeyProvider) -> None:
        """The context binds a wrapped key to its subject: moved elsewhere, it must not open."""
        wrapped = provider.wrap(_KEY, context=_CONTEXT)
        with pytest.raises(TamperedError):
            provider.unwrap(wrapped, context=_CONTEXT + b"-other")

    def test_every_altered_byte_is_tampering(self, provider: KeyProvider) -> None:
        wrapped = provider.wrap(_KEY, context=_CONTEXT)
        for index in range(len(wrapped)):
            altered = bytearray(wrapped)
            altered[index] ^= 0x01
            with pytest.raises(TamperedError):
                provider.unwrap(bytes(altered), context=_CONTEXT)

    def test_a_vault_seals_opens_and_erases_with_it(self, provider: KeyProvider,
                                                    tmp_path: Path) -> None:
        with KeyVault(f"sqlite:///{tmp_path / 'vault.db'}", master_key=provider) as vault:
            sealed = vault.seal("subject-1", b"value", aad=b"field")
            assert vault.open("subject-1", sealed, aad=b"field") == b"value"
            vault.erase("subject-1")
            with pytest.raises(KeyErasedError):
                vault.open("subject-1", sealed, aad=b"field")
        with KeyVault(f"sqlite:///{tmp_path / 'vault.db'}", master_key=provider) as again:
            other = again.seal("subject-2", b"value")
            assert again.open("subject-2", other) == b"value"
