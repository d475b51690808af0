"""Types of `shredstore.mapping.native` (shredstore/mapping/native.c)."""

from collections.abc import Callable, Iterable
from typing import Any

from shredstore.events import RecordedEvent
from shredstore.storage.chain import StoredRow

def configure(
    *,
    to_json: Callable[[Any], bytes] = ...,
    from_json: Callable[[bytes], Any] = ...,
    a2b_base64: Callable[..., bytes] = ...,
    names_cache: dict[bytes, frozenset[str]] = ...,
    field_names: Callable[[bytes, list[list[Any]]], frozenset[str]] = ...,
    redacted: object = ...,
    record: type[RecordedEvent[Any]] = ...,
    record_fields: tuple[str, ...] = ...,
    context_prefix: bytes = ...,
    empty_metadata: str = ...,
    page_subjects: Callable[[Any], tuple[list[Any], set[str]]] = ...,
) -> None: ...
def open_groups(
    open_unless_erased: Callable[..., bytes | None], groups: list[Any], data: dict[str, Any],
    context: bytes, /,
) -> tuple[frozenset[str], bool] | None: ...
def recorded(
    row: StoredRow, groups: list[Any] | None,
    open_unless_erased: Callable[..., bytes | None] | None, validate: Callable[[Any], Any], /,
) -> RecordedEvent[Any] | None: ...
def page_subjects(rows: Iterable[StoredRow], /) -> tuple[list[list[Any] | None], set[str]]: ...
