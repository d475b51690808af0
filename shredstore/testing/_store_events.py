"""The events of `EventStoreContract`, in a registry of their own.

They are defined with ``register=False`` and registered only in `REGISTRY`, which the suite
passes to every store it opens: importing the suite leaves `shredstore.default_registry`
alone, so an application's own events may use the same names.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from shredstore import Event, EventRegistry

__all__ = ["Noted", "Ordered", "REGISTRY", "Registered"]


class Registered(Event, type_name="test.Registered", register=False):
    customer_id: str
    plan: str
    credit_limit: int


class Ordered(Event, type_name="test.Ordered", register=False):
    customer_id: str
    amount: Decimal
    at: datetime


class Noted(Event, type_name="test.Noted", register=False):
    text: str
    number: int = 0


REGISTRY = EventRegistry()
"""The registry of the event-store suite's stores: these three classes and nothing else."""
for _cls in (Registered, Ordered, Noted):
    REGISTRY.register(_cls)
