"""What a relayed event looks like in a broker: the stored row, sealed, and routing headers.

A message's body is the event's row exactly as the events table holds it (JSON, one object):
its place in the log (position, stream, version), its identity (event id, type, schema
version, time), its metadata, its plain payload, and its personal column, the fields sealed
per subject (AES-256-GCM, as stored), with the subjects it names and the row's authenticator.
No personal value is ever in the clear: a consumer opens the message through the store
(`open_message`), with the same decrypt path, erasure check and authentication as every
read, so a subject erased after the message was sent reads as redacted, and a message
altered in the broker raises `TamperedError`.

The correlation and causation ids (from the metadata) and the routing fields are repeated as
broker headers, so that brokers and consumers can route and filter without the body.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shredstore.errors import MessageFormatError
from shredstore.storage.chain import StoredRow

__all__ = ["FORMAT", "Message", "default_route", "read_message", "to_message"]

FORMAT = "shredstore.relay.v1"
"""The body's format, its ``format`` member: a consumer refuses one it does not know."""

_CORRELATION = "correlation_id"
_CAUSATION = "causation_id"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


@dataclass(frozen=True, slots=True)
class Message:
    """One event on its way to a broker: its body, and the fields it is routed by."""

    event_id: UUID
    stream_id: str
    event_type: str
    position: int
    version: int
    schema_version: int
    correlation_id: str | None
    causation_id: str | None
    body: bytes

    def headers(self) -> dict[str, str]:
        """The routing fields as broker headers (``Shredstore-*``), plain strings."""
        headers = {
            "Shredstore-Format": FORMAT,
            "Shredstore-Event-Id": str(self.event_id),
            "Shredstore-Type": self.event_type,
            "Shredstore-Stream": self.stream_id,
            "Shredstore-Version": str(self.version),
            "Shredstore-Position": str(self.position),
            "Shredstore-Schema-Version": str(self.schema_version),
        }
        if self.correlation_id is not None:
            headers["Shredstore-Correlation-Id"] = self.correlation_id
        if self.causation_id is not None:
            headers["Shredstore-Causation-Id"] = self.causation_id
        return headers


def to_message(row: StoredRow) -> Message:
    """The message that carries `row` (read from the log, its authenticator checked)."""
    correlation = causation = None
    if _CORRELATION in row.metadata or _CAUSATION in row.metadata:
        metadata = json.loads(row.metadata)
        if isinstance(metadata, dict):
            correlation = _text(metadata.get(_CORRELATION))
            causation = _text(metadata.get(_CAUSATION))
    body = {
        "format": FORMAT,
        "position": row.position,
        "stream_id": row.stream_id,
        "version": row.version,
        "event_id": str(row.event_id),
        "event_type": row.event_type,
        "schema_version": row.schema_version,
        "recorded_at": row.recorded_at.isoformat(),
        "correlation_id": correlation,
        "causation_id": causation,
        "metadata": row.metadata,
        "payload": row.payload,
        "personal": row.personal,
        "subjects": row.subjects,
        "mac": None if row.mac is None else base64.b64encode(row.mac).decode("ascii"),
    }
    return Message(row.event_id, row.stream_id, row.event_type, row.position, row.version,
                   row.schema_version, correlation, causation,
                   json.dumps(body, separators=(",", ":")).encode())


def read_message(body: bytes) -> StoredRow:
    """The stored row a message's body carries; `MessageFormatError` for anything else.

    Only the shape is checked here; `open_message` checks the row's authenticator and opens
    its sealed fields.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MessageFormatError("the message body is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MessageFormatError(f"the message is not a relayed event (format {FORMAT})")
    try:
        recorded_at = datetime.fromisoformat(_field(data, "recorded_at", str))
        mac = data.get("mac")
        return StoredRow(
            position=_field(data, "position", int),
            stream_id=_field(data, "stream_id", str),
            version=_field(data, "version", int),
            event_id=UUID(_field(data, "event_id", str)),
            event_type=_field(data, "event_type", str),
            schema_version=_field(data, "schema_version", int),
            recorded_at=recorded_at,
            metadata=_field(data, "metadata", str),
            payload=_field(data, "payload", str),
            personal=_optional(data, "personal"),
            prev_hash=b"",
            hash=b"",
            subjects=_optional(data, "subjects"),
            mac=None if mac is None else base64.b64decode(_text_of(mac, "mac"), validate=True),
        )
    except (ValueError, TypeError) as error:
        if isinstance(error, MessageFormatError):
            raise
        raise MessageFormatError("a relayed event's field is malformed") from None


def default_route(message: Message) -> str:
    """``<type>.<stream>``, each part with every character but letters, digits, ``_`` and
    ``-`` replaced by ``_`` (a RabbitMQ routing key, after the prefix a NATS subject): bind
    ``shop_OrderPlaced.*`` for a type, ``*.order-7`` for a stream."""
    return f"{_UNSAFE.sub('_', message.event_type)}.{_UNSAFE.sub('_', message.stream_id)}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _field(data: dict[str, Any], name: str, kind: type[Any]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MessageFormatError(f"a relayed event's {name} is missing or not a {kind.__name__}")
    return value


def _optional(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return None if value is None else _text_of(value, name)


def _text_of(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise MessageFormatError(f"a relayed event's {name} is not a string")
    return value
