"""Where the store is and how to open it: the global options, the environment and the
configuration file, in that order of precedence, then the defaults.

The configuration file is ``shredstore.toml`` or the ``[tool.shredstore]`` table of a
``pyproject.toml``: the nearest one in the working folder or a folder above it (or the file
``--config`` / ``SHREDSTORE_CONFIG`` names). It holds locations, never a key::

    url = "postgresql+psycopg://app@db/events"
    vault-url = "postgresql+psycopg://vault@db/vault"
    master-key-file = "secrets/master.key"      # or master-key = "kms:aws-kms:arn:..."
    receipts = "erasure-receipts"
    signing-key-file = "secrets/receipts.pem"
    read-model-url = "postgresql+psycopg://app@db/read_models"

Relative paths (and a relative SQLite file in a URL) are taken from the file's folder.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from keyvault import KeyProvider, MasterKey, master_key_from
from shredstore.cli.output import note
from shredstore.errors import ConfigurationError, ReadOnlyStoreError
from shredstore.store import DEFAULT_URL, EventStore

__all__ = ["CONFIG_KEYS", "Settings", "find_config", "load_config"]

CONFIG_KEYS: Mapping[str, str] = {
    "url": "url", "vault-url": "vault_url", "master-key-file": "master_key_file",
    "master-key": "master_key", "receipts": "receipt_dir",
    "signing-key-file": "signing_key_file", "read-model-url": "read_model_url"}
"""The configuration file's keys, and the parameter each is the default of (in every
command that has it)."""

_PATHS = {"master-key-file", "receipts", "signing-key-file"}
_URLS = {"url", "vault-url", "read-model-url"}


@dataclass(frozen=True, slots=True)
class Settings:
    """What every command is told by the global options (given before or after the
    command's name), the environment and the configuration file."""

    url: str = DEFAULT_URL
    vault_url: str | None = None
    master_key_spec: str | None = None
    """The master key: ``kms:<KMS key>``, ``file:PATH``, or (from the environment only) the
    key itself in base64 (`keyvault.master_key_from`)."""
    as_json: bool = False
    verbosity: int = 0
    """-1 with ``--quiet``, 1 or more with ``-v``."""
    config: Path | None = None
    """The configuration file read, if any."""

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0

    def master_key(self, *, required: bool) -> KeyProvider | None:
        """The master key the options, the environment or the configuration file name."""
        spec = self.master_key_spec
        if spec is None:
            if required:
                raise ConfigurationError(
                    "this command needs the master key: pass --master-key-file or "
                    "--master-key, set SHREDSTORE_MASTER_KEY_FILE or SHREDSTORE_MASTER_KEY, "
                    "or name it in shredstore.toml")
            return None
        if spec.startswith(("kms:", "file:")):
            return master_key_from(spec)
        return MasterKey.from_base64(spec)

    def refuse_json(self, command: str) -> None:
        """For a command with nothing to report as JSON."""
        if self.as_json:
            raise click.UsageError(f"{command} has no JSON output: leave out --json")

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
            if store.read_only_note and not self.quiet:
                note(f"note: {store.read_only_note}")
            yield store


def find_config(start: Path) -> Path | None:
    """The nearest ``shredstore.toml``, or ``pyproject.toml`` with a ``[tool.shredstore]``
    table, in `start` or a folder above it."""
    for folder in (start, *start.parents):
        own = folder / "shredstore.toml"
        if own.is_file():
            return own
        project = folder / "pyproject.toml"
        if project.is_file() and "shredstore" in _read_toml(project).get("tool", {}):
            return project
    return None


def load_config(path: Path) -> dict[str, str]:
    """The configuration in `path` as parameter defaults (parameter name -> value), its
    relative paths taken from the file's folder. A key it does not know, a value that is not
    text, or a master key written into it is a `ConfigurationError`."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("shredstore", {})
    folder = path.resolve().parent
    defaults: dict[str, str] = {}
    for key, value in data.items():
        if key not in CONFIG_KEYS:
            raise ConfigurationError(f"{path}: unknown setting {key!r} (known: "
                                     f"{', '.join(CONFIG_KEYS)})")
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{path}: {key} must be a non-empty string")
        if key == "master-key" and not value.startswith(("kms:", "file:")):
            raise ConfigurationError(f"{path}: master-key takes kms:<KMS key> or file:PATH; "
                                     "never write a key itself into a configuration file")
        defaults[CONFIG_KEYS[key]] = _anchored(key, value, folder)
    return defaults


def _anchored(key: str, value: str, folder: Path) -> str:
    """`value` with a relative path in it taken from `folder`."""
    if key in _PATHS:
        return str(folder / Path(value).expanduser())
    if key == "master-key" and value.startswith("file:"):
        return "file:" + str(folder / Path(value.removeprefix("file:")).expanduser())
    if key in _URLS and value.startswith("sqlite") and ":///" in value:
        scheme, _, rest = value.partition(":///")
        path, query = rest.split("?", 1) if "?" in rest else (rest, None)
        if path and not path.startswith("/") and path != ":memory:":
            value = f"{scheme}:///{folder / path}" + (f"?{query}" if query else "")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None

