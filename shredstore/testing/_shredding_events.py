"""The events of `ShreddingContract`, in a registry of their own: one subject, two subjects,
nested models, lists.

They are defined with ``register=False`` and registered only in `REGISTRY`, which the suite
passes to every store it opens: importing the suite leaves `shredstore.default_registry`
alone, so an application's own events may use the same names. Every type name starts with
``test.shredding.``.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel

from shredstore import Event, EventRegistry, PersonalData, SubjectId

__all__ = [
    "Address",
    "CustomerRegistered",
    "ERASED_EMAIL",
    "GiftSent",
    "Line",
    "Noted",
    "OrderPlaced",
    "PaymentSent",
    "ProfileUpdated",
    "REGISTRY",
    "ReferralMade",
    "Tier",
]

ERASED_EMAIL = "erased@invalid"
"""The declared replacement of `CustomerRegistered.email`."""


class CustomerRegistered(Event, type_name="test.shredding.CustomerRegistered", register=False):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData(replacement=ERASED_EMAIL)]
    credit_limit: int


class PaymentSent(Event, type_name="test.shredding.PaymentSent", register=False):
    """Two subjects in one event: each personal field names its own."""

    payer_id: SubjectId
    payee_id: SubjectId
    payer_iban: Annotated[str, PersonalData(subject="payer_id")]
    payee_name: Annotated[str, PersonalData(subject="payee_id")]
    amount_cents: int


class Address(BaseModel):
    """A nested model without a subject: its personal field takes the enclosing subject."""

    street: Annotated[str, PersonalData()]
    city: str


class Line(BaseModel):
    """A nested model with a subject of its own."""

    recipient_id: SubjectId
    recipient_name: Annotated[str, PersonalData()]
    sku: str


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


class ProfileUpdated(Event, type_name="test.shredding.ProfileUpdated", register=False):
    """Every supported kind of personal field, all of one subject."""

    customer_id: SubjectId
    nickname: Annotated[str, PersonalData()]
    age: Annotated[int, PersonalData()]
    balance: Annotated[Decimal, PersonalData()]
    born: Annotated[date, PersonalData()]
    last_seen: Annotated[datetime, PersonalData()]
    tier: Annotated[Tier, PersonalData()]
    phone: Annotated[str | None, PersonalData()] = None
    fax: Annotated[str | None, PersonalData(replacement=None)] = None
    home: Address
    """A nested model: only its `street` is personal."""
    billing: Annotated[Address, PersonalData()]
    """A whole nested model that is personal."""
    plan: str


class OrderPlaced(Event, type_name="test.shredding.OrderPlaced", register=False):
    """A list of nested models, each line with a subject of its own."""

    customer_id: SubjectId
    shipping: Address
    lines: list[Line]
    note: Annotated[str | None, PersonalData()] = None
    total_cents: int


class GiftSent(Event, type_name="test.shredding.GiftSent", register=False):
    """One nested model (not a list) with a subject of its own."""

    sender_id: SubjectId
    sender_name: Annotated[str, PersonalData()]
    recipient: Line


class ReferralMade(Event, type_name="test.shredding.ReferralMade", register=False):
    """Names a subject without holding personal data."""

    referrer_id: SubjectId
    code: str


class Noted(Event, type_name="test.shredding.Noted", register=False):
    """No subject and no personal data."""

    text: str


REGISTRY = EventRegistry()
"""The registry of the crypto-shredding suite's stores: these events and nothing else."""
for _cls in (CustomerRegistered, PaymentSent, ProfileUpdated, OrderPlaced, GiftSent,
             ReferralMade, Noted):
    REGISTRY.register(_cls)
