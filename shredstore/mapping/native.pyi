"""Types of `shredstore.mapping.native` (shredstore/mapping/native.c)."""

from collections.abc import Callable
from typing import Any

def configure(
    *,
    to_json: Callable[[Any], bytes],
    from_json: Callable[[bytes], Any],
    a2b_base64: Callable[..., bytes],
    names_cache: dict[bytes, frozenset[str]],
    field_names: Callable[[bytes, list[list[Any]]], frozenset[str]],
    redacted: object,
) -> None: ...
def open_groups(
    open_unless_erased: Callable[..., bytes | None], groups: list[Any], data: dict[str, Any],
    context: bytes, /,
) -> tuple[frozenset[str], bool] | None: ...
