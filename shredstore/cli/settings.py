"""Where the store is and how to open it: the global options and the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from keyvault import KeyProvider, MasterKey, master_key_from
from shredstore.errors import ConfigurationError, ReadOnlyStoreError
from shredstore.store import EventStore

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the store is and how to open it, from the global options and the environment."""

    url: str
    vault_url: str | None
    master_key_file: Path | None
    master_key_spec: str | None = None
    """``--master-key``: ``kms:<KMS key>`` or ``file:PATH`` (`keyvault.master_key_from`)."""

    def master_key(self, *, required: bool) -> KeyProvider | None:
        """The master key: ``--master-key``, ``--master-key-file`` (a key file or an envelope
        key file), ``SHREDSTORE_MASTER_KEY_FILE``, or ``SHREDSTORE_MASTER_KEY`` (the key in
        base64, or ``kms:<KMS key>``), in that order."""
        if self.master_key_spec is not None:
            return master_key_from(self.master_key_spec)
        if self.master_key_file is not None:
            return master_key_from(str(self.master_key_file))
        text = os.environ.get("SHREDSTORE_MASTER_KEY")
        if text:
            return master_key_from(text) if text.startswith("kms:") else \
                MasterKey.from_base64(text)
        if required:
            raise ConfigurationError(
                "this command needs the master key: pass --master-key-file or --master-key, "
                "or set SHREDSTORE_MASTER_KEY_FILE or SHREDSTORE_MASTER_KEY")
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
