"""The public surface: what API.md promises can be imported, and __all__ stays tidy."""

from __future__ import annotations

import importlib
from pathlib import Path

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


def test_every_public_error_is_defined_once_in_the_error_tree() -> None:
    """Exceptions are defined in `shredstore.errors` only (measured before: a second
    `UnknownSubjectError` in audit/export.py and a second `ReceiptParseError` in the receipts
    module, which `except shredstore.X` did not catch), and the root exports each of them."""
    import inspect
    import pkgutil

    import shredstore
    from shredstore import errors

    elsewhere = []
    for info in pkgutil.walk_packages(shredstore.__path__, "shredstore."):
        if info.name.endswith("__main__") or info.name == errors.__name__:
            continue
        module = importlib.import_module(info.name)
        elsewhere += [f"{info.name}.{name}" for name, value in vars(module).items()
                      if inspect.isclass(value) and issubclass(value, BaseException)
                      and value.__module__ == info.name and not name.startswith("_")]
    assert elsewhere == []
    tree = {name for name, value in vars(errors).items()
            if inspect.isclass(value) and issubclass(value, errors.ShredstoreError)}
    assert tree - set(shredstore.__all__) == set()


def test_an_export_of_an_unknown_subject_raises_the_exported_error(tmp_path: Path) -> None:
    """`except shredstore.UnknownSubjectError` catches what the export raises."""
    import io

    from keyvault import MasterKey
    from shredstore import EventStore, UnknownSubjectError
    from shredstore.audit import write_export

    with EventStore(f"sqlite:///{tmp_path / 'events.db'}", master_key=MasterKey.generate()
                    ) as store, pytest.raises(UnknownSubjectError):
        write_export(store, "nobody", io.StringIO())


@pytest.mark.parametrize("subject", ["", "x" * 201, "a\nb", "\ud800"])
def test_the_store_refuses_a_subject_id_the_vault_could_never_hold(
        tmp_path: Path, subject: str) -> None:
    """One rule for subject ids (the vault's), as `ConfigurationError`, on every path."""
    from shredstore import ConfigurationError, EventStore

    with EventStore(f"sqlite:///{tmp_path / 'events.db'}") as store:
        with pytest.raises(ConfigurationError, match="subject id"):
            list(store.read_subject(subject))
        with pytest.raises(ConfigurationError, match="subject id"):
            store.subject_footprint(subject)
