"""Event classes shared by the storage tests."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from shredstore import Event


class Registered(Event, type_name="test.Registered"):
    customer_id: str
    plan: str
    credit_limit: int


class Ordered(Event, type_name="test.Ordered"):
    customer_id: str
    amount: Decimal
    at: datetime


class Noted(Event, type_name="test.Noted"):
    text: str
    number: int = 0
