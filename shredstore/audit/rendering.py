"""What every report format shares: a renderer's three parts, how a personal field is shown,
and the summary's names for people."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from shredstore.records import AuditEvent, PersonalField, Scope

__all__ = ["MASK", "SUMMARY_LABELS", "Renderer", "masked", "plain_text", "revealed", "shown",
           "summary_text"]

MASK = "\u2022\u2022\u2022\u2022"
"""How a held personal value is shown when not revealed."""

SUMMARY_LABELS = {
    "generated_at": "Generated at",
    "scope": "Scope",
    "log_head": "Log head",
    "events": "Events",
    "streams": "Streams",
    "subjects": "Data subjects",
    "erased_subjects": "Erased subjects",
    "personal_fields_held": "Personal fields held",
    "personal_fields_redacted": "Personal fields erased (redacted)",
    "personal_fields_erased_later": "Personal fields erased after the --until date",
    "tampered_events": "Tampered events (unreadable)",
    "sagas": "Sagas, by state",
    "values": "Personal values",
    "access_record": "Access record (position in $access)",
}
"""The summary's keys (kept as they are in JSON and CSV) as a person reads them."""


class Renderer(ABC):
    """One output format: the head (summary and ledger), one piece per event, the tail.

    `write_report` renders every event first, then the head, which can therefore use what the
    renderer gathered from the events; the output is the head, the events, the tail."""

    def __init__(self, reveal: bool, scope: Scope) -> None:
        self.reveal = reveal
        self.scope = scope

    @abstractmethod
    def head(self, summary: dict[str, Any], ledger: Iterator[dict[str, Any]]) -> str: ...

    @abstractmethod
    def event(self, event: AuditEvent) -> str: ...

    def tail(self) -> str:
        return ""


def shown(item: PersonalField, reveal: bool) -> str:
    """A personal field's state (and value, if revealed) as a person reads it."""
    erased = item.erased_at.date().isoformat() if item.erased_at else ""
    if item.state == "erased":
        return f"erased {erased}".strip()
    if item.erased_at is not None:  # held as of the report's --until, erased since
        return f"held then, erased {erased}"
    if not reveal:
        return f"held {MASK}"
    return json.dumps(item.value, ensure_ascii=False, default=str)


def masked(item: PersonalField, reveal: bool) -> bool:
    """Whether the report hides this field's value (held now, and not revealing)."""
    return not reveal and item.state == "held" and item.erased_at is None


def revealed(item: PersonalField, reveal: bool) -> bool:
    """Whether the report shows this field's value (held now, and revealing)."""
    return reveal and item.state == "held" and item.erased_at is None


def plain_text(event: AuditEvent) -> str:
    """The event's plain fields, as one line of JSON."""
    return json.dumps(event.plain, ensure_ascii=False, sort_keys=True, default=str)


def summary_text(value: Any) -> str:
    """A summary value as text: a mapping as ``key=value, ...``, nothing for None."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)
