"""Contract suites for code that plugs into shredstore, to run in your own tests.

Each suite is a class whose name does not start with ``Test``: pytest collects it only
through your subclass, which provides the fixtures it needs.

``KeyProviderContract``: what every `keyvault.KeyProvider` (a master key, a KMS-backed
provider of your own) must do for a vault to be safe with it. Fixture: ``provider``, a fresh
provider. Needs pytest.

``EventStoreContract``: what every event-store database must do (round trips, expected
versions, retries, reads, immutability, tamper evidence). Fixture: ``url``, the URL of a
fresh, empty database for each test. Needs pytest and hypothesis.

``ShreddingContract``: crypto-shredding on that database (no personal value in plaintext,
erasure redacts exactly the erased subject's fields, tampering is refused). Fixtures: ``url``
and ``vault_url``, the URLs of two fresh, empty databases for each test. Needs pytest and
hypothesis.

``pip install 'shredstore[test]'`` installs pytest and hypothesis (with psycopg and the
project's own development tools); installing pytest and hypothesis yourself is enough.
The two store suites are imported on first use, so `KeyProviderContract` needs no
hypothesis. Their events live in a registry of their own: importing them leaves
`shredstore.default_registry` alone. See docs/testing.md.

    from shredstore.testing import EventStoreContract

    class TestOurDatabase(EventStoreContract):
        @pytest.fixture
        def url(self):
            return "postgresql+psycopg://.../fresh_db"
"""

from __future__ import annotations

import typing

from shredstore.testing.providers import KeyProviderContract

if typing.TYPE_CHECKING:
    from shredstore.testing.event_store import EventStoreContract
    from shredstore.testing.shredding import ShreddingContract

__all__ = ["EventStoreContract", "KeyProviderContract", "ShreddingContract"]


def __getattr__(name: str) -> object:
    # The store suites import hypothesis: loaded when first asked for, not with the package.
    found: type
    if name == "EventStoreContract":
        from shredstore.testing.event_store import EventStoreContract as found
    elif name == "ShreddingContract":
        from shredstore.testing.shredding import ShreddingContract as found
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = found
    return found
