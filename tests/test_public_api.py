"""The public surface: what API.md promises can be imported, and __all__ stays tidy."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["shredstore", "keyvault"])
def test_all_is_sorted_and_complete(package: str) -> None:
    """Each package's __all__ is sorted and names only things that exist."""
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name


def test_the_names_of_the_event_log_are_public() -> None:
    """The event-log names of API.md import from the package root."""
    from shredstore import (  # noqa: F401
        ANY,
        NO_STREAM,
        STREAM_EXISTS,
        Event,
        EventStore,
        ShredstoreError,
        WrongExpectedVersion,
    )


def test_every_error_derives_from_the_package_root() -> None:
    """Every exception class shredstore exports is a ShredstoreError."""
    import shredstore

    errors = [getattr(shredstore, n) for n in shredstore.__all__
              if isinstance(getattr(shredstore, n), type)
              and issubclass(getattr(shredstore, n), Exception)]
    assert errors
    assert all(issubclass(error, shredstore.ShredstoreError) for error in errors)
