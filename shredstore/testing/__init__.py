"""Contract suites for code that plugs into shredstore, to run in your own tests (needs pytest).

``KeyProviderContract``: what every `keyvault.KeyProvider` (a master key, a KMS-backed
provider of your own) must do for a vault to be safe with it. Subclass it in a test module and
give it a ``provider`` fixture (a fresh provider) and, for the end-to-end case, nothing else:

    from shredstore.testing import KeyProviderContract

    class TestMyKms(KeyProviderContract):
        @pytest.fixture
        def provider(self):
            return MyKmsProvider("arn:aws:kms:...")

The suites are classes whose names do not start with ``Test``: pytest collects them only
through your subclass. The event store's and crypto-shredding's own contract suites run in
shredstore's tests on every backend (tests/store, tests/shredding).
"""

from shredstore.testing.providers import KeyProviderContract

__all__ = ["KeyProviderContract"]
