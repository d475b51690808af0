"""Batches of erasure requests: CSV or JSON lines, read line by line, bad lines reported.

CSV has a header row naming at least ``subject`` (also ``request_id`` and ``reason``); JSON
lines hold one object per line with the same keys. A file ending in ``.csv`` is CSV, one ending
in ``.jsonl``, ``.ndjson`` or ``.json`` is JSON lines; otherwise a first character ``{`` says
JSON lines. A UTF-8 byte-order mark (spreadsheet programs write one) is ignored. Problems name
the line and what is wrong, never the line's content (it may hold personal data); a file that
holds no request at all (empty, blank lines, a header alone) is an error, not an empty batch.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from shredstore.errors import ConfigurationError

__all__ = ["ErasureRequest", "read_requests"]

_MAX_TEXT = 1000
_FIELDS = ("subject", "request_id", "reason")


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    """One request: `line` is its line in a request file (0 for the command line)."""

    line: int
    subject: str
    request_id: str | None = None
    reason: str | None = None

    def where(self) -> str:
        return f"line {self.line}: " if self.line else ""


def read_requests(path: Path) -> tuple[list[ErasureRequest], list[str]]:
    """The good requests of a file, and a problem per bad line (``"line N: ..."``).

    Raises `ConfigurationError` if the file cannot be read, is not UTF-8, has no CSV header
    naming ``subject``, or holds no request at all (not even a bad one).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # without a byte-order mark, if any
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise ConfigurationError(f"{path} holds no requests: the file is "
                                 + ("empty" if not text else "blank lines only"))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json") or (
            suffix != ".csv" and text.lstrip().startswith("{")):
        requests, problems = _json_lines(text)
    else:
        requests, problems = _csv(text, path)
    if not requests and not problems:
        raise ConfigurationError(f"{path} holds no requests: a header and no row under it")
    return requests, problems


def _json_lines(text: str) -> tuple[list[ErasureRequest], list[str]]:
    requests, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            problems.append(f"line {number}: not valid JSON")
            continue
        if not isinstance(item, dict):
            problems.append(f"line {number}: not a JSON object")
            continue
        request, problem = _request(number, item)
        if problem:
            problems.append(problem)
        elif request is not None:
            requests.append(request)
    return requests, problems


def _csv(text: str, path: Path) -> tuple[list[ErasureRequest], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header: list[str] = []
        while not any(header):  # the first line that is not blank
            header = [name.strip().lower() for name in next(reader)]
    except StopIteration:  # nothing but empty cells
        raise ConfigurationError(f"{path} holds no requests: no header, no row") from None
    except csv.Error:
        raise ConfigurationError(f"{path}: line {reader.line_num}: not a CSV header") from None
    if "subject" not in header:
        raise ConfigurationError(
            f"{path}: line {reader.line_num}: the CSV header must name a 'subject' column "
            "(and optionally request_id, reason)")
    requests, problems = [], []
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:
            problems.append(f"line {reader.line_num}: malformed CSV")
            continue
        number = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            problems.append(f"line {number}: {len(cells)} fields, the header has {len(header)}")
            continue
        item = dict(zip(header, cells, strict=False))
        request, problem = _request(number, {k: v for k, v in item.items() if v != ""})
        if problem:
            problems.append(problem)
        elif request is not None:
            requests.append(request)
    return requests, problems


def _is_text(value: str) -> bool:
    """Whether `value` can be stored: JSON's \\ud800 escapes decode to lone surrogates, which
    no database or file takes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _request(number: int, item: dict[str, object]) -> tuple[ErasureRequest | None, str | None]:
    subject = item.get("subject")
    if subject is None:
        return None, f"line {number}: no subject"
    values: dict[str, str | None] = {}
    for name in _FIELDS:
        value = item.get(name)
        if value is None:
            values[name] = None
            continue
        if not isinstance(value, str) or not value.strip():
            return None, f"line {number}: {name} must be a non-empty string"
        if len(value) > _MAX_TEXT or any(ord(c) < 32 for c in value):
            return None, f"line {number}: {name} is too long or holds control characters"
        if not _is_text(value):
            return None, f"line {number}: {name} is not valid text (a lone surrogate)"
        values[name] = value.strip()
    return ErasureRequest(number, values["subject"] or "", values["request_id"],
                          values["reason"]), None
