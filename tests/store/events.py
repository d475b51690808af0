"""Event classes shared by the storage tests: those of the shipped event-store contract.

`shredstore.testing` keeps them out of `default_registry`; the tests outside the contract
open stores with the default registry, so this module registers them there.
"""

from __future__ import annotations

from shredstore import default_registry
from shredstore.testing._store_events import REGISTRY, Noted, Ordered, Registered

__all__ = ["REGISTRY", "Noted", "Ordered", "Registered"]

for _cls in (Registered, Ordered, Noted):
    default_registry.register(_cls)
