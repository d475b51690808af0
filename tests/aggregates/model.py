"""Events and aggregates of the aggregate tests; stored type names start "test.aggregates."."""

from __future__ import annotations

from typing import Annotated

from shredstore import Aggregate, Event, EventRegistry, PersonalData, SubjectId

ERASED_EMAIL = "erased@invalid"


class Registered(Event, type_name="test.aggregates.Registered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData(replacement=ERASED_EMAIL)]


class Renamed(Event, type_name="test.aggregates.Renamed"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]


class Ordered(Event, type_name="test.aggregates.Ordered"):
    customer_id: str
    amount: int


class Customer(Aggregate, stream_prefix="customer-", type_name="test.aggregates.Customer"):
    customer_id: SubjectId = ""
    name: Annotated[str, PersonalData()] = ""
    email: Annotated[str, PersonalData(replacement=ERASED_EMAIL)] = ""
    orders: int = 0
    total: int = 0

    def apply(self, event: Event) -> None:
        match event:
            case Registered():
                self.customer_id, self.name, self.email = (
                    event.customer_id, event.name, event.email)
            case Renamed():
                self.name = event.name
            case Ordered():
                self.orders += 1
                self.total += event.amount


# Two schema versions of one aggregate, for its snapshots: version 2 renamed `name`.

class MemberV1(Aggregate, stream_prefix="member-", type_name="test.aggregates.Member"):
    member_id: SubjectId = ""
    name: Annotated[str, PersonalData()] = ""
    orders: int = 0

    def apply(self, event: Event) -> None:
        match event:
            case Registered():
                self.member_id, self.name = event.customer_id, event.name
            case Renamed():
                self.name = event.name
            case Ordered():
                self.orders += 1


class Member(Aggregate, stream_prefix="member-", type_name="test.aggregates.Member",
             schema_version=2):
    member_id: SubjectId = ""
    full_name: Annotated[str, PersonalData()] = ""
    orders: int = 0

    def apply(self, event: Event) -> None:
        match event:
            case Registered():
                self.member_id, self.full_name = event.customer_id, event.name
            case Renamed():
                self.full_name = event.name
            case Ordered():
                self.orders += 1


# Two schema versions of one aggregate whose data did not change shape, only its meaning: version
# 2 counts in cents. A version-1 reader must not take a version-2 snapshot for its own.

class Wallet(Aggregate, stream_prefix="wallet-", type_name="test.aggregates.Wallet"):
    balance: int = 0

    def apply(self, event: Event) -> None:
        if isinstance(event, Ordered):
            self.balance += event.amount


class WalletInCents(Aggregate, stream_prefix="wallet-", type_name="test.aggregates.Wallet",
                    schema_version=2):
    balance: int = 0

    def apply(self, event: Event) -> None:
        if isinstance(event, Ordered):
            self.balance += 100 * event.amount


# Three schema versions of one event. None is in the default registry: each test registers the
# version it writes or reads in a registry of its own, with the upcasters it needs.

class ProfileV1(Event, type_name="test.aggregates.Profile", register=False):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    plan: str


class ProfileV2(Event, type_name="test.aggregates.Profile", schema_version=2, register=False):
    """Version 2 renamed `name` to `full_name`."""

    customer_id: SubjectId
    full_name: Annotated[str, PersonalData()]
    plan: str


class Profile(Event, type_name="test.aggregates.Profile", schema_version=3, register=False):
    """Version 3 replaced the plan's name by its tier."""

    customer_id: SubjectId
    full_name: Annotated[str, PersonalData()]
    tier: int


TIERS = {"basic": 1, "pro": 2}


def registry_of(*classes: type[Event]) -> EventRegistry:
    """A registry of its own holding `classes` (and the shared events of these tests)."""
    registry = EventRegistry()
    for cls in (Registered, Renamed, Ordered, *classes):
        registry.register(cls)
    return registry
