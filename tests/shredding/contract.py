"""The crypto-shredding behaviour every backend must have: `shredstore.testing.ShreddingContract`.

`test_sqlite.py` and `test_postgres.py` subclass it and provide the `url` fixture (a fresh,
empty database) and the `vault_url` fixture (another fresh, empty database, for a vault kept
apart from the events). The suite's helpers are here for the other tests; importing
`tests.shredding.events` registers the suite's events in the default registry those tests'
stores use.
"""

from __future__ import annotations

from shredstore.testing.shredding import (
    ANY_REDACTED,
    PERSONAL,
    PLAIN,
    PROPERTY_SETTINGS,
    SUBJECT,
    FieldSpec,
    ModelSpec,
    ShreddingContract,
    customer,
    distinctive_events,
    draw_events,
    found_in,
    interleave_after_prepare,
    is_redacted,
    model_specs,
    only,
    order,
    overwrite_personal,
    personal_column,
    profile,
    raw_rows,
    same,
    table_dumps,
)
from tests.shredding import events as _events  # noqa: F401 - registers the events

__all__ = [
    "ANY_REDACTED",
    "PERSONAL",
    "PLAIN",
    "PROPERTY_SETTINGS",
    "SUBJECT",
    "FieldSpec",
    "ModelSpec",
    "ShreddingContract",
    "customer",
    "distinctive_events",
    "draw_events",
    "found_in",
    "interleave_after_prepare",
    "is_redacted",
    "model_specs",
    "only",
    "order",
    "overwrite_personal",
    "personal_column",
    "profile",
    "raw_rows",
    "same",
    "table_dumps",
]
