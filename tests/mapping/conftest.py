"""Fixtures of the mapping steps' tests: a key vault on SQLite, shared by a module's tests
(the steps need a key ring, not a store; hypothesis runs many examples against one vault)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keyvault import KeyRing, KeyVault, MasterKey


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyVault]:
    folder: Path = tmp_path_factory.mktemp("vault")
    with KeyVault(f"sqlite:///{folder / 'vault.db'}", master_key=MasterKey.generate()) as kv:
        yield kv


@pytest.fixture
def ring(vault: KeyVault) -> Iterator[KeyRing]:
    with vault.keyring() as keys:
        yield keys
