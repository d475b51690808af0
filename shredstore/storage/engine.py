"""Engines for the event store: the key vault's configuration, with shredstore's errors.

See `keyvault.engine` for what is configured and why (WAL, synchronous=FULL, BEGIN IMMEDIATE
for writes, secure_delete).
"""

from __future__ import annotations

from sqlalchemy.engine import URL, Engine

from keyvault.engine import WRITE, is_postgres, is_sqlite
from keyvault.engine import create_engine as _create_engine
from keyvault.errors import VaultConfigurationError
from shredstore.errors import ConfigurationError

__all__ = ["WRITE", "create_engine", "is_postgres", "is_sqlite"]


def create_engine(url: str | URL | Engine) -> Engine:
    """Return an engine for `url`, configured for the event store."""
    try:
        return _create_engine(url)
    except VaultConfigurationError as error:
        raise ConfigurationError(str(error)) from None
