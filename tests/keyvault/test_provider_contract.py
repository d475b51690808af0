"""The shipped `KeyProviderContract`, run on the master key and on a KMS-style provider."""

from __future__ import annotations

import pytest

from keyvault import KeyProvider, MasterKey
from shredstore.testing import KeyProviderContract
from tests.keyvault.providers import FakeKms


class TestMasterKey(KeyProviderContract):
    @pytest.fixture
    def provider(self) -> KeyProvider:
        return MasterKey.generate()


class TestKmsStyleProvider(KeyProviderContract):
    @pytest.fixture
    def provider(self) -> KeyProvider:
        return FakeKms()


class Careless:
    """A provider that ignores the context: the contract must catch it."""

    key_id = "careless"

    def __init__(self) -> None:
        self.inner = MasterKey.generate()

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        return self.inner.wrap(key, context=b"")

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        return self.inner.unwrap(wrapped, context=b"")


def test_the_contract_catches_a_provider_that_ignores_the_context() -> None:
    contract = KeyProviderContract()
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        contract.test_another_context_is_tampering(Careless())
