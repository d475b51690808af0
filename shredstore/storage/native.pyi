"""Types of `shredstore.storage.native` (shredstore/storage/native.c)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from shredstore.storage.chain import StoredRow

def configure(
    *,
    frame: Callable[..., bytes] = ...,
    sqlite_row: Callable[[Any], StoredRow] = ...,
    stored_row: type[StoredRow] = ...,
    uuid: type[UUID] = ...,
    safe_unknown: object = ...,
    epoch: datetime = ...,
    compare_digest: Callable[[bytes, bytes], bool] = ...,
    postgres_row: Callable[[Any], StoredRow] = ...,
) -> None: ...
def frame(
    stream_id: str, version: int, event_id: UUID, event_type: str, schema_version: int,
    recorded_at: datetime, metadata: str, payload: str, personal: str | None,
    subjects: str | None, /,
) -> bytes: ...
def frame_row(row: StoredRow, /) -> bytes: ...
def authentic(row: StoredRow, keyed: Any, /) -> bool | None: ...
def sqlite_row(raw: Any, /) -> StoredRow: ...
def postgres_row(raw: Any, /) -> StoredRow: ...
