"""Where the store is and how to open it: the global options and the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from keyvault import MasterKey
from shredstore.errors import ConfigurationError, ReadOnlyStoreError
from shredstore.store import EventStore

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the store is and how to open it, from the global options and the environment."""

    url: str
    vault_url: str | None
    master_key_file: Path | None

    def master_key(self, *, required: bool) -> MasterKey | None:
        if self.master_key_file is not None:
            return MasterKey.from_file(self.master_key_file)
        text = os.environ.get("SHREDSTORE_MASTER_KEY")
        if text:
            return MasterKey.from_base64(text)
        if required:
            raise ConfigurationError(
                "this command needs the master key: pass --master-key-file, or set "
                "SHREDSTORE_MASTER_KEY_FILE or SHREDSTORE_MASTER_KEY")
        return None

    @contextmanager
    def store(self, *, needs_key: bool = False, create: bool = False,
              read_only: bool | None = False) -> Iterator[EventStore]:
        """The store, opened read-only for commands that only read (they then work on an
        auditor's copy on a read-only mount); ``read_only=None``: writable where the database
        allows it, else read-only (a revealing read then refuses, as it cannot be recorded)."""
        key = self.master_key(required=needs_key)
        try:
            opened = EventStore(self.url, master_key=key, vault_url=self.vault_url,
                                create=create, read_only=bool(read_only))
        except ReadOnlyStoreError:
            if read_only is not None:
                raise
            opened = EventStore(self.url, master_key=key, vault_url=self.vault_url,
                                read_only=True)
        with opened as store:
            if store.read_only_note:
                click.echo(f"note: {store.read_only_note}", err=True)
            yield store
