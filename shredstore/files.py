"""Private files: the one way shredstore writes a file that may hold personal data or evidence
(exports, revealing reports, erasure receipts, signing keys).

The data goes to a new temporary file in the target's folder, created mode 0600 from its first
byte (``os.open`` with ``O_CREAT | O_EXCL``, whatever the umask), written whole and fsynced;
only then does it take its final name: ``os.replace`` over whatever was there, or, where an
existing file must never be replaced, ``os.link``, which fails if the name is taken. So there
is never a moment where the file is readable by others or seen half written under its name;
a failure on the way removes the temporary file and leaves the target as it was.

Errors are the system's `OSError`s (`FileExistsError` when the name is taken and replacing is
not allowed): each caller says in its own words what could not be written.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

__all__ = ["PRIVATE_MODE", "private_file", "write_private"]

PRIVATE_MODE = 0o600
"""Readable and writable by the owner only."""

_TRIES = 16
_NAME_PART = 64  # of the target's name in the temporary's, to stay far from NAME_MAX


def write_private(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write `data` to `path`, mode 0600, atomically (see the module).

    With ``replace=False`` an existing `path` is never touched: `FileExistsError`.
    """
    with _staged(path, replace=replace) as descriptor:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]


@contextmanager
def private_file(path: Path, *, replace: bool = True) -> Iterator[TextIO]:
    """A text file (UTF-8) to write `path` through, mode 0600: it takes its name, atomically,
    only when the block ends without an error (see the module). With ``replace=False`` an
    existing `path` is never touched: `FileExistsError` when the block ends."""
    with _staged(path, replace=replace) as descriptor, \
            os.fdopen(descriptor, "w", encoding="utf-8", closefd=False) as target:
        yield target


@contextmanager
def _staged(path: Path, *, replace: bool) -> Iterator[int]:
    """A descriptor of a new private temporary file beside `path`; once the block is done, the
    file is synced and given its final name. The temporary never outlives this."""
    descriptor, partial = _create_temporary(path)
    moved = False
    try:
        try:
            yield descriptor
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(partial, path)
            moved = True
        else:
            os.link(partial, path)  # FileExistsError rather than replace the file there
        _sync_folder(path.parent)
    finally:
        if not moved:
            partial.unlink(missing_ok=True)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside `path`, created 0600 (never wider, whatever the umask), open for
    writing; a hidden name that says what it is for."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        partial = path.parent / f".{path.name[:_NAME_PART]}.{secrets.token_hex(6)}.partial"
        try:
            descriptor = os.open(partial, flags, PRIVATE_MODE)
        except FileExistsError:
            continue
        try:
            os.fchmod(descriptor, PRIVATE_MODE)  # the umask may have taken the owner's bits
        except OSError:
            os.close(descriptor)
            partial.unlink(missing_ok=True)
            raise
        return descriptor, partial
    raise OSError(errno.EAGAIN, "no free temporary file name", str(path.parent))


def _sync_folder(folder: Path) -> None:
    """Make the new name durable (best effort: not every system can sync a folder)."""
    with suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
