"""Raw SQL that changes the events table behind shredstore's back, as an attacker would: the
helpers of the shipped contract suites (`shredstore.testing`), for the other tests."""

from __future__ import annotations

from shredstore.testing._tampering import (
    EVENTS,
    column,
    drop_triggers,
    edit,
    execute,
    forge_row,
    raw_engine,
    rechain,
    shift_down,
    shift_up,
    swap,
)

__all__ = [
    "EVENTS",
    "column",
    "drop_triggers",
    "edit",
    "execute",
    "forge_row",
    "raw_engine",
    "rechain",
    "shift_down",
    "shift_up",
    "swap",
]
