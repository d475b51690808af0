"""Service keys: secrets of the application, not of a subject, kept by the vault.

shredstore authenticates every stored row with one. A service key is wrapped by the master key
like a data key, bound to its name, re-wrapped by a rotation (`keyvault.rotation`), and never
erased: an erasure destroys a subject's key, never the keys that prove the log intact.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from keyvault import schema, statements
from keyvault.engine import Transactions
from keyvault.envelope import KEY_SIZE
from keyvault.errors import KeyNotFoundError, TamperedError, WrongMasterKeyError
from keyvault.master import KeyProvider
from keyvault.names import check_service_name

__all__ = ["ServiceKeys", "service_context"]

_K = schema.SERVICE_KEYS
_ST = schema.STATE
_CONTEXT = b"keyvault.service.v1\x00"


class ServiceKeys:
    """The service keys of one vault, unwrapped once and kept in memory."""

    def __init__(self, transactions: Transactions) -> None:
        self._db = transactions
        self._known: dict[str, bytes] = {}

    def get(self, name: str, master_key: Callable[[], KeyProvider], *, create: bool) -> bytes:
        """The key named `name` (see `KeyVault.service_key`), unwrapped with the master key
        that `master_key()` returns (asked only for a key not yet in memory)."""
        check_service_name(name)
        cached = self._known.get(name)
        if cached is not None:
            return cached
        provider = master_key()
        context = service_context(name)
        load = statements.LOAD_SERVICE_KEY.where(_K.c.name == name)
        with self._db.read() as conn:
            row = conn.execute(load).first()
        if row is None and not create:
            raise KeyNotFoundError(f"this vault holds no service key {name!r}")
        if row is None:
            secret = secrets.token_bytes(KEY_SIZE)
            with self._db.write() as conn:
                # As for data keys: no key is created under a master key the vault left.
                state = conn.execute(sa.select(_ST).with_for_update(read=True)).one()
                if provider.key_id not in (state.master_key_id, state.rotating_to):
                    raise WrongMasterKeyError(
                        f"the master key {provider.key_id} no longer wraps this vault "
                        f"(now {state.master_key_id}); restart with the current master key")
                conn.execute(
                    statements.insert_new(conn, _K)
                    .on_conflict_do_nothing(index_elements=[_K.c.name]),
                    [{"name": name, "wrapped_key": provider.wrap(secret, context=context),
                      "wrapped_by": provider.key_id, "created_at": datetime.now(UTC)}])
                row = conn.execute(load).one()
        if row.wrapped_by != provider.key_id:
            raise WrongMasterKeyError(
                f"the service key {name!r} is wrapped by master key {row.wrapped_by}, not by "
                f"{provider.key_id}: a rotation changed the master key; restart with the new one")
        secret = provider.unwrap(row.wrapped_key, context=context)
        if len(secret) != KEY_SIZE:
            raise TamperedError("a wrapped service key is malformed")
        self._known[name] = secret
        return secret

    def forget(self) -> None:
        """Drop the keys kept in memory."""
        self._known.clear()


def service_context(name: str) -> bytes:
    """What a service key's wrapped form is bound to: its name."""
    return _CONTEXT + name.encode()
