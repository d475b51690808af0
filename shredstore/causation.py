"""Correlation and causation ids, carried from the event being handled to the events it causes.

Inside ``with caused_by(record):`` every append (``append``, ``append_many``) stores, in each
new event's metadata, ``causation_id`` (the handled event's id) and ``correlation_id`` (the
handled event's own correlation id, or its id if it has none: the first event of a business
transaction starts the correlation). Metadata the caller passes wins over both. Sagas and the
idempotent consumer handle each event inside ``caused_by``; a handler of your own can too::

    for record in subscription:
        with caused_by(record):
            store.append("payment-7", [PaymentRequested(...)])

The context is a `contextvars.ContextVar`: it follows threads and asyncio tasks as Python's
contexts do, and ends with the ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from shredstore.events import RecordedEvent

__all__ = ["CAUSATION_ID", "CORRELATION_ID", "caused_by", "current_cause", "with_cause"]

CORRELATION_ID = "correlation_id"
CAUSATION_ID = "causation_id"

_CAUSE: ContextVar[dict[str, str] | None] = ContextVar("shredstore_cause", default=None)


@contextlib.contextmanager
def caused_by(record: RecordedEvent) -> Iterator[dict[str, str]]:
    """Within the block, appends are caused by `record` (see the module); yields the ids."""
    correlation = record.metadata.get(CORRELATION_ID) if isinstance(
        record.metadata, Mapping) else None
    cause = {CORRELATION_ID: str(correlation) if correlation else str(record.event_id),
             CAUSATION_ID: str(record.event_id)}
    token = _CAUSE.set(cause)
    try:
        yield dict(cause)
    finally:
        _CAUSE.reset(token)


def current_cause() -> dict[str, str] | None:
    """The correlation and causation ids of the enclosing `caused_by`, if any."""
    cause = _CAUSE.get()
    return None if cause is None else dict(cause)


def with_cause(metadata: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """`metadata` with the enclosing `caused_by`'s ids added (the caller's own keys win)."""
    cause = _CAUSE.get()
    if cause is None:
        return metadata
    return {**cause, **metadata} if metadata else cause
