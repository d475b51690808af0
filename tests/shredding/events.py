"""Event classes of the crypto-shredding tests: one subject, two subjects, nested models, lists.

They are those of the shipped crypto-shredding contract (`shredstore.testing`), which keeps
them out of `default_registry`; the tests outside the contract open stores with the default
registry, so this module registers them there. Every type name starts with
``test.shredding.`` so these never collide with other tests' events.
"""

from __future__ import annotations

from shredstore import default_registry
from shredstore.testing._shredding_events import (
    ERASED_EMAIL,
    REGISTRY,
    Address,
    CustomerRegistered,
    GiftSent,
    Line,
    Noted,
    OrderPlaced,
    PaymentSent,
    ProfileUpdated,
    ReferralMade,
    Tier,
)

__all__ = [
    "ERASED_EMAIL",
    "REGISTRY",
    "Address",
    "CustomerRegistered",
    "GiftSent",
    "Line",
    "Noted",
    "OrderPlaced",
    "PaymentSent",
    "ProfileUpdated",
    "ReferralMade",
    "Tier",
]

for _cls in (CustomerRegistered, PaymentSent, ProfileUpdated, OrderPlaced, GiftSent,
             ReferralMade, Noted):
    default_registry.register(_cls)
