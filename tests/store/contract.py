"""The behaviour every event-store backend must have: `shredstore.testing.EventStoreContract`.

`test_sqlite.py` and `test_postgres.py` subclass it and provide the `url` fixture. `notes`
and `kinds` are here for the other tests; importing `tests.store.events` registers the
suite's events in the default registry those tests' stores use.
"""

from __future__ import annotations

from shredstore.testing.event_store import EventStoreContract, kinds, notes
from tests.store import events as _events  # noqa: F401 - registers the events

__all__ = ["EventStoreContract", "kinds", "notes"]
